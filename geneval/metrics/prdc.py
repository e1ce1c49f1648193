"""Precision/recall (Kynkäänniemi et al. 2019, "Improved precision and recall metric for assessing generative
models") and density/coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models").

Each real (reference) sample r_j owns a ball of radius R_k(r_j), the distance to its k-th nearest *other* real
sample; each generated sample g_i likewise owns R_k(g_i) within the generated set. With M generated and N real:

    precision = 1/M Σ_i [∃j: d(g_i, r_j) ≤ R_k(r_j)]             k = 3
    recall    = 1/N Σ_j [∃i: d(r_j, g_i) ≤ R_k(g_i)]             k = 3
    density   = 1/(kM) Σ_i Σ_j [d(g_i, r_j) ◁ R_k(r_j)]          k = 5
    coverage  = 1/N Σ_j [min_i d(r_j, g_i) ◁ R_k(r_j)]           k = 5

Tie rules. Precision/recall use the closed ball ``≤``, as NVlabs' reference code and torch-fidelity
(``metric_prc``) do. For density/coverage, ◁ defaults to ``"<|0"``: the open ball of prdc, except that a sample at
distance exactly 0 from a real sample is inside its ball even when that ball's radius is 0 (k + 1 duplicates).
Why: with ``≤`` a set compared with itself has density (k+1)/k, since every ball also holds its own k-th
neighbour; with prdc's strict ``<`` duplicated real samples are never covered, even by themselves. With the
default, identical sets give density 1 and coverage 1. ``strict=True`` uses ``<`` for all four, which is exactly
``prdc.compute_prdc`` (reference implementation of Naeem et al., github.com/clovaai/generative-evaluation-prdc).

Distances are exact float64 (see ``geneval.metrics.knn``), computed in chunks: peak memory O(N·k + chunk²).
On the same feature arrays, precision/recall equal torch-fidelity's and strict density/coverage equal prdc's
(both peers round distances in the features' dtype, so on float32 features a pair within float32 rounding of a
radius can flip there; in float64 they agree exactly — tests/test_metrics_prdc.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneval.metrics import knn
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric

DEFAULT_K_PR = 3
DEFAULT_K_DC = 5
DC_DEFAULT_RULE = "<|0"


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float
    k_pr: int
    k_dc: int
    rule_pr: str
    rule_dc: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def prdc(gen, ref, *, k_pr: int = DEFAULT_K_PR, k_dc: int = DEFAULT_K_DC, strict: bool = False,
         chunk_size: int | None = None, ref_radii_sq: dict[int, np.ndarray] | None = None) -> PRDC:
    """All four metrics in three chunked passes (generated radii, real radii, generated × real).

    ``ref_radii_sq``: the reference's squared k-th neighbour distances for k_pr and k_dc, from
    ``reference_radii_sq(ref, ...)``, to skip that pass when one reference is scored many times (bootstrap).
    """
    x = knn.feature_matrix(gen, what="PRDC generated features")
    y = knn.feature_matrix(ref, what="PRDC reference features")
    knn.check_same_dim(("generated", x), ("reference", y), what="PRDC")
    for k, side, count in ((k_pr, "generated", len(x)), (k_pr, "reference", len(y)), (k_dc, "generated", len(x)),
                           (k_dc, "reference", len(y))):
        knn.check_k(k, count, what="PRDC", side=side)
    rule_pr = "<" if strict else "<="
    rule_dc = "<" if strict else DC_DEFAULT_RULE
    gen_pts, ref_pts = knn.prepare(x, y, names=("PRDC generated features", "PRDC reference features"),
                                   chunk=chunk_size)
    ref_radii = ref_radii_sq if ref_radii_sq is not None else knn.kth_neighbour_sq_distances(ref_pts, (k_pr, k_dc))
    gen_radii = knn.kth_neighbour_sq_distances(gen_pts, (k_pr,))
    radii = {"centre:pr": ref_radii[k_pr], "centre:dc": ref_radii[k_dc], "query:pr": gen_radii[k_pr]}
    rules = {"precision": ("centre:pr", rule_pr), "density_coverage": ("centre:dc", rule_dc),
             "recall": ("query:pr", rule_pr)}
    counts = knn.ball_membership(gen_pts, ref_pts, radii, rules)
    return PRDC(
        precision=float(np.mean(counts["precision"].per_query > 0)),
        recall=float(np.mean(counts["recall"].any_per_centre)),
        density=float(counts["density_coverage"].per_query.sum() / (k_dc * len(x))),
        coverage=float(np.mean(counts["density_coverage"].any_per_centre)),
        k_pr=k_pr, k_dc=k_dc, rule_pr=rule_pr, rule_dc=rule_dc,
    )


def reference_radii_sq(ref, *, ks: tuple[int, ...], chunk_size: int | None = None) -> dict[int, np.ndarray]:
    """Exact squared k-th neighbour distances of the reference set for each k in ``ks`` (see ``prdc``)."""
    y = knn.feature_matrix(ref, what="PRDC reference features")
    for k in ks:
        knn.check_k(k, len(y), what="PRDC", side="reference")
    (points,) = knn.prepare(y, names=("PRDC reference features",), chunk=chunk_size)
    return knn.kth_neighbour_sq_distances(points, tuple(ks))


def precision_recall(gen, ref, *, k: int = DEFAULT_K_PR, strict: bool = False,
                     chunk_size: int | None = None) -> tuple[float, float]:
    """``(precision, recall)`` of generated features ``gen`` against real features ``ref`` (both ``[N, D]``)."""
    result = prdc(gen, ref, k_pr=k, k_dc=k, strict=strict, chunk_size=chunk_size)
    return result.precision, result.recall


def density_coverage(gen, ref, *, k: int = DEFAULT_K_DC, strict: bool = False,
                     chunk_size: int | None = None) -> tuple[float, float]:
    """``(density, coverage)``; ``strict=True`` reproduces prdc's ``<`` exactly."""
    result = prdc(gen, ref, k_pr=k, k_dc=k, strict=strict, chunk_size=chunk_size)
    return result.density, result.coverage


