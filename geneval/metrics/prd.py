"""PRD: precision and recall for distributions (Sajjadi et al. 2018, "Assessing Generative Models via Precision and
Recall").

The generated features (P, "eval") and the reference features (Q) are pooled and clustered by k-means into K = 20
clusters; the two cluster histograms p and q give, for each slope λ = tan θ on 1001 angles θ equally spaced in
[ε, π/2 − ε] (ε = 1e-10),

    α(λ) = Σ_i min(λ q_i, p_i)   (precision),        β(λ) = α(λ) / λ   (recall),

both clipped to [0, 1]. Clustering is repeated 10 times and the curves averaged. The curve is summarised by

    F_β = max_λ (1 + β²) α β_rec / (β² α + β_rec + ε)   for β = 8 and β = 1/8,

F_8 as a recall-like and F_{1/8} as a precision-like number: two metrics, ``prd_f8`` (recall) and ``prd_f1_8``
(precision), computed once per scoring call. Identical distributions give F_8 = F_{1/8} = 1; disjoint ones 0.

Reference implementation: msmsajjadi/precision-recall-distributions ``prd_score.py`` (also in google/compare_gan).
``prd_curve`` and ``f_beta_max`` are its ``compute_prd`` and ``prd_to_max_f_beta_pair``: given the same histograms
they give the same curve and F values bit for bit (tests/test_metrics_prd.py re-derives them). The clustering
differs in implementation: the reference runs scikit-learn's ``MiniBatchKMeans(n_clusters=20, n_init=10)``,
unseeded; we run full-batch Lloyd k-means with k-means++ seeding in float64 (``geneval.metrics.kmeans``), one
initialisation per run, run r seeded with ``seed + r`` — reproducible, and the same estimator in distribution,
not cluster for cluster. The reference refuses sets of different sizes (k-means would favour the larger set);
here the larger set is subsampled without replacement, seeded, to the smaller one's size (``num_used`` in the
details).

Memory: the union is never built. The k-means reads the two feature arrays (and the subsample's row indices) in
blocks of 4096 rows, upcast to float64 per block, so beyond the caller's arrays it holds O(N + 4096·D) floats:
at 50,000 × 50,000 float32 features of dimension 2048, 1.53 GiB peak RSS for the whole process, both banks
included (benchmarks/bench_post_fid_memory.py), where the union and its float64 copies took ≈ 5 GB.

``plot_prd`` draws the curves of several models on one PNG (``geneval score --out-dir DIR`` writes
``DIR/prd_curve.png`` for the scored model and the curve itself, ``DIR/prd_curve.npz``, which ``geneval prd-plot``
reads to draw several models together, as the reference's ``prd_from_image_folders.py`` does).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.kmeans import CHUNK, StackedRows, assign, kmeans
from geneval.metrics.knn import check_same_dim, feature_matrix

DEFAULT_CLUSTERS = 20
DEFAULT_ANGLES = 1001
DEFAULT_RUNS = 10
BETA = 8.0
_EPSILON = 1e-10


@dataclass(frozen=True)
class PRDCurve:
    precision: np.ndarray  # float64 [num_angles]
    recall: np.ndarray  # float64 [num_angles]
    f_beta: float  # max F_8 (recall-like)
    f_beta_inv: float  # max F_{1/8} (precision-like)
    num_clusters: int
    num_runs: int
    num_used: int  # samples per side after balancing
    seed: int


def prd_curve(eval_dist: np.ndarray, ref_dist: np.ndarray, *, num_angles: int = DEFAULT_ANGLES,
              epsilon: float = _EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """The PRD curve ``(precision, recall)`` of the histogram ``eval_dist`` against ``ref_dist`` (both summing to 1)."""
    if not 0 < epsilon < 0.1:
        raise GenevalInputError(f"PRD: epsilon must be in (0, 0.1), got {epsilon}")
    if not 3 <= num_angles <= 1_000_000:
        raise GenevalInputError(f"PRD: num_angles must be in [3, 1e6], got {num_angles}")
    slopes = np.tan(np.linspace(epsilon, np.pi / 2 - epsilon, num=num_angles))
    precision = np.minimum(np.asarray(ref_dist)[None, :] * slopes[:, None], np.asarray(eval_dist)[None, :]).sum(axis=1)
    recall = precision / slopes
    # Histograms summing to 1 give values ≤ 1 up to rounding; the reference clips them (and refuses > 1.001).
    if max(precision.max(), recall.max()) > 1.001:
        raise GenevalInputError("PRD: precision or recall above 1.001; the histograms must each sum to 1")
    return np.clip(precision, 0, 1), np.clip(recall, 0, 1)


def f_beta_max(precision: np.ndarray, recall: np.ndarray, beta: float = BETA,
               epsilon: float = _EPSILON) -> tuple[float, float]:
    """(max F_β, max F_{1/β}) over the curve's points."""
    def f(b):
        return (1 + b**2) * (precision * recall) / ((b**2 * precision) + recall + epsilon)

    return float(np.max(f(beta))), float(np.max(f(1 / beta)))


