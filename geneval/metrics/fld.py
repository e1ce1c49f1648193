"""FLD, the Feature Likelihood Divergence (Jiralerspong et al. 2023, "Feature Likelihood Divergence: Evaluating the
Generalization of Generative Models Using Samples").

Three feature sets: ``train`` (the model's training data: ``--ref``), ``test`` (held-out real data the model never
saw: ``--heldout``) and the generated samples. As the reference implementation (marcojira/fld, ``FLD(eval_feat=
"test")``, ``fld/MoG.py``) does:

1. At most ``gen_size`` = 10,000 generated samples are used (a seeded random subset beyond that).
2. All three sets are standardised with the test set's per-dimension mean and (unbiased) standard deviation.
3. A Gaussian KDE is centred on the generated samples: the mixture (1/m) Σ_j N(x | g_j, σ_j² I). Its per-sample
   log-variances s_j = log σ_j² are fitted to the train set by Adam (lr 0.5, batches of 10,000 shuffled train
   samples, at most 50 epochs, stopping once the epoch loss moved < 5e-4 over the last 5 epochs), starting from
   s_j = log((min_i ‖x_i − g_j‖² + 1e-3)/d) and clamped to [−40, 40] after each step. During the fit only, each
   train sample x also has an extra, unweighted component: a Gaussian of log-variance s_0 (fitted too) at squared
   distance 0.81·‖x − x̄‖² from the train mean x̄, which bounds every sample's likelihood from below.
4. The score is the test set's mean negative log-likelihood per dimension, −(1/d) log p(x_test), minus the same
   quantity for a baseline KDE centred on min(m, N_train/2) shuffled train samples and fitted on the other train
   samples, times 100. Lower is better; memorised training samples raise it (test samples fall between them).

Feature dimensions that are constant over the test set (e.g. a ReLU unit that no held-out image activates) have
standard deviation 0: the reference divides by it, so every standardised test sample holds a NaN (0/0) and its
FLD is NaN — undefined. Here those dimensions are left out of all three sets, listed in ``dropped_dims`` (and
warned about by ``geneval score``), and FLD is computed on the others, d counting only them: a dimension in which
the test set does not vary has no test-set scale to standardise by, so it can carry no test likelihood. Where the
reference is defined (no constant dimension) nothing changes; where it is not, the value equals the reference's
on the features without those dimensions (tests/test_metrics_fld.py).

The randomness (the subset, the shuffles) comes from one ``numpy.random.Generator(seed)``, in the reference's
order. All arithmetic is float64 (the reference runs in float32). The fit's gradient is computed in closed form
over row chunks rather than by autograd over a whole batch: d/ds_j of the loss is
−(1/(B d)) Σ_i r_ij (½ ‖x_i − g_j‖² e^{−s_j} − d/2), r_ij the responsibilities.

Memory: no float64 copy of the train or test set is made. Their rows are read from the caller's arrays (float32 or
float64) in blocks of ``ROWS``, upcast, standardised and shuffled on the fly (the same numbers, element by element,
as standardising the whole set); only the ≤ 10,000 generated centres are held in float64. The reference caches
the squared distances of the fit set to the centres (float32, 4 × N_train × m bytes; 2 GB at N_train = 50,000,
m = 10,000). Here they are cached, float64, only up to ``cache_mb`` (default ``DEFAULT_CACHE_MB`` = 64 MiB;
``--fld-cache-mb``), the fit set's first blocks; the other blocks are recomputed each epoch from the same rows,
so the distances (and FLD) do not depend on the budget, only the time does: at 50,000 × 10,000 × 2048 a
recomputed epoch costs ~2 TFLOP (`--fld-cache-mb 4096` keeps them all). The ``[ROWS, m]`` temporaries live in
three buffers allocated once per KDE, not once per block (which grows glibc's heap). FLD at 50,000 train
(``--ref``) × 50,000 generated (10,000 used) × 10,000 held-out, dimension 2048, peaks at 1.82 GiB RSS for the
whole process, the float32 feature arrays (0.83 GiB) and torch (0.5 GiB) included
(benchmarks/bench_post_fid_memory.py). tests/test_metrics_fld.py transcribes the
reference's algorithm (autograd Adam over whole batches) in float64 and agrees to ≤ 1e-9 relative, whatever the
cache budget; the blockwise version agrees with the previous whole-matrix one to ≤ 1e-14.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.knn import check_same_dim, feature_matrix

DEFAULT_GEN_SIZE = 10_000
DEFAULT_CACHE_MB = 64
LR = 0.5
NUM_EPOCHS = 50
BATCH_SIZE = 10_000
ORIGIN_DIST_PROP = 0.1
ROWS = 256  # rows per block of the distance and gradient computations: 256 × 10,000 float64 = 20 MB per temporary


@dataclass(frozen=True)
class FLDResult:
    fld: float
    test_nll: float  # mean NLL per dimension of the test set under the KDE on the generated samples
    baseline_nll: float  # the same under the KDE on half of the train set
    num_gen_used: int
    epochs: int  # of the generated KDE's fit
    baseline_epochs: int
    seed: int
    dropped_dims: tuple[int, ...] = ()  # feature dimensions constant over the test set, left out (see ``fld``)


class Rows:
    """A feature set read in float64 blocks: rows ``order`` (all, in order, if None) of ``raw``, columns ``columns``,
    then each standardisation ``(x − mean) / std`` of ``steps`` in turn — never materialised whole."""

    def __init__(self, raw: np.ndarray, *, order: np.ndarray | None = None, columns: torch.Tensor | None = None,
                 steps: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()):
        self.raw, self.order, self.columns, self.steps = raw, order, columns, steps
        self.dim = raw.shape[1] if columns is None else len(columns)

    def __len__(self) -> int:
        return len(self.raw) if self.order is None else len(self.order)

    def block(self, lo: int, hi: int, out: np.ndarray | None = None) -> torch.Tensor:
        """Rows lo..hi−1, a float64 copy; ``out``: a ``[≥ hi − lo, raw columns]`` float64 buffer to fill."""
        if out is None:
            picked = self.raw[lo:hi] if self.order is None else self.raw[self.order[lo:hi]]
            x = torch.from_numpy(np.array(picked, dtype=np.float64))  # a copy: standardised in place below
        else:
            buffer = out[: hi - lo]
            if self.order is None:
                np.copyto(buffer, self.raw[lo:hi])
            else:
                for start in range(0, hi - lo, 32):  # gathered in small pieces: no block-sized temporary
                    stop = min(start + 32, hi - lo)
                    np.copyto(buffer[start:stop], self.raw[self.order[lo + start : lo + stop]])
            x = torch.from_numpy(buffer)
        if self.columns is not None:
            x = x[:, self.columns]
        for mean, std in self.steps:
            x.sub_(mean).div_(std)
        return x

    def all(self) -> torch.Tensor:
        return self.block(0, len(self))

    def reordered(self, order: np.ndarray) -> "Rows":
        """Rows ``order`` of this set (positions in it)."""
        return Rows(self.raw, order=order if self.order is None else self.order[order], columns=self.columns,
                    steps=self.steps)

    def standardised(self, mean: torch.Tensor, std: torch.Tensor) -> "Rows":
        return Rows(self.raw, order=self.order, columns=self.columns, steps=(*self.steps, (mean, std)))

    def mean(self) -> torch.Tensor:
        total = torch.zeros(self.dim, dtype=torch.float64)
        for lo in range(0, len(self), ROWS):
            total += self.block(lo, min(lo + ROWS, len(self))).sum(dim=0)
        return total / len(self)


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    """(x * x).sum(1), ``ROWS`` rows at a time (each row's sum is the same; no copy of ``x``)."""
    out = torch.empty(len(x), dtype=torch.float64)
    for lo in range(0, len(x), ROWS):
        rows = x[lo : lo + ROWS]
        out[lo : lo + ROWS] = (rows * rows).sum(1)
    return out


def sq_distances(x: torch.Tensor, centres: torch.Tensor, c_norms: torch.Tensor | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """float64 ‖x_i − c_j‖² ``[len(x), len(c)]``, computed over row blocks (≥ 0), into ``out`` if given."""
    c_norms = _row_norms(centres) if c_norms is None else c_norms
    out = torch.empty((len(x), len(centres)), dtype=torch.float64) if out is None else out
    for lo in range(0, len(x), ROWS):
        rows = x[lo : lo + ROWS]
        block = out[lo : lo + ROWS]
        torch.mm(rows, centres.T, out=block)
        block.mul_(-2).add_((rows * rows).sum(1)[:, None]).add_(c_norms[None, :]).clamp_(min=0)
    return out


def _logsumexp_rows(x: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(x, dim=1)``, the same operations in the same order, with ``work`` (x's shape) for its
    one temporary (a fresh temporary for every block grows the heap)."""
    maxes = x.amax(dim=1, keepdim=True)
    maxes.masked_fill_(maxes.abs() == math.inf, 0)
    torch.sub(x, maxes, out=work).exp_()
    return work.sum(dim=1).log_().add_(maxes[:, 0])


class GaussianKDE:
    """(1/m) Σ_j N(x | centres_j, exp(log_var_j) I), with per-centre log-variances fitted by maximum likelihood.

    The ``[ROWS, m]`` temporaries of the distance and likelihood blocks live in three buffers allocated once."""

    def __init__(self, centres: torch.Tensor):
        self.centres = centres
        self.c_norms = _row_norms(centres)
        self.count, self.dim = centres.shape
        self.log_var = torch.zeros(self.count, dtype=torch.float64)
        self._work = torch.empty((3, ROWS, self.count), dtype=torch.float64)
        self._rows: np.ndarray | None = None  # the fit set's row block, float64 ``[ROWS, raw columns]``

    def _component_lls(self, d2: torch.Tensor, log_var: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        scale = -0.5 * torch.exp(-log_var)
        out = d2 * scale if out is None else torch.mul(d2, scale, out=out)
        out -= (self.dim / 2) * log_var
        out -= (self.dim / 2) * math.log(2 * math.pi)
        return out

    def _distances(self, x: Rows, lo: int, hi: int) -> torch.Tensor:
        return sq_distances(x.block(lo, hi, out=self._rows), self.centres, self.c_norms, out=self._work[0, : hi - lo])

    def fit(self, x: Rows, rng: np.random.Generator, *, cache_bytes: int) -> int:
        """Fit the log-variances to ``x`` as the reference does; returns the number of epochs run.

        The fit set is read in blocks of ``ROWS`` rows within each batch of ``BATCH_SIZE``; the first blocks'
        distances to the centres are kept while they fit in ``cache_bytes``, the others recomputed each epoch
        from the same rows (the same numbers)."""
        mean_x = x.mean()[None, :]
        x = x.reordered(rng.choice(len(x), len(x), replace=False))
        self._rows = np.empty((ROWS, x.raw.shape[1]))
        batches = [[(lo, min(lo + ROWS, stop)) for lo in range(start, stop, ROWS)]
                   for start in range(0, len(x), BATCH_SIZE) for stop in (min(start + BATCH_SIZE, len(x)),)]
        cache: dict[int, torch.Tensor] = {}  # by block start: the first blocks, while they fit in cache_bytes
        cached_bytes, cache_full = 0, False
        origin_d2 = torch.empty(len(x), dtype=torch.float64)
        closest = torch.full((self.count,), math.inf, dtype=torch.float64)
        for lo, hi in (block for batch in batches for block in batch):  # initial bandwidths, origin, cache
            rows = x.block(lo, hi, out=self._rows)
            d2 = sq_distances(rows, self.centres, self.c_norms, out=self._work[0, : hi - lo])
            torch.minimum(closest, d2.amin(dim=0), out=closest)
            origin_d2[lo:hi] = (1 - ORIGIN_DIST_PROP) ** 2 * sq_distances(rows, mean_x)[:, 0]
            cache_full = cache_full or cached_bytes + 8 * d2.numel() > cache_bytes
            if not cache_full:
                cache[lo] = d2.clone()
                cached_bytes += 8 * d2.numel()
        self.log_var = ((closest + 1e-3) / self.dim).log()
        origin_log_var = torch.zeros((), dtype=torch.float64)
        params = [self.log_var.requires_grad_(), origin_log_var.requires_grad_()]
        optimiser = torch.optim.Adam(params, lr=LR)
        losses: list[float] = []
        epoch = 0
        for epoch in range(NUM_EPOCHS):
            batch_losses = []
            for batch in batches:
                loss, grad, origin_grad = self._loss_and_grad(x, batch, cache, origin_d2, origin_log_var.detach())
                optimiser.zero_grad()
                self.log_var.grad, origin_log_var.grad = grad, origin_grad
                optimiser.step()
                with torch.no_grad():
                    self.log_var.clamp_(-40, 40)
                batch_losses.append(loss)
            losses.append(sum(batch_losses) / len(batch_losses))
            if epoch > 5 and max(abs(losses[-1] - losses[-j]) for j in range(1, 6)) < 5e-4:
                break
        self.log_var = self.log_var.detach()
        self._rows = None
        return epoch + 1

    def _loss_and_grad(self, x: Rows, batch: list[tuple[int, int]], cache: dict[int, torch.Tensor],
                       origin_d2: torch.Tensor,
                       origin_log_var: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """The batch loss −mean_i log p̃(x_i) / d over the batch's row blocks (with the origin component) and its
        gradients, block by block; distances from the cache, else recomputed from the same rows."""
        log_var = self.log_var.detach()
        inv_var, origin_inv_var = torch.exp(-log_var), torch.exp(-origin_log_var)
        total_ll, grad, origin_grad = 0.0, torch.zeros_like(log_var), torch.zeros((), dtype=torch.float64)
        for lo, hi in batch:
            d2 = cache[lo] if lo in cache else self._distances(x, lo, hi)
            lls = self._component_lls(d2, log_var, out=self._work[1, : hi - lo])
            lls -= math.log(self.count)
            origin = self._component_lls(origin_d2[lo:hi], origin_log_var)
            norm = torch.logaddexp(_logsumexp_rows(lls, self._work[2, : hi - lo]), origin)
            total_ll += float(norm.sum())
            lls.sub_(norm[:, None]).exp_()  # responsibilities r_ij
            weight = torch.mul(d2, 0.5 * inv_var, out=self._work[2, : hi - lo])
            weight -= self.dim / 2
            weight *= lls
            grad += weight.sum(0)
            origin_grad += (torch.exp(origin - norm) * (0.5 * origin_d2[lo:hi] * origin_inv_var - self.dim / 2)).sum()
        size = batch[-1][1] - batch[0][0]
        scale = -1.0 / (size * self.dim)
        return -total_ll / (size * self.dim), grad * scale, origin_grad * scale

    def nll_per_dim(self, x: Rows | torch.Tensor) -> torch.Tensor:
        """−log p(x_i) / d for each row of ``x`` (no origin component)."""
        out = torch.empty(len(x), dtype=torch.float64)
        buffer = np.empty((ROWS, x.raw.shape[1])) if isinstance(x, Rows) else None
        for lo in range(0, len(x), ROWS):
            n = min(ROWS, len(x) - lo)
            rows = x.block(lo, lo + n, out=buffer) if isinstance(x, Rows) else x[lo : lo + n]
            d2 = sq_distances(rows, self.centres, self.c_norms, out=self._work[0, :n])
            lls = self._component_lls(d2, self.log_var, out=self._work[1, :n])
            out[lo : lo + ROWS] = -(_logsumexp_rows(lls, self._work[2, :n]) - math.log(self.count)) / self.dim
        return out


def _finite(x: np.ndarray, *, what: str) -> np.ndarray:
    bad = sum(int((~np.isfinite(x[lo : lo + 4096])).sum()) for lo in range(0, len(x), 4096))
    if bad:
        raise GenevalInputError(f"{what}: features contain {bad} NaN or infinite values")
    return x


def fld(gen, train, test, *, gen_size: int = DEFAULT_GEN_SIZE, seed: int = 0,
        cache_mb: int = DEFAULT_CACHE_MB) -> FLDResult:
    """Test FLD of generated features against the model's training features and held-out test features.

    ``cache_mb``: memory for the train-to-centre distances kept between epochs (MiB); the result does not
    depend on it (see the module docstring)."""
    g_raw, tr_raw, te_raw = (_finite(feature_matrix(v, what=f"FLD {name} features"), what=f"FLD {name} features")
                             for v, name in ((gen, "generated"), (train, "train"), (test, "test")))
    check_same_dim(("generated", g_raw), ("train", tr_raw), ("test", te_raw), what="FLD")
    if isinstance(gen_size, bool) or not isinstance(gen_size, (int, np.integer)) or gen_size < 1:
        raise GenevalInputError(f"FLD: gen_size must be a positive integer, got {gen_size!r}")
    numeric = isinstance(cache_mb, (int, float, np.integer, np.floating)) and not isinstance(cache_mb, bool)
    if not numeric or not cache_mb >= 0:
        raise GenevalInputError(f"FLD: cache_mb must be ≥ 0, got {cache_mb!r}")
    for name, count, least in (("generated", len(g_raw), 2), ("train", len(tr_raw), 4), ("test", len(te_raw), 2)):
        if count < least:
            raise GenevalInputError(f"FLD: needs at least {least} {name} samples, got {count}")
    te = torch.from_numpy(np.array(te_raw, dtype=np.float64))
    constant = te.std(dim=0) == 0
    if bool(constant.all()):
        raise GenevalInputError(f"FLD: all {len(constant)} feature dimensions are constant over the test set; FLD "
                                "standardises by the test set's standard deviation")
    dropped = tuple(int(i) for i in torch.nonzero(constant)[:, 0])
    keep = torch.nonzero(~constant)[:, 0] if dropped else None  # the reference divides by 0 there: NaN
    if keep is not None:
        te = te[:, keep]
    rng = np.random.default_rng(seed)
    g_rows = Rows(g_raw, columns=keep)
    if len(g_raw) > gen_size:
        g_rows = g_rows.reordered(rng.choice(len(g_raw), gen_size, replace=False))
    mean, std = te.mean(dim=0), te.std(dim=0)
    del te  # every set is read again in blocks, standardised on the fly
    te_n = Rows(te_raw, columns=keep).standardised(mean, std)
    tr = Rows(tr_raw, columns=keep).standardised(mean, std)
    num_gen = len(g_rows)
    kde = GaussianKDE(g_rows.standardised(mean, std).all())
    cache_bytes = int(cache_mb * 2**20)
    epochs = kde.fit(tr, rng, cache_bytes=cache_bytes)
    test_nll = float(kde.nll_per_dim(te_n).mean())
    del kde
    # The baseline, as the reference: it standardises its (already standardised) inputs again by the test set.
    whole = te_n.all()
    mean_b, std_b = whole.mean(dim=0), whole.std(dim=0)
    del whole
    te_b = te_n.standardised(mean_b, std_b)
    tr_b = tr.standardised(mean_b, std_b).reordered(rng.choice(len(tr), len(tr), replace=False))
    split = min(num_gen, len(tr_b) // 2)
    baseline = GaussianKDE(tr_b.reordered(np.arange(split)).all())
    baseline_epochs = baseline.fit(tr_b.reordered(np.arange(split, len(tr_b))), rng, cache_bytes=cache_bytes)
    baseline_nll = float(baseline.nll_per_dim(te_b).mean())
    return FLDResult(100 * (test_nll - baseline_nll), test_nll, baseline_nll, num_gen, epochs, baseline_epochs, seed,
                     dropped)


def _score_fld(inputs: MetricInputs) -> MetricValue:
    if inputs.heldout is None:
        raise GenevalInputError("fld needs held-out real samples that the model never saw (--heldout, e.g. "
                                "fashion-mnist:test when --ref is fashion-mnist:train, the model's training set)")
    seed = inputs.options.seed
    result = fld(inputs.gen_features(), inputs.ref_features(), inputs.heldout.features[inputs.layer],
                 gen_size=inputs.params["fld_gen_size"], seed=seed, cache_mb=inputs.params["fld_cache_mb"])
    if result.dropped_dims:
        inputs.warnings.append(
            f"fld: {len(result.dropped_dims)} feature dimensions are constant over the held-out set (the reference "
            f"divides by their zero standard deviation and returns NaN); FLD is computed on the other "
            f"{inputs.heldout.features[inputs.layer].shape[1] - len(result.dropped_dims)}")
    return MetricValue(result.fld, None, {
        "test_nll_per_dim": result.test_nll, "baseline_nll_per_dim": result.baseline_nll,
        "num_gen_used": result.num_gen_used, "num_heldout": inputs.heldout.count, "fit_epochs": result.epochs,
        "baseline_fit_epochs": result.baseline_epochs, "seed": seed, "eval_set": "test (held-out)",
        "dims_dropped_constant_over_test": list(result.dropped_dims)})


register_metric(MetricSpec(
    "fld", "FLD", higher_is_better=False, needs_reference=True, reference_needs_features=True,
    compute=_score_fld, layer_role="prdc", needs_heldout=True,
    params=(Param("fld_gen_size", int, DEFAULT_GEN_SIZE, "FLD: most generated samples used (a seeded subset).",
                  min=1),
            Param("fld_cache_mb", int, DEFAULT_CACHE_MB, "FLD: MiB of train-to-centre distances kept between epochs; "
                  "the rest are recomputed each epoch (same value, more time).", min=0)),
    reference="Jiralerspong et al. 2023 (marcojira/fld, FLD(eval_feat='test'))",
    ci_caveat="resampling with replacement duplicates generated samples, which become duplicate KDE centres "
              "(fewer distinct ones), and each resample re-fits the bandwidths; the resamples' FLD is biased high, "
              "and so is the interval",
))