# ------------------------------------------------------------------------------------------- registry

PARAMS = (
    Param("k_pr", int, DEFAULT_K_PR, "Precision/recall k.", min=1),
    Param("k_dc", int, DEFAULT_K_DC, "Density/coverage k.", min=1),
    Param("prdc_strict", bool, False,
          "Strict `<` ball membership for precision/recall/density/coverage, exactly as prdc."),
)


def _score_prdc(inputs: MetricInputs) -> PRDC:
    """The four metrics at once, computed once per scoring call (``--metrics p,r,d,c`` is 3 passes, not 12); the
    reference radii are kept for the whole call, so a bootstrap resample (``--ci``) skips that pass."""
    k_pr, k_dc, strict = (inputs.params[name] for name in ("k_pr", "k_dc", "prdc_strict"))
    ref = inputs.ref_features()
    radii = inputs.cache.get(("prdc radii", inputs.layer, k_pr, k_dc),
                             lambda: reference_radii_sq(ref, ks=(k_pr, k_dc)), reference_only=True)
    return inputs.cache.get(("prdc", inputs.layer, k_pr, k_dc, strict),
                            lambda: prdc(inputs.gen_features(), ref, k_pr=k_pr, k_dc=k_dc, strict=strict,
                                         ref_radii_sq=radii))


def _adapter(name: str):
    def compute(inputs: MetricInputs) -> MetricValue:
        result = _score_prdc(inputs)
        k = result.k_pr if name in ("precision", "recall") else result.k_dc
        rule = result.rule_pr if name in ("precision", "recall") else result.rule_dc
        return MetricValue(getattr(result, name), None, {"k": k, "tie_rule": rule, "distances": "exact float64"})

    return compute


_PAPERS = {
    "precision": ("Precision", "Kynkäänniemi et al. 2019 (NVlabs improved-precision-and-recall-metric; torch-fidelity prc)"),
    "recall": ("Recall", "Kynkäänniemi et al. 2019 (NVlabs improved-precision-and-recall-metric; torch-fidelity prc)"),
    "density": ("Density", "Naeem et al. 2020 (clovaai generative-evaluation-prdc)"),
    "coverage": ("Coverage", "Naeem et al. 2020 (clovaai generative-evaluation-prdc)"),
}

# Precision and density average a per-generated-sample count against the fixed real balls: an ordinary bootstrap.
_CI_CAVEATS = {
    "recall": "resampling with replacement duplicates generated samples, which shrinks the generated k-NN radii "
              "(a duplicate's nearest neighbour is at distance 0) that recall's balls use; the resamples' recall "
              "is biased low, and so is the interval",
    "coverage": "resampling with replacement duplicates generated samples, leaving fewer distinct ones to land in "
                "the real balls; the resamples' coverage is biased low, and so is the interval",
}

for _name, (_label, _reference) in _PAPERS.items():
    register_metric(MetricSpec(
        _name, _label, higher_is_better=True, needs_reference=True, reference_needs_features=True,
        compute=_adapter(_name), layer_role="prdc", reference=_reference, params=PARAMS,
        ci_caveat=_CI_CAVEATS.get(_name),
    ))
