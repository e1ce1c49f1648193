"""The Vendi score (Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for Machine Learning").

For n samples and a similarity kernel with k(x, x) = 1, the Vendi score is the exponential of the Shannon entropy
of the eigenvalues λ_i of K/n (which sum to 1):

    VS = exp(−Σ_i λ_i log λ_i)        (terms with λ_i ≤ 0 are dropped, as in the reference)

It is the "effective number" of distinct samples: n identical samples give 1, k well-separated groups of identical
samples (equal sizes) give k, n mutually orthogonal samples give n. Higher is more diverse. Reference-free.

Kernels:

* ``cosine`` (default): k(x, y) = x̂·ŷ on L2-normalised features. K/n = X̂X̂ᵀ/n has the same non-zero eigenvalues
  as the d×d matrix X̂ᵀX̂/n, which is accumulated in float64 over row chunks: memory O(d²), never n×n (this is
  the reference's ``score_dual``).
* ``polynomial``: scikit-learn's polynomial kernel (γ·x·y + 1)^degree with γ = 1/d on the raw features, normalised
  to a unit diagonal (K_ij / sqrt(K_ii K_jj)), as the reference's ``score_K(K, normalize=True)``. Its explicit
  feature map has C(d + degree, degree) dimensions (1.4e9 for d = 2048, degree 3), so no d×d route exists: this
  one builds the n×n matrix, float64, in place (blocks; one n×n array, eigenvalues computed in it: 8n² bytes), and
  refuses n > ``POLYNOMIAL_MAX_SAMPLES`` = 8,000 (0.5 GB), which keeps a scoring call under 2 GB peak RSS with
  two 50,000 × 2048 float32 banks loaded (benchmarks/bench_post_fid_memory.py). At 50,000 samples it would need
  20 GB: use the cosine kernel, or score a subset.

Reference implementation: the ``vendi-score`` package (github.com/vertaix/Vendi-Score); on the same features ours
agrees with ``vendi.score_dual`` / ``vendi.score_K`` to ≤ 1e-9 relative (tests/test_metrics_vendi.py).
With class labels the score of each class's samples is in the details (``per_class``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from geneval.errors import GenevalInputError
from geneval.metrics import knn
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric

KERNELS = ("cosine", "polynomial")
DEFAULT_DEGREE = 3
POLYNOMIAL_MAX_SAMPLES = 8_000  # an n×n float64 kernel: 0.5 GB at this size
_CHUNK = 4096


def entropy_exp(eigenvalues: np.ndarray) -> float:
    """exp of the Shannon entropy (nats) of the positive eigenvalues: the Vendi score of a K/n spectrum."""
    w = eigenvalues[eigenvalues > 0]
    return float(np.exp(-(w * np.log(w)).sum()))


def _normalised_gram(x: np.ndarray, *, what: str) -> np.ndarray:
    """X̂ᵀX̂ (d×d, float64) of the L2-normalised rows, accumulated over row chunks."""
    gram = np.zeros((x.shape[1], x.shape[1]))
    for lo in range(0, len(x), _CHUNK):
        rows = np.array(x[lo : lo + _CHUNK], dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        if not np.isfinite(norms).all():
            raise GenevalInputError(f"{what}: rows contain NaN or infinite values")
        if (norms == 0).any():
            bad = lo + int(np.flatnonzero(norms == 0)[0])
            raise GenevalInputError(f"{what}: row {bad} is all zeros; the cosine kernel needs non-zero features")
        rows /= norms[:, None]
        gram += rows.T @ rows
    return gram


def _polynomial_kernel(x: np.ndarray, *, degree: int) -> np.ndarray:
    """The unit-diagonal polynomial kernel matrix, float64 n×n, built in place in blocks from float64 copies of
    row blocks: the n×n array is the only large allocation."""
    n, step = len(x), 1024  # float64 blocks of 1024 rows: 16 MB each at d = 2048
    k = np.empty((n, n))
    for lo in range(0, n, step):
        rows = np.asarray(x[lo : lo + step], dtype=np.float64)
        if not np.isfinite(rows).all():
            raise GenevalInputError("Vendi features contain NaN or infinite values")
        for clo in range(0, n, step):
            cols = rows if clo == lo else np.asarray(x[clo : clo + step], dtype=np.float64)
            np.matmul(rows, cols.T, out=k[lo : lo + step, clo : clo + step])
    k /= x.shape[1]
    k += 1.0
    np.power(k, degree, out=k)
    d = np.sqrt(np.diagonal(k))
    k /= d[:, None]
    k /= d[None, :]
    return k


def vendi(features, *, kernel: str = "cosine", degree: int = DEFAULT_DEGREE) -> float:
    """The Vendi score of ``features`` ``[n, d]`` (see the module docstring for the kernels)."""
    x = knn.feature_matrix(features, what="Vendi features")
    if len(x) < 1:
        raise GenevalInputError("Vendi: needs at least one sample")
    if kernel == "cosine":
        return entropy_exp(scipy.linalg.eigvalsh(_normalised_gram(x, what="Vendi features") / len(x)))
    if kernel == "polynomial":
        if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
            raise GenevalInputError(f"Vendi: polynomial degree must be a positive integer, got {degree!r}")
        if len(x) > POLYNOMIAL_MAX_SAMPLES:
            raise GenevalInputError(
                f"Vendi: the polynomial kernel builds an n×n matrix; {len(x)} samples exceed its limit of "
                f"{POLYNOMIAL_MAX_SAMPLES} (use the cosine kernel, which needs only a d×d matrix, or fewer samples)")
        k = _polynomial_kernel(x, degree=degree)
        k /= len(x)
        # k is symmetric, so k.T (Fortran-ordered) is k: LAPACK then works in place instead of on a copy.
        return entropy_exp(scipy.linalg.eigvalsh(k.T, overwrite_a=True, check_finite=False))
    raise GenevalInputError(f"Vendi: unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")


def vendi_per_class(features, labels, *, kernel: str = "cosine", degree: int = DEFAULT_DEGREE) -> dict[int, float]:
    """The Vendi score of each class's samples, by class label."""
    x = knn.feature_matrix(features, what="Vendi features")
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
        raise GenevalInputError(f"Vendi: {len(labels)} labels for {len(x)} samples")
    return {int(c): vendi(x[labels == c], kernel=kernel, degree=degree) for c in np.unique(labels)}


