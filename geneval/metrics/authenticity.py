"""Authenticity (Alaa et al. 2022, "How Faithful is your Synthetic Data? Sample-level Metrics for Evaluating and
Auditing Generative Models"), as the sample-level test of dgm-eval's ``compute_authpct`` (and marcojira/fld's
``AuthPct``).

For a generated sample g, let r* be its nearest real (reference) sample, d1 = d(g, r*), and d2 the distance from
r* to its own nearest other real sample. g is *authentic* when d2 < d1: g is farther from r* than r*'s real
neighbourhood is, so it is not a copy of r*. Reported: the fraction of authentic generated samples (dgm-eval's
AuthPct is 100 × this; marcojira/fld reports 100 × this − 50 on random subsets of 10,000). Strict ``<`` as
dgm-eval. Higher means fewer copies; 1 − value is the fraction of samples closer to a training sample than
training samples are to one another.

Exact float64 distances in chunks (``geneval.metrics.knn``): no N×N matrix, where dgm-eval builds two (N×N real,
N×M). If two real samples are exactly equidistant from g, r* is either (dgm-eval takes the first index; ours may
differ), which can change that sample's verdict; with continuous features this does not happen.

α-precision and β-recall, the paper's other two metrics, are not implemented: they are defined in the embedding
of a one-class network trained on the real data (Deep SVDD, so that real samples fill a hypersphere); computing
the α-support quantiles on untrained features would be a different metric under the paper's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneval.metrics import knn
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, register_metric


@dataclass(frozen=True)
class Authenticity:
    authentic: np.ndarray  # bool [N_gen]
    gen_distance: np.ndarray  # float64 [N_gen]: d1, to the nearest real sample
    real_distance: np.ndarray  # float64 [N_gen]: d2, of that real sample to its nearest other real sample
    nearest_real: np.ndarray  # int64 [N_gen]: index of that real sample

    @property
    def fraction(self) -> float:
        return float(self.authentic.mean())


def real_nn_sq_distances(ref, *, chunk_size: int | None = None) -> np.ndarray:
    """Squared distance of each real sample to its nearest other real sample (exact float64)."""
    y = knn.feature_matrix(ref, what="authenticity reference features")
    knn.check_k(1, len(y), what="authenticity", side="reference")
    (points,) = knn.prepare(y, names=("authenticity reference features",), chunk=chunk_size)
    return knn.kth_neighbour_sq_distances(points, (1,))[1]


def authenticity(gen, ref, *, chunk_size: int | None = None, real_nn_sq: np.ndarray | None = None) -> Authenticity:
    """Per generated sample, whether it is authentic (see the module docstring); ``.fraction`` is the metric."""
    x = knn.feature_matrix(gen, what="authenticity generated features")
    y = knn.feature_matrix(ref, what="authenticity reference features")
    knn.check_same_dim(("generated", x), ("reference", y), what="authenticity")
    knn.check_k(1, len(y), what="authenticity", side="reference")
    gen_pts, ref_pts = knn.prepare(x, y, names=("authenticity generated features", "authenticity reference features"),
                                   chunk=chunk_size)
    if real_nn_sq is None:
        real_nn_sq = knn.kth_neighbour_sq_distances(ref_pts, (1,))[1]
    found = knn.nearest(gen_pts, ref_pts, k=1)
    d1_sq, nearest = found.sq_distances[:, 0], found.indices[:, 0]
    d2_sq = real_nn_sq[nearest]
    return Authenticity(d2_sq < d1_sq, np.sqrt(d1_sq), np.sqrt(d2_sq), nearest)


def _score_authenticity(inputs: MetricInputs) -> MetricValue:
    ref = inputs.ref_features()
    real_nn = inputs.cache.get(("authenticity real nn", inputs.layer), lambda: real_nn_sq_distances(ref),
                               reference_only=True)
    result = authenticity(inputs.gen_features(), ref, real_nn_sq=real_nn)
    return MetricValue(result.fraction, None, {"authpct": 100 * result.fraction, "num_authentic":
                                               int(result.authentic.sum()), "tie_rule": "<",
                                               "distances": "exact float64"})


register_metric(MetricSpec(
    "authenticity", "Authenticity", higher_is_better=True, needs_reference=True, reference_needs_features=True,
    compute=_score_authenticity, layer_role="prdc",
    reference="Alaa et al. 2022, sample-level authenticity as dgm-eval AuthPct (layer6ai-labs/dgm-eval)",
))
