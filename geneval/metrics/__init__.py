"""Metrics: pure functions of features or statistics, one file per family, each naming its paper.

``METRICS`` records for each metric whether higher is better and which extractor layer role it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from geneval.metrics.fid import fid, frechet_distance
from geneval.metrics.inception_score import Estimate, inception_score
from geneval.metrics.kid import kid
from geneval.registry import Registry


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str  # column header stem, e.g. "FID"
    higher_is_better: bool
    needs_reference: bool
    reference_needs_features: bool  # False: reference Gaussian statistics are enough


METRICS: Registry = Registry("metric")
for _spec in (
    MetricSpec("fid", "FID", higher_is_better=False, needs_reference=True, reference_needs_features=False),
    MetricSpec("kid", "KID", higher_is_better=False, needs_reference=True, reference_needs_features=True),
    MetricSpec("is", "IS", higher_is_better=True, needs_reference=False, reference_needs_features=False),
):
    METRICS.register(_spec.name)(_spec)

__all__ = ["METRICS", "MetricSpec", "Estimate", "fid", "frechet_distance", "inception_score", "kid"]
