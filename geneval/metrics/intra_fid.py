"""Intra-FID (Miyato & Koyama 2018, "cGANs with projection discriminator", §5): the FID between generated and
reference samples of each class c, averaged over the reference's classes. Per-class values are kept.

Reference implementation: pfnet-research/sngan_projection (``evaluation.py``, ``calc_intra_FID``), which computes
one FID per class with the same formula as TTUR; we reuse ``frechet_distance`` unchanged, so each per-class value
is exactly ``fid(gen[labels == c], ref[labels == c])``.

Class labels must come from the samples' source (class sub-folders, label arrays, a conditional generator
returning ``(images, labels)``); they are never inferred with a classifier here. Every reference class must have
at least ``min_per_class`` generated and reference samples, and generated labels outside the reference's classes
are an error: a silently dropped class would change the average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.fid import check_fid_count, frechet_distance
from geneval.stats import GaussianStats, as_feature_matrix

DEFAULT_MIN_PER_CLASS = 2


@dataclass(frozen=True)
class IntraFID:
    mean: float
    per_class: dict[int, float]
    counts: dict[int, tuple[int, int]]  # class -> (generated, reference)
    warnings: tuple[str, ...] = field(default=())


def intra_fid(gen, gen_labels, ref, ref_labels, *, min_per_class: int = DEFAULT_MIN_PER_CLASS) -> IntraFID:
    """Intra-FID of generated features ``[N, D]`` with int labels ``[N]`` against labelled reference features."""
    x = as_feature_matrix(gen, what="intra-FID generated features")
    y = as_feature_matrix(ref, what="intra-FID reference features")
    if x.shape[1] != y.shape[1]:
        raise GenevalInputError(f"intra-FID: feature dimensions differ: generated {x.shape[1]}, reference {y.shape[1]}")
    gl = _labels(gen_labels, len(x), side="generated")
    rl = _labels(ref_labels, len(y), side="reference")
    if min_per_class < 2:
        raise GenevalInputError(f"intra-FID: min_per_class must be ≥ 2 (a covariance needs two samples), got {min_per_class}")
    classes = np.unique(rl)
    extra = np.setdiff1d(np.unique(gl), classes)
    if len(extra):
        raise GenevalInputError(f"intra-FID: generated labels {extra.tolist()[:10]} do not occur in the reference "
                                f"(its classes: {_short(classes)})")
    counts = {int(c): (int((gl == c).sum()), int((rl == c).sum())) for c in classes}
    few = {c: n for c, n in counts.items() if min(n) < min_per_class}
    if few:
        listed = ", ".join(f"class {c}: {g} generated / {r} reference" for c, (g, r) in list(few.items())[:5])
        raise GenevalInputError(f"intra-FID: too few samples per class (need ≥ {min_per_class} on each side): {listed}")
    per_class, warnings = {}, []
    for c in counts:
        gen_stats = GaussianStats.from_features(x[gl == c])
        ref_stats = GaussianStats.from_features(y[rl == c])
        for side, stats in (("generated", gen_stats), ("reference", ref_stats)):
            message = check_fid_count(stats, side=f"{side} class-{c}")
            if message:
                warnings.append(message)
        per_class[c] = frechet_distance(gen_stats.mean, gen_stats.cov, ref_stats.mean, ref_stats.cov)
    return IntraFID(float(np.mean(list(per_class.values()))), per_class, counts, tuple(warnings))


def _labels(labels, count: int, *, side: str) -> np.ndarray:
    if labels is None:
        raise GenevalInputError(
            f"intra-FID needs class labels for the {side} samples; give a labelled source (class sub-folders, "
            "an .npz with labels, labels=..., or a generator returning (images, labels))"
        )
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) != count or not np.issubdtype(values.dtype, np.integer):
        raise GenevalInputError(f"intra-FID: {side} labels have shape {list(values.shape)} and dtype {values.dtype}; "
                                f"expected {count} integer labels")
    return values.astype(np.int64)


def _short(values: np.ndarray) -> str:
    text = ", ".join(str(v) for v in values.tolist()[:10])
    return text + (", …" if len(values) > 10 else "")


def _score_intra_fid(inputs: MetricInputs) -> MetricValue:
    result = intra_fid(inputs.gen_features(), inputs.gen.labels, inputs.ref_features(), inputs.ref.labels,
                       min_per_class=inputs.params["min_per_class"])
    inputs.warnings.extend(dict.fromkeys(result.warnings))
    details = {"per_class": {str(c): v for c, v in result.per_class.items()},
               "counts": {str(c): {"gen": g, "ref": r} for c, (g, r) in result.counts.items()},
               "classes": len(result.per_class)}
    return MetricValue(result.mean, None, details)


register_metric(MetricSpec(
    "intra_fid", "intra-FID", higher_is_better=False, needs_reference=True, reference_needs_features=True,
    compute=_score_intra_fid, layer_role="fid", needs_labels=True,
    params=(Param("min_per_class", int, DEFAULT_MIN_PER_CLASS,
                  "intra-FID: fewest generated and reference samples a class may have.", min=2),),
    reference="Miyato & Koyama 2018 (pfnet-research/sngan_projection calc_intra_FID)",
))
