"""FD∞ (Chong & Forsyth 2020, "Effectively unbiased FID and Inception Score and where to find them").

FID computed from N generated samples is biased upwards by a term ≈ c/N whose constant depends on the generator,
so FIDs at different N, or of generators with different c, do not compare. FD∞ computes FID_N at ``num_points``
sizes N evenly spaced from ``min_num`` to all samples (each a fresh random subset of the generated features,
reference statistics fixed), fits FID_N = FD∞ + c/N by least squares, and reports the intercept.

Reference implementation: github.com/mchong6/FID_IS_infinity (``calculate_FID_infinity``: 15 points from 5,000
to 50,000, ``np.random.shuffle`` per point, scikit-learn ``LinearRegression``). Here the subsets come from
``numpy.random.default_rng(seed)`` (one permutation per point) and the fit is ``numpy.polyfit`` in float64, which
equals ordinary least squares; ``min_num`` defaults to N/10 (5,000 at N = 50,000, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.fid import frechet_distance
from geneval.stats import GaussianStats, as_feature_matrix, as_gaussian

DEFAULT_POINTS = 15


@dataclass(frozen=True)
class FDInfinity:
    value: float  # the extrapolated FID at N → ∞
    slope: float  # c in FID_N ≈ FD∞ + c / N
    sizes: tuple[int, ...]
    fids: tuple[float, ...]


def fd_infinity(gen, ref, *, num_points: int = DEFAULT_POINTS, min_num: int | None = None, seed: int = 0) -> FDInfinity:
    """FD∞ of generated features ``[N, D]`` against reference features or statistics (GaussianStats, (mu, sigma))."""
    x = as_feature_matrix(gen, what="FD∞ generated features")
    ref_stats = as_gaussian(ref)
    if ref_stats.dim != x.shape[1]:
        raise GenevalInputError(f"FD∞: feature dimensions differ: generated {x.shape[1]}, reference {ref_stats.dim}")
    n = len(x)
    lo = n // 10 if min_num is None else min_num
    if num_points < 2:
        raise GenevalInputError(f"FD∞: need at least 2 points for the fit, got num_points={num_points}")
    if lo < 2 or lo >= n:
        raise GenevalInputError(f"FD∞: the smallest subset ({lo}) must be ≥ 2 and below the number of samples ({n})")
    sizes = np.unique(np.linspace(lo, n, num_points).astype(np.int64))
    if len(sizes) < 2:
        raise GenevalInputError(f"FD∞: sizes {sizes.tolist()} give fewer than 2 distinct points")
    rng = np.random.default_rng(seed)
    ref_mean, ref_cov = ref_stats.mean, ref_stats.cov
    fids = []
    for size in sizes:
        subset = GaussianStats.from_features(x[rng.permutation(n)[:size]])
        fids.append(frechet_distance(subset.mean, subset.cov, ref_mean, ref_cov))
    slope, intercept = np.polyfit(1.0 / sizes, np.array(fids), 1)
    return FDInfinity(float(intercept), float(slope), tuple(int(s) for s in sizes), tuple(fids))


def _score_fd_infinity(inputs: MetricInputs) -> MetricValue:
    seed = inputs.options.seed
    result = fd_infinity(inputs.gen_features(), inputs.ref.gaussian(inputs.layer),
                         num_points=inputs.params["fd_inf_points"], seed=seed)
    return MetricValue(result.value, None, {"sizes": list(result.sizes), "fids": list(result.fids),
                                            "slope": result.slope, "seed": seed})


register_metric(MetricSpec(
    "fd_infinity", "FD∞", higher_is_better=False, needs_reference=True, reference_needs_features=False,
    compute=_score_fd_infinity, layer_role="fid",
    params=(Param("fd_inf_points", int, DEFAULT_POINTS, "FD∞: number of sample sizes in the 1/N fit.", min=2),),
    reference="Chong & Forsyth 2020 (mchong6/FID_IS_infinity calculate_FID_infinity)",
))
