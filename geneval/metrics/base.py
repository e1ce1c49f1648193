"""The metric registry: what ``geneval score --metrics NAME`` can compute, and how it reads features.

Each metric family's file defines its pure functions (features or statistics in, numbers out) and, beside
them, registers a ``MetricSpec`` whose ``compute`` adapts one ``MetricInputs`` (the generated and reference
``FeatureSet`` of the layer the extractor assigns to the metric's ``layer_role``) to a ``MetricValue``.
Adding a metric is therefore one file (plus its test): ``score`` dispatches through this registry only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from geneval.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from geneval.extract import FeatureSet


@dataclass
class MetricInputs:
    """What a metric's ``compute`` receives. ``options`` is the run's ``ScoreOptions``."""

    gen: "FeatureSet"
    ref: "FeatureSet | None"
    layer: str
    options: Any
    warnings: list[str] = field(default_factory=list)  # appended to the record's warnings
    # For the few metrics that need more than two feature sets (memorisation: held-out real features) or the
    # samples themselves (MS-SSIM; memorisation's PNG of closest pairs). ``Source`` objects, read lazily.
    heldout: "FeatureSet | None" = None
    gen_source: Any = None
    ref_source: Any = None

    def gen_features(self):
        return self.gen.features[self.layer]

    def ref_features(self):
        return self.ref.features[self.layer]


@dataclass
class MetricValue:
    value: float
    std: float | None = None
    details: dict = field(default_factory=dict)  # everything needed to reproduce it: seeds, sizes, k, ...


@dataclass(frozen=True)
class MetricSpec:
    name: str  # CLI name, e.g. "fid"
    label: str  # column header stem, e.g. "FID"; results show "FID (<extractor>)"
    higher_is_better: bool
    needs_reference: bool
    reference_needs_features: bool  # False: reference Gaussian statistics are enough (a mu/sigma file works)
    compute: Callable[[MetricInputs], MetricValue]
    layer_role: str | None = None  # key of the extractor's default_layers; None: the metric's name
    needs_labels: bool = False  # generated (and reference) class labels are required, e.g. intra-FID
    needs_heldout: bool = False  # held-out real features (ScoreOptions.heldout) are extracted, e.g. memorisation
    reference: str = ""  # paper and reference implementation, shown by `geneval metrics`

    @property
    def role(self) -> str:
        return self.layer_role or self.name


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(spec: MetricSpec) -> MetricSpec:
    METRICS.register(spec.name)(spec)
    return spec
