"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs").

KID = unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over ``subsets``
random subsets of ``subset_size`` samples per side drawn without replacement; reported as mean ± std
(population std). Reference implementations: the authors' ``compute_scores.py`` and torch-fidelity, whose
subset draws we reproduce exactly (``np.random.RandomState(seed).choice`` for generated then reference, per
subset), so the same seed gives the same subsets. Kernels are evaluated in float64.
"""

from __future__ import annotations

import logging

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.inception_score import Estimate
from geneval.stats import as_feature_matrix

log = logging.getLogger(__name__)

DEFAULT_SUBSET_SIZE = 1000


def kid(gen, ref, *, subsets: int = 100, subset_size: int | None = None, seed: int = 2020) -> Estimate:
    """KID between generated and reference features ``[N, D]``.

    ``subset_size=None`` uses min(1000, N_gen, N_ref) — the value used is reported in ``Estimate.values``'
    length and should be recorded by callers; an explicit size larger than either set is an error.
    """
    x = as_feature_matrix(gen, what="KID generated features")
    y = as_feature_matrix(ref, what="KID reference features")
    if x.shape[1] != y.shape[1]:
        raise GenevalInputError(f"KID: feature dimensions differ: generated {x.shape[1]}, reference {y.shape[1]}")
    size = resolve_subset_size(subset_size, len(x), len(y))
    if subsets < 1:
        raise GenevalInputError(f"KID: subsets must be ≥ 1, got {subsets}")
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x_sub = x[rng.choice(len(x), size, replace=False)]
        y_sub = y[rng.choice(len(y), size, replace=False)]
        values.append(polynomial_mmd2_unbiased(x_sub, y_sub))
    return Estimate(float(np.mean(values)), float(np.std(values)), tuple(values))


def resolve_subset_size(subset_size: int | None, n_gen: int, n_ref: int) -> int:
    if subset_size is None:
        size = min(DEFAULT_SUBSET_SIZE, n_gen, n_ref)
        if size < DEFAULT_SUBSET_SIZE:
            log.warning("KID: subset size %d (fewer than %d samples on one side)", size, DEFAULT_SUBSET_SIZE)
    else:
        size = subset_size
        if size > min(n_gen, n_ref):
            raise GenevalInputError(
                f"KID: subset size {size} exceeds the number of samples (generated {n_gen}, reference {n_ref})"
            )
    if size < 2:
        raise GenevalInputError(f"KID: need at least 2 samples per subset, got subset size {size}")
    return size


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray, *, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² estimate with k(a, b) = (aᵀb / d + coef0)^degree; x and y have equal sizes m."""
    m = len(x)
    gamma = 1.0 / x.shape[1]
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    off_diag_xx = k_xx.sum() - np.trace(k_xx)
    off_diag_yy = k_yy.sum() - np.trace(k_yy)
    return float((off_diag_xx + off_diag_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def _score_kid(inputs: MetricInputs) -> MetricValue:
    subsets, seed = inputs.params["kid_subsets"], inputs.options.seed
    size = resolve_subset_size(inputs.params["kid_subset_size"], inputs.gen.count, inputs.ref.count)
    estimate = kid(inputs.gen_features(), inputs.ref_features(), subsets=subsets, subset_size=size, seed=seed)
    details = {"subsets": subsets, "subset_size": size, "seed": seed, "kernel": "(x·y/d + 1)^3"}
    return MetricValue(estimate.mean, estimate.std, details)


register_metric(MetricSpec(
    "kid", "KID", higher_is_better=False, needs_reference=True, reference_needs_features=True, compute=_score_kid,
    params=(Param("kid_subsets", int, 100, "KID: random subsets averaged.", min=1),
            Param("kid_subset_size", int, None, "KID: samples per subset (default: min(1000, N)).", min=2)),
    reference="Bińkowski et al. 2018 (compute_scores.py; torch-fidelity)",
))
