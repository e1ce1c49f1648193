"""CMMD (Jayasumana et al. 2024, "Rethinking FID: Towards a Better Evaluation Metric for Image Generation").

CMMD = 1000 · MMD² between CLIP embeddings (``clip-vit-l14-336``, unit norm) with the Gaussian RBF kernel
k(x, y) = exp(−‖x − y‖² / (2σ²)), σ = 10. Reference implementation: google-research ``cmmd/distance.py``, which
computes the *biased* (minimum-variance, V-statistic) estimate of Gretton et al. 2012, Eq. 5, as written there:

    1000 · (mean_ij k(xᵢ, xⱼ) + mean_ij k(yᵢ, yⱼ) − 2 mean_ij k(xᵢ, yⱼ))

— every mean over all pairs, the diagonal (k = 1) included; the two sets may differ in size. Squared distances
are formed as there, ‖x‖² + ‖y‖² − 2 xᵀy (no clamping). The reference runs in float32 (JAX); geneval in float64,
in row blocks of at most ``BLOCK_ELEMENTS`` kernel values (64 MiB per float64 temporary, whatever N), and
reports that value.
"""

from __future__ import annotations

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, register_metric
from geneval.stats import as_feature_matrix

SIGMA = 10.0
SCALE = 1000.0
BLOCK_ROWS = 2048
# At most this many kernel values per block (float64: 64 MiB per [rows, N] temporary): 167 rows at N = 50,000,
# where 2048 rows would make each temporary 0.8 GB.
BLOCK_ELEMENTS = 2**23


def _kernel_mean(x: np.ndarray, y: np.ndarray) -> float:
    """mean_ij exp(−γ (‖xᵢ‖² + ‖yⱼ‖² − 2 xᵢᵀyⱼ)) with γ = 1 / (2σ²), over row blocks of x."""
    gamma = 1.0 / (2.0 * SIGMA**2)
    y_sqnorms = np.einsum("ij,ij->i", y, y)
    rows = max(1, min(BLOCK_ROWS, BLOCK_ELEMENTS // max(len(y), 1)))
    total = 0.0
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        sqnorms = np.einsum("ij,ij->i", block, block)
        total += np.exp(-gamma * (-2.0 * block @ y.T + sqnorms[:, None] + y_sqnorms[None, :])).sum()
    return total / (len(x) * len(y))


def cmmd(gen, ref) -> float:
    """CMMD between generated and reference CLIP embeddings ``[N, D]`` (the reference code's estimator)."""
    x = as_feature_matrix(gen, what="CMMD generated embeddings").astype(np.float64)
    y = as_feature_matrix(ref, what="CMMD reference embeddings").astype(np.float64)
    if x.shape[1] != y.shape[1]:
        raise GenevalInputError(f"CMMD: embedding dimensions differ: generated {x.shape[1]}, reference {y.shape[1]}")
    if len(x) < 1 or len(y) < 1:
        raise GenevalInputError(f"CMMD: need at least one embedding per side, got {len(x)} and {len(y)}")
    return float(SCALE * (_kernel_mean(x, x) + _kernel_mean(y, y) - 2.0 * _kernel_mean(x, y)))


def _score_cmmd(inputs: MetricInputs) -> MetricValue:
    value = cmmd(inputs.gen_features(), inputs.ref_features())
    return MetricValue(value, details={"kernel": f"exp(-|x-y|^2 / (2·{SIGMA:g}^2))", "scale": SCALE,
                                       "estimator": "biased (V-statistic), as cmmd/distance.py"})


register_metric(MetricSpec(
    "cmmd", "CMMD", higher_is_better=False, needs_reference=True, reference_needs_features=True, compute=_score_cmmd,
    reference="Jayasumana et al. 2024 (google-research cmmd/distance.py)",
))