def cluster_histograms(eval_data: np.ndarray, ref_data: np.ndarray, *, num_clusters: int, seed: int,
                       eval_rows: np.ndarray | None = None,
                       ref_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histograms (summing to 1) of the two sets over k-means clusters of their union (read in blocks, never
    concatenated); ``eval_rows`` / ``ref_rows``: use only those rows of a set."""
    union = StackedRows(eval_data, ref_data, indices=(eval_rows, ref_rows))
    num_eval = len(eval_data) if eval_rows is None else len(eval_rows)
    labels = assign(union, kmeans(union, k=num_clusters, seed=seed))
    eval_hist = np.bincount(labels[:num_eval], minlength=num_clusters) / num_eval
    ref_hist = np.bincount(labels[num_eval:], minlength=num_clusters) / (len(labels) - num_eval)
    return eval_hist, ref_hist


def _features(value, *, what: str) -> np.ndarray:
    """``[N, D]`` float32/float64 without a copy; NaN and infinities refused (checked in blocks)."""
    x = feature_matrix(value, what=what)
    bad = sum(int((~np.isfinite(x[lo : lo + CHUNK])).sum()) for lo in range(0, len(x), CHUNK))
    if bad:
        raise GenevalInputError(f"{what}: features contain {bad} NaN or infinite values")
    return x


def prd(gen, ref, *, num_clusters: int = DEFAULT_CLUSTERS, num_angles: int = DEFAULT_ANGLES,
        num_runs: int = DEFAULT_RUNS, seed: int = 0) -> PRDCurve:
    """The PRD curve of generated features ``gen`` against reference features ``ref`` (both ``[N, D]``)."""
    x = _features(gen, what="PRD generated features")
    y = _features(ref, what="PRD reference features")
    check_same_dim(("generated", x), ("reference", y), what="PRD")
    for name, value, low in (("num_clusters", num_clusters, 2), ("num_runs", num_runs, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise GenevalInputError(f"PRD: {name} must be an integer ≥ {low}, got {value!r}")
    num_used = min(len(x), len(y))
    if 2 * num_used < num_clusters:
        raise GenevalInputError(f"PRD: {num_clusters} clusters need at least {num_clusters} samples in the union; "
                                f"it has {2 * num_used} after balancing")
    rng = np.random.default_rng(seed)
    x_rows = np.sort(rng.choice(len(x), num_used, replace=False)) if len(x) > num_used else None
    y_rows = np.sort(rng.choice(len(y), num_used, replace=False)) if len(y) > num_used else None
    curves = []
    for run in range(num_runs):
        eval_hist, ref_hist = cluster_histograms(x, y, num_clusters=num_clusters, seed=seed + run, eval_rows=x_rows,
                                                 ref_rows=y_rows)
        curves.append(prd_curve(eval_hist, ref_hist, num_angles=num_angles))
    precision = np.mean([c[0] for c in curves], axis=0)
    recall = np.mean([c[1] for c in curves], axis=0)
    f8, f1_8 = f_beta_max(precision, recall)
    return PRDCurve(precision, recall, f8, f1_8, num_clusters, num_runs, num_used, seed)


def plot_prd(curves: Mapping[str, PRDCurve | tuple[np.ndarray, np.ndarray]], path, *, dpi: int = 150) -> Path:
    """Draw the PRD curves of several models (label → curve) on one PNG, written atomically to ``path``."""
    from geneval.atomic import write_bytes_atomic
    from geneval.optional import require_plotting

    require_plotting("plot_prd")
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        precision, recall = (curve.precision, curve.recall) if isinstance(curve, PRDCurve) else curve
        name = label
        if isinstance(curve, PRDCurve):
            name = f"{label} (F8 {curve.f_beta:.3f}, F1/8 {curve.f_beta_inv:.3f})"
        ax.plot(recall, precision, label=name, linewidth=1.5)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Recall β", ylabel="Precision α", title="PRD (Sajjadi et al. 2018)")
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return write_bytes_atomic(path, buffer.getvalue())


_CURVE_ARRAYS = ("precision", "recall")
_CURVE_SCALARS = {"f_beta": float, "f_beta_inv": float, "num_clusters": int, "num_runs": int, "num_used": int,
                  "seed": int}


def save_prd_curve(curve: PRDCurve, path) -> Path:
    """Write ``curve`` as a plain .npz (arrays and scalars, no pickles), atomically."""
    from geneval.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **{name: getattr(curve, name) for name in (*_CURVE_ARRAYS, *_CURVE_SCALARS)})
    return write_bytes_atomic(path, buffer.getvalue())


def load_prd_curve(path) -> PRDCurve:
    """A curve written by ``save_prd_curve`` (``geneval score --metrics prd_f8 --out-dir DIR``: DIR/prd_curve.npz),
    checked: one line naming the file and what was expected otherwise. Nothing in it can run code."""
    expected = "a PRD curve .npz as `geneval score --metrics prd_f8 --out-dir DIR` writes (DIR/prd_curve.npz)"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*_CURVE_ARRAYS, *_CURVE_SCALARS) if k not in data.files]
            if missing:
                raise GenevalInputError(f"{path}: no {', '.join(missing)}; expected {expected}")
            arrays = {k: np.asarray(data[k], dtype=np.float64) for k in _CURVE_ARRAYS}
            scalars = {k: kind(data[k].item()) if data[k].shape == () else None for k, kind in _CURVE_SCALARS.items()}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # not a file, not a zip, a pickled array
        raise GenevalInputError(f"{path}: cannot read it ({error}); expected {expected}") from None
    precision, recall = arrays["precision"], arrays["recall"]
    if precision.ndim != 1 or precision.shape != recall.shape or len(precision) < 3 or None in scalars.values():
        raise GenevalInputError(f"{path}: precision and recall must be 1-D of one length ≥ 3 and the summary values "
                                f"scalars; expected {expected}")
    if not (np.isfinite(precision).all() and np.isfinite(recall).all()) or \
            min(precision.min(), recall.min()) < 0 or max(precision.max(), recall.max()) > 1:
        raise GenevalInputError(f"{path}: precision and recall must lie in [0, 1]; expected {expected}")
    return PRDCurve(precision, recall, **scalars)


# ------------------------------------------------------------------------------------------- registry

PARAMS = (
    Param("prd_clusters", int, DEFAULT_CLUSTERS, "PRD: k-means clusters of the pooled features.", min=2),
    Param("prd_runs", int, DEFAULT_RUNS, "PRD: k-means runs whose curves are averaged.", min=1),
    Param("prd_angles", int, DEFAULT_ANGLES, "PRD: angles of the curve.", min=3, max=1_000_000),
)


def _score(inputs: MetricInputs) -> PRDCurve:
    clusters, runs, angles = (inputs.params[n] for n in ("prd_clusters", "prd_runs", "prd_angles"))
    seed = inputs.options.seed

    def compute():
        curve = prd(inputs.gen_features(), inputs.ref_features(), num_clusters=clusters, num_angles=angles,
                    num_runs=runs, seed=seed)
        out_dir = getattr(inputs.options, "out_dir", None)
        if out_dir is not None:  # the curve itself too, so that `geneval prd-plot` can draw several models on one plot
            save_prd_curve(curve, Path(out_dir) / "prd_curve.npz")
            plot_prd({"generated": curve}, Path(out_dir) / "prd_curve.png")
        return curve

    return inputs.cache.get(("prd", inputs.layer, clusters, runs, angles, seed), compute)


def _adapter(which: str):
    def compute(inputs: MetricInputs) -> MetricValue:
        curve = _score(inputs)
        details = {"beta": BETA if which == "f_beta" else 1 / BETA, "num_clusters": curve.num_clusters,
                   "num_runs": curve.num_runs, "num_angles": len(curve.precision), "num_used": curve.num_used,
                   "kmeans_seed": curve.seed, "kmeans": "Lloyd, k-means++ seeding, float64 (not MiniBatchKMeans)"}
        if getattr(inputs.options, "out_dir", None) is not None:
            details["curve_png"] = str(Path(inputs.options.out_dir) / "prd_curve.png")
        return MetricValue(getattr(curve, which), None, details)

    return compute


_REFERENCE = "Sajjadi et al. 2018 (msmsajjadi/precision-recall-distributions prd_score.py; google/compare_gan)"
_CI_CAVEAT = ("each resample re-runs the k-means on its own union with the reference (same seeds), so the interval "
              "holds the clustering's variation as well as the sampling's")
register_metric(MetricSpec(
    "prd_f8", "PRD F8 (recall)", higher_is_better=True, needs_reference=True, reference_needs_features=True,
    compute=_adapter("f_beta"), layer_role="prdc", params=PARAMS, reference=_REFERENCE, ci_caveat=_CI_CAVEAT,
))
register_metric(MetricSpec(
    "prd_f1_8", "PRD F1/8 (precision)", higher_is_better=True, needs_reference=True, reference_needs_features=True,
    compute=_adapter("f_beta_inv"), layer_role="prdc", params=PARAMS, reference=_REFERENCE, ci_caveat=_CI_CAVEAT,
))
