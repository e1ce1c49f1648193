"""Rarity score (Han et al. 2022, "Rarity Score: A New Metric to Evaluate the Uncommonness of Synthesized Images").

Each real sample r_j owns a ball of radius R_k(r_j), the distance to its k-th nearest other real sample (k = 3).
A generated sample g inside some ball gets the radius of the smallest ball holding it; one inside no ball gets
none (it is off the real manifold, so its rarity is undefined):

    rarity(g) = min { R_k(r_j) : d(g, r_j) < R_k(r_j) }

Large real balls lie where real data is sparse, so a large score is an uncommon (rare) yet realistic sample. We
report the mean score over the generated samples inside some ball, and in the details the fraction inside none,
the count inside, and the median. Higher means rarer samples; it is not a fidelity score (pair it with precision).

Reference implementation: github.com/hichoe95/Rarity-Score (``MANIFOLD.rarity``): ball membership there is
``R_k(r_j) − d(g, r_j) > 0``, the strict ``<`` used here, and samples in no ball get 0 there (excluded here from
the mean and counted instead). Distances are exact float64 from ``geneval.metrics.knn``, in chunks: no N×N
matrix. tests/test_metrics_rarity.py re-derives the reference's formula with full float64 matrices and agrees
exactly (per-sample scores to ≤ 1e-12 relative, the same samples in no ball).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneval.metrics import knn
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric

DEFAULT_K = 3


@dataclass(frozen=True)
class Rarity:
    scores: np.ndarray  # float64 [N_gen]: the score per generated sample, NaN for a sample in no ball
    k: int

    @property
    def inside(self) -> np.ndarray:
        return ~np.isnan(self.scores)

    @property
    def mean(self) -> float:
        """Mean score over the samples inside some ball (NaN if there is none)."""
        return float(self.scores[self.inside].mean()) if self.inside.any() else float("nan")

    @property
    def fraction_outside(self) -> float:
        return float(1.0 - self.inside.mean())


def rarity(gen, ref, *, k: int = DEFAULT_K, chunk_size: int | None = None,
           ref_radii_sq: np.ndarray | None = None) -> Rarity:
    """Rarity score of each generated feature vector against the real features' k-NN balls (both ``[N, D]``).

    ``ref_radii_sq``: the reference's squared k-th neighbour distances, to skip that pass (bootstrap)."""
    x = knn.feature_matrix(gen, what="rarity generated features")
    y = knn.feature_matrix(ref, what="rarity reference features")
    knn.check_same_dim(("generated", x), ("reference", y), what="rarity")
    knn.check_k(k, len(y), what="rarity", side="reference")
    gen_pts, ref_pts = knn.prepare(x, y, names=("rarity generated features", "rarity reference features"),
                                   chunk=chunk_size)
    radii_sq = ref_radii_sq if ref_radii_sq is not None else knn.kth_neighbour_sq_distances(ref_pts, (k,))[k]
    best = knn.smallest_ball(gen_pts, ref_pts, radii_sq, rule="<")
    scores = np.where(np.isfinite(best), np.sqrt(best), np.nan)
    return Rarity(scores, k)


# ------------------------------------------------------------------------------------------- registry


def _radii(ref, k: int) -> np.ndarray:
    y = knn.feature_matrix(ref, what="rarity reference features")
    knn.check_k(k, len(y), what="rarity", side="reference")
    (points,) = knn.prepare(y, names=("rarity reference features",))
    return knn.kth_neighbour_sq_distances(points, (k,))[k]


def _score_rarity(inputs: MetricInputs) -> MetricValue:
    k = inputs.params["rarity_k"]
    ref = inputs.ref_features()
    radii = inputs.cache.get(("rarity radii", inputs.layer, k), lambda: _radii(ref, k), reference_only=True)
    result = rarity(inputs.gen_features(), ref, k=k, ref_radii_sq=radii)
    inside = result.inside
    if not inside.any():
        inputs.warnings.append("rarity: no generated sample lies inside any real k-NN ball; the score is undefined")
    return MetricValue(result.mean, None, {
        "k": k, "fraction_outside": result.fraction_outside, "num_inside": int(inside.sum()),
        "median": float(np.median(result.scores[inside])) if inside.any() else None, "tie_rule": "<",
        "distances": "exact float64"})


register_metric(MetricSpec(
    "rarity", "Rarity", higher_is_better=None, needs_reference=True, reference_needs_features=True,
    compute=_score_rarity, layer_role="prdc", params=(
        Param("rarity_k", int, DEFAULT_K, "Rarity score: k of the real k-NN balls.", min=1),),
    reference="Han et al. 2022 (hichoe95/Rarity-Score)",
))
