"""Fréchet Inception Distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule…").

FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}.

Reference implementations: TTUR (``fid.py``), pytorch-fid and torch-fidelity; they agree with this one to
rounding on the same statistics. Instead of ``scipy.linalg.sqrtm`` of the non-symmetric product Σ₁Σ₂ (slow,
complex-valued round-off, and its ``disp=`` argument is gone in SciPy ≥ 1.18), we use that Σ₁Σ₂ is similar to
a symmetric positive semi-definite matrix A (Lᵀ Σ₁ L with Σ₂ = L Lᵀ, or Σ₁^{1/2} Σ₂ Σ₁^{1/2} when Σ₂ is
singular), so tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(A): a Cholesky factorisation and one eigenvalue-only call.

sFID (Nash et al. 2021, "Generating images with sparse representations") is the same distance on the
extractor's ``sfid`` layer: for ``inception-v3-fid`` the first 7 channels of ``mixed_6/conv`` (17×17), as
guided-diffusion's ``evaluations/evaluator.py`` computes it, from the same forward pass as pool3.
"""

from __future__ import annotations

import logging

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, register_metric
from geneval.stats import GaussianStats, as_gaussian

log = logging.getLogger(__name__)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise GenevalInputError(
            f"FID: statistics do not match: mean {list(mu1.shape)} vs {list(mu2.shape)}, "
            f"covariance {list(sigma1.shape)} vs {list(sigma2.shape)}"
        )
    for name, array in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(array).all():
            raise GenevalInputError(f"FID: {name} contains NaN or infinite values")
    diff = mu1 - mu2
    trace_sqrt = trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ₁Σ₂)^{1/2} for symmetric PSD Σ₁, Σ₂: the sum of square roots of the eigenvalues of Σ₁Σ₂.

    Σ₁Σ₂ is similar to a symmetric PSD matrix whose eigenvalues one ``eigvalsh`` call finds. When Σ₂ is
    positive definite (N > D, the usual case) that matrix is Lᵀ Σ₁ L with Σ₂ = L Lᵀ (Cholesky: ~n³/3 flops);
    otherwise it is Σ₁^{1/2} Σ₂ Σ₁^{1/2}, with Σ₁^{1/2} from a full eigendecomposition (several times dearer).
    """
    # Symmetrise: covariances accumulated in floating point can be asymmetric in the last bit.
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    lower = _cholesky_if_well_conditioned(sigma2)
    if lower is not None:
        middle = lower.T @ sigma1 @ lower
    else:  # Σ₂ singular or nearly so (N ≤ D): go through Σ₁^{1/2}
        eigvals, eigvecs = np.linalg.eigh(sigma1)
        root1 = (eigvecs * np.sqrt(_numerical_spectrum(eigvals))) @ eigvecs.T
        middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2
    return float(np.sqrt(_numerical_spectrum(np.linalg.eigvalsh(middle))).sum())


def _cholesky_if_well_conditioned(sigma: np.ndarray) -> np.ndarray | None:
    """The Cholesky factor of ``sigma``, or None when it fails or has pivots that are round-off (a singular
    covariance can factor with pivots of ~1e-13 relative, and its factor then carries no information)."""
    try:
        lower = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return None
    pivots = np.diag(lower) ** 2
    return lower if pivots.min() > pivots.max() * 1e-10 else None


def _numerical_spectrum(eigvals: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those indistinguishable from zero set to zero.

    A covariance of N ≤ D samples is singular; eigh returns its zero eigenvalues as round-off of size
    ~λ_max·ε, positive or negative. Their square roots (~√ε ≫ ε) would add up over D dimensions to a bias
    of 1e-3 in FID(x, x). Below NumPy's ``matrix_rank`` tolerance (λ_max · D · ε) an eigenvalue is zero.
    """
    tolerance = max(float(eigvals.max(initial=0.0)), 0.0) * len(eigvals) * np.finfo(np.float64).eps
    return np.where(eigvals > tolerance, eigvals, 0.0)


def fid(gen, ref) -> float:
    """FID between generated and reference features or statistics.

    Each argument is a feature matrix ``[N, D]`` (numpy or torch), a ``GaussianStats``, or a ``(mu, sigma)``
    pair. Warns when a side has N ≤ D: its covariance is then singular and FID is strongly biased.
    """
    gen_stats, ref_stats = as_gaussian(gen), as_gaussian(ref)
    for side, stats in (("generated", gen_stats), ("reference", ref_stats)):
        check_fid_count(stats, side=side)
    return frechet_distance(gen_stats.mean, gen_stats.cov, ref_stats.mean, ref_stats.cov)


def check_fid_count(stats: GaussianStats, *, side: str) -> str | None:
    """Raise for fewer than 2 samples; return (and log) a warning when N ≤ D."""
    if 0 <= stats.count < 2:
        raise GenevalInputError(f"FID: the {side} set has {stats.count} sample(s); need at least 2")
    if 0 <= stats.count <= stats.dim:
        message = (
            f"FID: the {side} set has N={stats.count} ≤ feature dimension {stats.dim}; its covariance is singular "
            "and FID is biased upwards — compare only with FIDs computed at the same N"
        )
        log.warning(message)
        return message
    return None


def _score_fid(inputs: MetricInputs) -> MetricValue:
    gen_stats, ref_stats = inputs.gen.gaussian(inputs.layer), inputs.ref.gaussian(inputs.layer)
    for side, stats in (("generated", gen_stats), ("reference", ref_stats)):
        warning = check_fid_count(stats, side=side)
        if warning:
            inputs.warnings.append(warning)
    return MetricValue(frechet_distance(gen_stats.mean, gen_stats.cov, ref_stats.mean, ref_stats.cov))


register_metric(MetricSpec(
    "fid", "FID", higher_is_better=False, needs_reference=True, reference_needs_features=False, compute=_score_fid,
    reference="Heusel et al. 2017 (TTUR fid.py; pytorch-fid; torch-fidelity)",
))

register_metric(MetricSpec(
    "sfid", "sFID", higher_is_better=False, needs_reference=True, reference_needs_features=False, compute=_score_fid,
    layer_role="sfid",
    reference="Nash et al. 2021 (guided-diffusion evaluations/evaluator.py: mixed_6/conv[..., :7])",
))
