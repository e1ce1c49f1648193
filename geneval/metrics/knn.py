"""Chunked, exact nearest-neighbour queries for the k-NN metrics (precision/recall, density/coverage, memorisation).

Peak memory is O(N·k + chunk²): no N×N distance matrix is ever formed (prdc builds three, torch-fidelity two).

Exactness. A distance here is the float64 value ``sum((x - y)**2)`` over the features as given (float32 features
are upcast exactly), computed by one function, ``exact_sq_distances``, so d(a, b) and d(b, a) agree bit for bit.
Searching with that arithmetic alone would be ~2× slower than float32, so candidates are found with float32
matrix products on features centred in float64, d̃² = ‖a‖² + ‖b‖² − 2 a·b, and every decision that float32 could
get wrong is redone in float64: by the standard bound for dot products (Higham, Accuracy and Stability, §3.1),
|d̃² − d²| ≤ γ_{D+7}·(‖a‖² + ‖b‖²) for centred a, b, with γ_n = n·u/(1 − n·u), u = 2⁻²⁴. We use twice that (plus
float64 terms for the centring and the exact sum), so a comparison of d̃² with a threshold that clears the bound
is provably the comparison float64 would make, and one that does not is recomputed exactly. Results therefore
equal a full float64 computation whatever the chunk size; only the count of rechecked pairs varies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geneval.errors import GenevalInputError

DEFAULT_CHUNK = 2048  # rows per block: 2048² float32 = 16 MiB per temporary (4096 was no faster, +240 MB peak)
EXTRA_CANDIDATES = 24  # kept beyond the k-th so that near-ties rarely need a full float64 row
_U32 = 2.0**-24
_U64 = 2.0**-53
_EXACT_PAIRS = 1024  # pairs per float64 recheck batch: three 1024 × D float64 temporaries (48 MiB at D = 2048)


def exact_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise float64 ``sum((a - b)**2)`` of two C-contiguous ``[P, D]`` arrays: the canonical d²."""
    diff = np.subtract(a, b, dtype=np.float64)
    np.square(diff, out=diff)
    return diff.sum(axis=1)


