"""Lloyd's k-means with k-means++ seeding, in float64, deterministic given a seed (NDB's bins, PRD's clusters).

Memory. The rows are read in blocks of ``CHUNK`` from the caller's arrays (float32 or float64, one set or several,
optionally a subset of each): k-means on the union of two 50,000 × 2048 float32 feature banks holds no
concatenated copy and no float64 copy of them — a few ``CHUNK × D`` float64 blocks, the N-vector of distances to
the nearest centre and the labels. Every number is the one the same algorithm gives on the whole float64 matrix:
each row's distance is reduced on its own (NumPy's pairwise sum along the row), a centre is the sum of its members
accumulated row after row in index order, as ``x[members].mean(axis=0)`` does, divided by their count, and the
assignment's matrix products run on the same ``CHUNK``-row blocks (tests/test_metrics_prd.py checks the labels
and centres bit for bit against the single-matrix version this replaced).
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096


class StackedRows:
    """The rows of ``parts`` (``[n_i, D]`` arrays, each optionally restricted to the rows ``indices[i]``), one after
    the other, read as float64 blocks; never concatenated."""

    def __init__(self, *parts: np.ndarray, indices: tuple[np.ndarray | None, ...] | None = None):
        if not parts or any(np.ndim(p) != 2 for p in parts) or len({p.shape[1] for p in parts}) != 1:
            raise ValueError("StackedRows needs one or more [N, D] arrays of one D")
        self.parts = parts
        self.indices = indices or (None,) * len(parts)
        lengths = [len(p) if i is None else len(i) for p, i in zip(parts, self.indices)]
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), parts[0].shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def block(self, lo: int, hi: int) -> np.ndarray:
        """Rows lo..hi−1 as a float64 array (a view when one float64 part holds them all)."""
        pieces = []
        for part, index, start, stop in zip(self.parts, self.indices, self.starts[:-1], self.starts[1:]):
            a, b = max(lo, start) - start, min(hi, stop) - start
            if a < b:
                pieces.append(part[a:b] if index is None else part[index[a:b]])
        if len(pieces) == 1:
            return np.asarray(pieces[0], dtype=np.float64)
        return np.concatenate([np.asarray(p, dtype=np.float64) for p in pieces])

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The rows at ascending global positions ``index``, as a float64 array."""
        pieces = []
        bounds = np.searchsorted(index, self.starts)
        for part, local_index, start, a, b in zip(self.parts, self.indices, self.starts, bounds[:-1], bounds[1:]):
            if a < b:
                local = index[a:b] - start
                pieces.append(part[local if local_index is None else local_index[local]])
        return np.concatenate([np.asarray(p, dtype=np.float64) for p in pieces]) if len(pieces) > 1 else \
            np.asarray(pieces[0], dtype=np.float64)


def _rows(x) -> StackedRows:
    return x if isinstance(x, StackedRows) else StackedRows(np.asarray(x))


def _sq_distances_to(rows: StackedRows, centre: np.ndarray) -> np.ndarray:
    """((x − centre)²).sum(1) for every row, block by block."""
    out = np.empty(len(rows))
    for lo in range(0, len(rows), CHUNK):
        hi = min(lo + CHUNK, len(rows))
        diff = np.subtract(rows.block(lo, hi), centre)
        np.square(diff, out=diff)
        out[lo:hi] = diff.sum(axis=1)
    return out


def _mean_of(rows: StackedRows, members: np.ndarray) -> np.ndarray:
    """``x[members].mean(axis=0)``: NumPy sums axis 0 row after row, so a block is added onto the running sum by
    reducing it stacked under that sum, which keeps the order (and every rounding) of the one-array sum."""
    total = None
    for lo in range(0, len(members), CHUNK):
        block = rows.rows(members[lo : lo + CHUNK])
        total = np.add.reduce(block if total is None else np.vstack([total[None], block]), axis=0)
    return total / len(members)


def kmeans(x, *, k: int, seed: int, iterations: int = 100) -> np.ndarray:
    """Centres ``[k, D]`` by k-means++ seeding and Lloyd iterations (float64, deterministic given ``seed``).

    ``x``: an ``[N, D]`` array or ``StackedRows``."""
    rows = _rows(x)
    n, dim = rows.shape
    rng = np.random.default_rng(seed)
    centres = np.empty((k, dim))
    centres[0] = rows.rows(np.array([rng.integers(n)]))[0]
    closest = _sq_distances_to(rows, centres[0])
    for i in range(1, k):
        total = closest.sum()
        pick = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centres[i] = rows.rows(np.array([pick]))[0]
        closest = np.minimum(closest, _sq_distances_to(rows, centres[i]))
    labels = assign(rows, centres)
    for _ in range(iterations):
        for c in range(k):
            members = np.flatnonzero(labels == c)
            if len(members):  # an empty bin keeps its centre
                centres[c] = _mean_of(rows, members)
        new = assign(rows, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return centres


def assign(x, centres: np.ndarray, *, chunk: int = CHUNK) -> np.ndarray:
    """Index of the nearest centre for each row (squared Euclidean, float64)."""
    rows = _rows(x)
    c_norms = (centres**2).sum(1)
    out = np.empty(len(rows), np.int64)
    for lo in range(0, len(rows), chunk):
        block = rows.block(lo, min(lo + chunk, len(rows)))
        out[lo : lo + chunk] = np.argmin(c_norms[None, :] - 2 * block @ centres.T, axis=1)
    return out
