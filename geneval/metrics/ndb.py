"""NDB, the number of statistically different bins (Richardson & Weiss 2018, "On GANs and GMMs", §4).

K-means (K bins, default 100) is fitted on the reference samples; every sample goes to its nearest centre. For each
bin, a two-proportion z-test compares the reference proportion p_r (N_r samples) with the generated one p_g (N_g):

    p = (p_r N_r + p_g N_g) / (N_r + N_g),   z = (p_g − p_r) / sqrt(p (1 − p) (1/N_r + 1/N_g))

and the bin is "different" when the two-sided p-value 2Φ(−|z|) is below α (0.05). Reported: NDB/K, NDB, and the
Jensen–Shannon divergence (nats) between the two bin-proportion vectors. Reference implementation:
github.com/eitanrich/gans-n-gmms (``utils/ndb.py``), which uses scikit-learn's k-means; ours is Lloyd's algorithm
with k-means++ seeding from an explicit ``numpy`` generator, in float64 (``geneval.metrics.kmeans``), so bins (and
hence NDB) agree with theirs in distribution, not bin for bin. An identically distributed generated set gives NDB/K ≈ α.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.kmeans import assign, kmeans
from geneval.metrics.knn import check_same_dim
from geneval.metrics.modes import kl_divergence
from geneval.stats import as_feature_matrix

DEFAULT_BINS = 100
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class NDBResult:
    ndb: int
    bins: int
    js_divergence: float
    different: np.ndarray  # bool [K]
    z: np.ndarray  # float64 [K]
    ref_proportions: np.ndarray
    gen_proportions: np.ndarray

    @property
    def ndb_over_k(self) -> float:
        return self.ndb / self.bins


def two_proportion_z(p_ref: np.ndarray, n_ref: int, p_gen: np.ndarray, n_gen: int) -> np.ndarray:
    """z statistic per bin; 0 where both proportions are 0 or 1 (no evidence of a difference)."""
    pooled = (p_ref * n_ref + p_gen * n_gen) / (n_ref + n_gen)
    se = np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_gen))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, (p_gen - p_ref) / np.where(se > 0, se, 1.0), 0.0)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def ndb(gen, ref, *, bins: int = DEFAULT_BINS, alpha: float = DEFAULT_ALPHA, seed: int = 0) -> NDBResult:
    """NDB of generated features against reference features (both ``[N, D]``); bins fitted on ``ref``."""
    x = as_feature_matrix(gen, what="NDB generated features")
    y = as_feature_matrix(ref, what="NDB reference features")
    check_same_dim(("generated", x), ("reference", y), what="NDB")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise GenevalInputError(f"NDB: bins must be an integer ≥ 2, got {bins!r}")
    if bins > len(y):
        raise GenevalInputError(f"NDB: {bins} bins need at least {bins} reference samples; the reference has {len(y)}")
    if not 0 < alpha < 1:
        raise GenevalInputError(f"NDB: significance level must be in (0, 1), got {alpha}")
    centres = kmeans(y, k=bins, seed=seed)
    p_ref = np.bincount(assign(y, centres), minlength=bins) / len(y)
    p_gen = np.bincount(assign(x, centres), minlength=bins) / len(x)
    z = two_proportion_z(p_ref, len(y), p_gen, len(x))
    different = 2 * ndtr(-np.abs(z)) < alpha
    return NDBResult(int(different.sum()), bins, js_divergence(p_ref, p_gen), different, z, p_ref, p_gen)


def _score_ndb(inputs: MetricInputs) -> MetricValue:
    alpha, seed = inputs.params["ndb_alpha"], inputs.options.seed
    result = ndb(inputs.gen_features(), inputs.ref_features(), bins=inputs.params["ndb_bins"], alpha=alpha, seed=seed)
    return MetricValue(result.ndb_over_k, None, {"ndb": result.ndb, "bins": result.bins, "alpha": alpha,
                                                 "js_divergence_nats": result.js_divergence, "kmeans_seed": seed})


register_metric(MetricSpec(
    "ndb", "NDB/K", higher_is_better=False, needs_reference=True, reference_needs_features=True, compute=_score_ndb,
    layer_role="prdc", params=(
        Param("ndb_bins", int, DEFAULT_BINS, "NDB k-means bins.", min=2),
        Param("ndb_alpha", float, DEFAULT_ALPHA, "NDB per-bin significance level.", min=0, max=1, open_bounds=True),
    ), reference="Richardson & Weiss 2018 (eitanrich/gans-n-gmms utils/ndb.py)",
))
