"""The metric registry: what ``geneval score --metrics NAME`` can compute, how it reads features, and its knobs.

Each metric family's file defines its pure functions (features or statistics in, numbers out) and, beside
them, registers a ``MetricSpec`` whose ``compute`` adapts one ``MetricInputs`` (the generated and reference
``FeatureSet`` of the layer the extractor assigns to the metric's ``layer_role``) to a ``MetricValue``.
A spec also declares its parameters (``Param``: name, type, default, help), the way StyleGAN2-ADA's named
metrics bind their protocol: ``geneval score`` builds its ``--options`` from them and the record lists each
computed metric's values. Adding a metric is therefore one file (plus its test): ``score`` and the CLI
dispatch through this registry only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from geneval.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from geneval.extract import FeatureSet


@dataclass(frozen=True)
class Param:
    """A metric parameter. ``name`` is the Python keyword (``score(..., k_pr=4)``); the CLI option is
    ``--k-pr``. Bounds are checked by the CLI; the metric's own function checks what it must."""

    name: str
    type: type  # bool (a CLI flag), int, float or str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    open_bounds: bool = False  # min and max themselves are excluded, e.g. a level in (0, 1)
    metavar: str | None = None

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


class MetricCache:
    """Intermediate results shared by the metrics of one scoring call (PRDC's k-NN radii and four values...).

    It lives as long as one ``score`` call, so within it the generated and reference features are fixed and a
    key only names what else the result depends on (layer, k, ...). A bootstrap resample replaces the
    generated features: ``resampled()`` keeps the entries that depend on the reference alone
    (``get(..., reference_only=True)``) and starts the others afresh.
    """

    def __init__(self, reference: dict | None = None):
        self._reference = {} if reference is None else reference
        self._entries: dict = {}

    def get(self, key, compute: Callable[[], Any], *, reference_only: bool = False):
        entries = self._reference if reference_only else self._entries
        if key not in entries:
            entries[key] = compute()
        return entries[key]

    def resampled(self) -> "MetricCache":
        return MetricCache(self._reference)


@dataclass
class MetricInputs:
    """What a metric's ``compute`` receives: features, its own parameter values, the run's shared options."""

    gen: "FeatureSet"
    ref: "FeatureSet | None"
    layer: str
    options: Any  # the run's ScoreOptions (seed, out_dir, ...): what no single metric owns
    params: dict = field(default_factory=dict)  # this metric's declared parameters, by name (defaults filled in)
    cache: MetricCache = field(default_factory=MetricCache)
    warnings: list[str] = field(default_factory=list)  # appended to the record's warnings
    # For the few metrics that need more than two feature sets (memorisation: held-out real features) or the
    # samples themselves (MS-SSIM; memorisation's PNG of closest pairs). ``Source`` objects, read lazily.
    heldout: "FeatureSet | None" = None
    gen_source: Any = None
    ref_source: Any = None
    # Paired metrics (``needs_targets``): target i belongs to sample i (``geneval.paired``); the targets' features
    # of the metric's layer when it reads one.
    targets_source: Any = None
    targets: "FeatureSet | None" = None

    def gen_features(self):
        return self.gen.features[self.layer]

    def ref_features(self):
        return self.ref.features[self.layer]


@dataclass
class MetricValue:
    value: float
    std: float | None = None
    details: dict = field(default_factory=dict)  # everything needed to reproduce it: seeds, sizes, k, ...


def better_side(higher_is_better: bool | None) -> str:
    """How a person reads a metric's direction: "higher", "lower" or "neither"."""
    return "neither" if higher_is_better is None else "higher" if higher_is_better else "lower"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # CLI name, e.g. "fid"
    label: str  # column header stem, e.g. "FID"; results show "FID (<extractor>)"
    # True / False: which side is better; None: a property with no better side (rarity: higher is rarer, which
    # noise and blur also raise) — tables show no arrow and no finding may rank rows by it
    higher_is_better: bool | None
    needs_reference: bool
    reference_needs_features: bool  # False: reference Gaussian statistics are enough (a mu/sigma file works)
    compute: Callable[[MetricInputs], MetricValue]
    layer_role: str | None = None  # key of the extractor's default_layers; None: the metric's name
    needs_labels: bool = False  # generated (and reference) class labels are required, e.g. intra-FID
    needs_heldout: bool = False  # held-out real features (ScoreOptions.heldout) are extracted, e.g. memorisation
    needs_targets: bool = False  # paired targets (ScoreOptions.targets, one per sample), e.g. PSNR, SSIM
    reference: str = ""  # paper and reference implementation, shown by `geneval metrics`
    params: tuple[Param, ...] = ()  # several metrics may share one (precision and recall: k_pr)
    # What ``--ci``'s bootstrap (resampling the generated set with replacement) does to this metric that a reader of
    # its interval should know, e.g. that duplicated samples shrink k-NN radii; None when it is an ordinary bootstrap.
    ci_caveat: str | None = None

    @property
    def role(self) -> str:
        return self.layer_role or self.name

    def param_values(self, given: Mapping[str, Any]) -> dict:
        """This metric's parameter values: those ``given`` (by name), else the declared defaults."""
        return {p.name: given.get(p.name, p.default) for p in self.params}


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(spec: MetricSpec) -> MetricSpec:
    declared = declared_params()
    for param in spec.params:
        # One name is one option: metrics that share it must declare it identically (else the CLI's default
        # would depend on which metric was registered first).
        if param.name in declared and declared[param.name] != param:
            raise ValueError(f"metric {spec.name!r} declares parameter {param.name!r} differently from another metric")
    METRICS.register(spec.name)(spec)
    return spec


def declared_params() -> dict[str, Param]:
    """Every registered metric's parameters by name, in the order of the metrics' names."""
    return {p.name: p for name in METRICS for p in METRICS.get(name).params}