def feature_matrix(value, *, what: str) -> np.ndarray:
    """A ``[N, D]`` float32/float64 array without copying (N×D float64 copies would double peak memory)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    x = np.asarray(value)
    if x.ndim != 2:
        raise GenevalInputError(f"{what}: features must be a 2-D array [N, D], got shape {list(x.shape)}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def check_same_dim(*pairs: tuple[str, np.ndarray], what: str) -> None:
    dims = {name: x.shape[1] for name, x in pairs}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{name} {dim}" for name, dim in dims.items())
        raise GenevalInputError(f"{what}: feature dimensions differ: {listed}")


def _gamma(n: int, u: float) -> float:
    return n * u / (1.0 - n * u)


class Points:
    """A feature matrix prepared for chunked search; the features are referenced, never copied whole."""

    def __init__(self, x: np.ndarray, centre: np.ndarray, *, chunk: int, name: str = "features"):
        self.x = x
        self.name = name
        self.count, self.dim = x.shape
        self.centre = centre
        self.chunk = chunk
        centred_norms = np.empty(self.count)
        raw_norms = np.empty(self.count)
        for lo in range(0, self.count, chunk):
            rows = np.array(x[lo : lo + chunk], dtype=np.float64)  # a copy: centred in place below
            raw_norms[lo : lo + chunk] = np.einsum("ij,ij->i", rows, rows)
            rows -= centre
            centred_norms[lo : lo + chunk] = np.einsum("ij,ij->i", rows, rows)
        if not np.isfinite(raw_norms).all():
            bad = int((~np.isfinite(raw_norms)).sum())
            raise GenevalInputError(f"{name}: {bad} of {self.count} rows contain NaN or infinite values")
        self.sq_norms = centred_norms
        # Per-row half of the error bound: tol(i, j) = slack[i] + slack[j] (see the module docstring).
        self.slack = 2 * _gamma(self.dim + 7, _U32) * centred_norms + 4 * _gamma(self.dim + 2, _U64) * raw_norms

    def block(self, lo: int, hi: int) -> torch.Tensor:
        """Rows lo..hi−1, centred in float64, then rounded to float32."""
        out = np.empty((hi - lo, self.dim), np.float32)
        for start in range(lo, hi, 1024):  # float64 temporaries of 1024 rows, not of the whole block
            stop = min(start + 1024, hi)
            out[start - lo : stop - lo] = np.asarray(self.x[start:stop], dtype=np.float64) - self.centre
        return torch.from_numpy(out)

    def rows(self, index: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.x[index], dtype=np.float64)


def prepare(*sets: np.ndarray, names: tuple[str, ...] | None = None, chunk: int | None = None) -> list[Points]:
    """``Points`` for sets that will be compared with each other (one shared centre)."""
    chunk = chunk or DEFAULT_CHUNK
    if chunk < 1:
        raise GenevalInputError(f"k-NN: chunk size must be ≥ 1, got {chunk}")
    names = names or tuple(f"set {i}" for i in range(len(sets)))
    total = sum(len(s) for s in sets)
    centre = sum(_chunked_sum(s, chunk) for s in sets) / total
    return [Points(s, centre, chunk=chunk, name=name) for s, name in zip(sets, names)]


def _chunked_sum(x: np.ndarray, chunk: int) -> np.ndarray:
    return sum(np.asarray(x[lo : lo + chunk], dtype=np.float64).sum(axis=0) for lo in range(0, len(x), chunk))


def _sq_block(a: torch.Tensor, b: torch.Tensor, a_norms: torch.Tensor, b_norms: torch.Tensor) -> torch.Tensor:
    """float32 d̃² for a block, in place on the product's buffer.

    The error bound assumes true float32 products: a process-wide ``set_float32_matmul_precision("medium")``
    (bf16/TF32 paths) would break it, so "highest" is enforced for the product.
    """
    previous = torch.get_float32_matmul_precision()
    if previous != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        d2 = torch.mm(a, b.T)
    finally:
        if previous != "highest":
            torch.set_float32_matmul_precision(previous)
    d2.mul_(-2.0).add_(a_norms[:, None]).add_(b_norms[None, :])
    return d2


def check_k(k: int, count: int, *, what: str, side: str) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise GenevalInputError(f"{what}: k must be a positive integer, got {k!r}")
    if k >= count:
        raise GenevalInputError(
            f"{what}: k={k} needs more than {k} samples in the {side} set (the k-th neighbour excludes the sample "
            f"itself); it has {count}"
        )


# ------------------------------------------------------------------------------------------- k nearest


@dataclass
class Neighbours:
    sq_distances: np.ndarray  # float64 [N, k], ascending, exact
    indices: np.ndarray  # int64 [N, k]

    @property
    def distances(self) -> np.ndarray:
        return np.sqrt(self.sq_distances)


def nearest(queries: Points, points: Points, *, k: int, exclude_self: bool = False) -> Neighbours:
    """The k nearest ``points`` of each query, exactly (float64 distances).

    ``exclude_self``: queries and points are one set (the same ``Points``) and a sample is not its own neighbour;
    then only blocks on and above the diagonal are computed, each serving its rows and (transposed) its columns.
    Ties between equidistant neighbours are broken arbitrarily; the distances do not depend on it.
    """
    if exclude_self and queries is not points:
        raise ValueError("exclude_self needs queries and points to be the same Points")
    available = points.count - (1 if exclude_self else 0)
    if k > available:
        raise GenevalInputError(f"k-NN: k={k} exceeds the {available} available neighbours")
    keep = min(k + EXTRA_CANDIDATES, available)
    out_d2 = np.empty((queries.count, k))
    out_idx = np.empty((queries.count, k), dtype=np.int64)
    p_norms = torch.from_numpy(points.sq_norms.astype(np.float32))
    q_norms = torch.from_numpy(queries.sq_norms.astype(np.float32))
    max_slack = float(points.slack.max())
    # Running candidates for every query; a real d̃² is finite, so the initial +inf entries are always displaced.
    best_val = torch.full((queries.count, keep), float("inf"))
    best_idx = torch.zeros((queries.count, keep), dtype=torch.int64)
    for qlo in range(0, queries.count, queries.chunk):
        qhi = min(qlo + queries.chunk, queries.count)
        q = queries.block(qlo, qhi)
        for plo in range(qlo if exclude_self else 0, points.count, points.chunk):
            phi = min(plo + points.chunk, points.count)
            p = q if (exclude_self and plo == qlo) else points.block(plo, phi)
            d2 = _sq_block(q, p, q_norms[qlo:qhi], p_norms[plo:phi])
            if exclude_self and plo == qlo:
                d2.fill_diagonal_(float("inf"))
            _keep_smallest(best_val, best_idx, qlo, d2, plo)
            if exclude_self and plo != qlo:
                _keep_smallest(best_val, best_idx, plo, d2.T, qlo)
        # Rows qlo..qhi−1 have now met every block (those left of the diagonal came earlier, as columns).
        d2_exact, idx_exact, complete = _refine(queries, points, qlo, best_val[qlo:qhi].numpy(),
                                                best_idx[qlo:qhi].numpy(), k, max_slack=max_slack,
                                                all_kept=keep == available)
        for row in np.flatnonzero(~complete):  # too many near-ties among the candidates: one exact row
            d2_exact[row], idx_exact[row] = _exact_row(queries, points, qlo + row, k, exclude_self=exclude_self)
        out_d2[qlo:qhi], out_idx[qlo:qhi] = d2_exact, idx_exact
    return Neighbours(out_d2, out_idx)


def _keep_smallest(best_val: torch.Tensor, best_idx: torch.Tensor, row_lo: int, d2: torch.Tensor, col_lo: int) -> None:
    """Merge a block's d̃² (rows from ``row_lo``, columns from ``col_lo``) into the running candidates.

    The block's own smallest ``keep`` come first (no index matrix of the block's size is ever built), then
    they are merged with the running ones: a [rows, 2·keep] problem.
    """
    rows = slice(row_lo, row_lo + d2.shape[0])
    keep = best_val.shape[1]
    take = min(keep, d2.shape[1])
    block_val, block_pos = torch.topk(d2, take, dim=1, largest=False, sorted=False)
    values = torch.cat([best_val[rows], block_val], dim=1)
    indices = torch.cat([best_idx[rows], block_pos + col_lo], dim=1)
    kept, pos = torch.topk(values, keep, dim=1, largest=False, sorted=False)
    best_val[rows] = kept
    best_idx[rows] = torch.gather(indices, 1, pos)


def _refine(queries: Points, points: Points, qlo: int, cand_val: np.ndarray, cand_idx: np.ndarray, k: int, *,
            max_slack: float, all_kept: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact distances of the candidates; ``complete[i]`` says no point outside them can be nearer."""
    rows, keep = cand_idx.shape
    exact = np.empty((rows, keep))
    step = max(1, _EXACT_PAIRS // keep)
    for lo in range(0, rows, step):
        hi = min(lo + step, rows)
        q = np.repeat(queries.rows(np.arange(qlo + lo, qlo + hi)), keep, axis=0)
        exact[lo:hi] = exact_sq_distances(q, points.rows(cand_idx[lo:hi].ravel())).reshape(hi - lo, keep)
    order = np.argsort(exact, axis=1, kind="stable")[:, :k]
    d2 = np.take_along_axis(exact, order, axis=1)
    idx = np.take_along_axis(cand_idx, order, axis=1)
    if all_kept:
        return d2, idx, np.ones(rows, dtype=bool)
    # Every excluded point has d̃² ≥ the largest kept d̃², hence d² ≥ that − tol; if that clears the k-th exact
    # distance, the k-th distance (and the set up to ties) is right. A k-th distance of 0 cannot be beaten.
    floor = cand_val.max(axis=1).astype(np.float64) - (queries.slack[qlo : qlo + rows] + max_slack)
    complete = (floor >= d2[:, -1]) | (d2[:, -1] == 0.0)
    return d2, idx, complete


def _exact_row(queries: Points, points: Points, i: int, k: int, *, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    q = queries.rows(np.array([i]))
    parts = []
    for lo in range(0, points.count, _EXACT_PAIRS):
        block = points.rows(np.arange(lo, min(lo + _EXACT_PAIRS, points.count)))
        parts.append(exact_sq_distances(np.broadcast_to(q, block.shape), block))
    d2 = np.concatenate(parts)
    if exclude_self:
        d2[i] = np.inf
    idx = np.argsort(d2, kind="stable")[:k]
    return d2[idx], idx


def kth_neighbour_sq_distances(points: Points, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Exact squared distance to the k-th nearest other sample of the same set, for each k in ``ks``."""
    found = nearest(points, points, k=max(ks), exclude_self=True)
    return {k: found.sq_distances[:, k - 1].copy() for k in ks}


# ------------------------------------------------------------------------------------------- balls


RULES = {
    "<=": lambda d2, r2: d2 <= r2,  # closed ball (Kynkäänniemi et al.; torch-fidelity)
    "<": lambda d2, r2: d2 < r2,  # open ball (prdc)
    "<|0": lambda d2, r2: (d2 < r2) | (d2 == 0.0),  # open ball that always holds its own centre
}


@dataclass
class BallCounts:
    """For one test over all (query, centre) pairs: per query, how many pairs pass; per centre, whether any does."""

    per_query: np.ndarray  # int64 [N_queries]
    any_per_centre: np.ndarray  # bool [N_centres]


def ball_membership(queries: Points, centres: Points, radii_sq: dict[str, np.ndarray],
                    rules: dict[str, tuple[str, str]]) -> dict[str, BallCounts]:
    """One pass over query × centre blocks: for each named test ``rules[name] = (radii key, rule)``, count per
    query the centres whose pair passes (``per_query``) and mark the centres with any passing pair
    (``any_per_centre``). Precision, density and coverage test d(q_i, c_j) against the centre's radius r_j;
    recall tests it against the query's radius r_i.

    ``radii_sq[key]`` gives r_j² per centre (``"centre:<key>"``) or per query (``"query:<key>"``: the ball is
    around the query and the test is d(q_i, c_j) ≤ r_i, e.g. recall).
    """
    out = {name: BallCounts(np.zeros(queries.count, np.int64), np.zeros(centres.count, bool)) for name in rules}
    for (qlo, clo), by_key in _classified_blocks(queries, centres, radii_sq, [key for key, _ in rules.values()]):
        for name, (key, rule) in rules.items():
            inside, pairs, d2_exact, r2_exact = by_key[key]
            hits = RULES[rule](d2_exact, r2_exact)
            _accumulate(out[name], inside, pairs[0][hits], pairs[1][hits], qlo, clo)
    return out


def _classified_blocks(queries: Points, centres: Points, radii_sq: dict[str, np.ndarray], keys):
    """The one pass over query × centre blocks that ball tests share: per block, its corner ``(qlo, clo)`` and, per
    radii key, ``_classify``'s certainly-inside pairs and ambiguous pairs (with float64 d² and r²)."""
    q_norms = torch.from_numpy(queries.sq_norms.astype(np.float32))
    c_norms = torch.from_numpy(centres.sq_norms.astype(np.float32))
    radii32 = {key: torch.from_numpy(r.astype(np.float32)) for key, r in radii_sq.items()}
    slack_q = torch.from_numpy(queries.slack.astype(np.float32))
    slack_c = torch.from_numpy(centres.slack.astype(np.float32))
    for qlo in range(0, queries.count, queries.chunk):
        qhi = min(qlo + queries.chunk, queries.count)
        q = queries.block(qlo, qhi)
        for clo in range(0, centres.count, centres.chunk):
            chi = min(clo + centres.chunk, centres.count)
            d2 = _sq_block(q, centres.block(clo, chi), q_norms[qlo:qhi], c_norms[clo:chi])
            slack = (slack_q[qlo:qhi], slack_c[clo:chi])
            by_key = {key: _classify(queries, centres, d2, slack, radii32[key], radii_sq[key], key, qlo, qhi, clo, chi)
                      for key in dict.fromkeys(keys)}
            del d2  # the block's distances are not needed by the consumer: free them before it allocates its own
            yield (qlo, clo), by_key


def _classify(queries, centres, d2, slack, r32, r64, key, qlo, qhi, clo, chi):
    """Pairs certainly inside (float32 clears the bound) and the ambiguous ones, with exact d² and r².

    The band around r² is tol(i, j) + 2u·r² with tol(i, j) = slack_i + slack_j: the radius side's terms form a
    vector ``own`` along the radius axis and the other side's slack a vector ``other``, so one float32 block
    temporary suffices: inside ⇔ d̃² − r² + own < −other; ambiguous ⇔ not inside and d̃² − r² − own ≤ other.
    """
    around_query = key.startswith("query")
    slack_q, slack_c = slack
    if around_query:
        r, own, other = r32[qlo:qhi, None], slack_q[:, None] + r32[qlo:qhi, None] * (2 * _U32), slack_c[None, :]
    else:
        r, own, other = r32[None, clo:chi], slack_c[None, :] + r32[None, clo:chi] * (2 * _U32), slack_q[:, None]
    shifted = d2 - r
    shifted += own
    inside = shifted < -other
    shifted -= 2 * own
    ambiguous_mask = shifted <= other
    del shifted
    ambiguous_mask &= ~inside
    ambiguous = torch.nonzero(ambiguous_mask).numpy()
    del ambiguous_mask
    qi, cj = ambiguous[:, 0], ambiguous[:, 1]
    d2_exact = np.empty(len(qi))
    for lo in range(0, len(qi), _EXACT_PAIRS):
        sl = slice(lo, lo + _EXACT_PAIRS)
        d2_exact[sl] = exact_sq_distances(queries.rows(qlo + qi[sl]), centres.rows(clo + cj[sl]))
    r2_exact = r64[qlo + qi] if around_query else r64[clo + cj]
    return inside, (qi, cj), d2_exact, r2_exact


def _accumulate(counts: BallCounts, inside: torch.Tensor, extra_q: np.ndarray, extra_c: np.ndarray,
                qlo: int, clo: int) -> None:
    per_query = inside.sum(dim=1).numpy()
    per_ball = inside.any(dim=0).numpy()
    counts.per_query[qlo : qlo + len(per_query)] += per_query
    np.add.at(counts.per_query, qlo + extra_q, 1)
    counts.any_per_centre[clo : clo + len(per_ball)] |= per_ball
    counts.any_per_centre[clo + extra_c] = True


def smallest_ball(queries: Points, centres: Points, radii_sq: np.ndarray, rule: str = "<") -> np.ndarray:
    """Per query, the smallest r_j² among the centres whose ball holds it (``RULES[rule](d², r_j²)``), else +inf.

    One pass over query × centre blocks, as ``ball_membership``: pairs that float32 decides with certainty are
    taken from the block, the others are rechecked in float64 (rarity score: the smallest k-NN ball of a real
    sample that holds a generated one).
    """
    if rule != "<":  # _classify's "certainly inside" is d² < r²; the other rules differ only on exact ties
        raise ValueError(f"smallest_ball supports the strict rule '<' only, got {rule!r}")
    best = np.full(queries.count, np.inf)
    r64 = torch.from_numpy(np.asarray(radii_sq, dtype=np.float64))
    for (qlo, clo), by_key in _classified_blocks(queries, centres, {"centre": radii_sq}, ["centre"]):
        inside, (qi, cj), d2_exact, r2_exact = by_key["centre"]
        block_min = torch.where(inside, r64[None, clo:clo + inside.shape[1]],
                                torch.tensor(np.inf, dtype=torch.float64)).amin(1)
        np.minimum(best[qlo:qlo + len(block_min)], block_min.numpy(), out=best[qlo:qlo + len(block_min)])
        hits = RULES[rule](d2_exact, r2_exact)
        np.minimum.at(best, qlo + qi[hits], r2_exact[hits])
    return best