# ------------------------------------------------------------------------------------------- registry


def _score_vendi(inputs: MetricInputs) -> MetricValue:
    kernel, degree = inputs.params["vendi_kernel"], inputs.params["vendi_degree"]
    x = inputs.gen_features()
    details = {"kernel": kernel, **({"degree": degree} if kernel == "polynomial" else {})}
    value = vendi(x, kernel=kernel, degree=degree)
    if inputs.gen.labels is not None:
        per_class = vendi_per_class(x, inputs.gen.labels, kernel=kernel, degree=degree)
        details["per_class"] = {str(c): v for c, v in per_class.items()}
    return MetricValue(value, None, details)


register_metric(MetricSpec(
    "vendi", "Vendi", higher_is_better=True, needs_reference=False, reference_needs_features=False,
    compute=_score_vendi, layer_role="prdc", params=(
        Param("vendi_kernel", str, "cosine", "Vendi kernel: cosine (d×d Gram, any n) or polynomial (n×n).",
              metavar="cosine|polynomial"),
        Param("vendi_degree", int, DEFAULT_DEGREE, "Vendi polynomial-kernel degree.", min=1),
    ), reference="Friedman & Dieng 2023 (vertaix/Vendi-Score, PyPI vendi-score)",
    ci_caveat="resampling with replacement duplicates generated samples, and duplicates are not distinct: the "
              "resamples' Vendi score (an effective number of distinct samples) is biased low, and so is the "
              "interval",
))
