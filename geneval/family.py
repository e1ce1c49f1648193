"""The model-family contract: everything the leaderboard core may know about a trainer family.

A family (GANs, autoregressive models, VAEs, flows, diffusion, ...) is one object, an instance of a
``Family`` subclass, that lives in its own folder and is registered under the ``geneval.trainers`` entry point
(``pyproject.toml``), or named in ``$GENEVAL_TRAINERS`` (``module:attribute``, comma-separated: families that
are not installed as a package, e.g. a test's), or passed to ``register()`` from Python. Registration checks
the object against this contract (the way torch-fidelity checks its feature extractors' base class), so a
family that forgets to declare something fails when it is loaded, not in the middle of a table.

What a family answers, for a leaderboard spec row (``trainer = "<name>"``, ``preset``, ``budget``, ``dataset``,
switches):

* ``config_class(preset)`` — the config dataclass of that recipe (its fields are the switches a row may set);
* ``resolve(preset=, budget=, dataset=, overrides=, seed=)`` — the validated config object (an unknown switch
  or a bad combination raises ``GenevalInputError`` here, before anything trains);
* ``protocol_overrides(evaluation)`` — config keys that carry the spec's ``[evaluation]`` into the family's own
  end-of-run evaluation (sample count, extractor, metrics);
* ``train(config, out=, budget=)`` — trains (resuming ``out``) and returns its ``record.json`` as a dict;
* ``evaluate(run_dir, config=, which=, metrics=, ci=, ci_resamples=, **options)`` — re-scores a finished run
  with evaluation-time options and/or a bootstrap interval: ``(metrics, protocol)``;
* ``sampler(run_dir, which=)`` — ``sample(num, seed, labels=None, **options) -> uint8 [N, C, H, W]``;
  ``likelihood_model(run_dir)`` — a ``geneval.likelihood`` model for explicit-density families, else None.

And what it declares, so that tables label and compare its numbers without the core knowing its name:

* ``eval_options`` — typed evaluation-time options with defaults (a row that sets one re-scores the same runs);
* ``recorded_metrics`` — metrics its records carry beyond the sample metrics (bits/dim, nats, ...), with
  label, direction and the protocol keys two values must share to be compared;
* ``protocol_keys`` — evaluation keys its records carry beyond the sample protocol, with their footer text;
* ``labels`` — column labels of its switches and record keys; ``record_keys`` — values of its ``record.json``
  (dotted paths, e.g. ``sampling.seconds``) that its tables may show, copied into every leaderboard line;
  ``selection_keys`` — config keys that choose which metrics a run reports rather than how (ignored when
  matching an imported record).

Words: ``preset`` is the recipe (what is trained: a GAN recipe, a likelihood model's name), ``budget`` how
long and how big (``smoke``, ``small``, ``paper``), in every family, CLI and spec.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import os
from typing import Any, ClassVar

from geneval.errors import GenevalInputError


def added_field(default: Any):
    """A config field added after runs were recorded with its dataclass. While it holds ``default`` it is left out
    of ``config_dict`` (run folders' ``config.json``, records, the leaderboard's config hashes), so adding it changes
    no earlier run's identity; a run that sets it is a new run."""
    return dataclasses.field(default=default, metadata={"omit_when_default": True})


def config_dict(config) -> dict:
    """A config dataclass as a dict: every field, but ``added_field`` fields only where they differ from their
    default. The one place a config becomes the data that names, hashes and records a run."""
    out = dataclasses.asdict(config)
    for field in dataclasses.fields(config):
        if field.metadata.get("omit_when_default") and out[field.name] == field.default:
            del out[field.name]
    return out

ENTRY_POINT_GROUP = "geneval.trainers"
ENVIRONMENT_VARIABLE = "GENEVAL_TRAINERS"
OPTION_TYPES = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class EvalOption:
    """An evaluation-time option: a row setting it re-scores the same trained runs (no retraining)."""

    name: str
    type: type  # bool, int, float or str
    default: Any
    label: str  # column header
    help: str
    protocol: str = ""  # footer text for a value, a format with {} (default: ", <label> = {}")
    optional: bool = True  # None is allowed (and means "off")
    # The values that mean something, checked when the spec is read (``leaderboard check``), not at evaluation.
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound (e.g. a truncation threshold must be > 0)
    choices: tuple = ()

    def parse(self, value, *, where: str):
        """The typed value of ``value`` from a spec (ints are accepted for floats), or an error naming it."""
        if value is None and self.optional:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise GenevalInputError(f"{where}: {self.name} = {value!r} is not a {self.type.__name__} ({self.help})")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum) \
                or (self.above is not None and value <= self.above) or (self.choices and value not in self.choices):
            raise GenevalInputError(f"{where}: {self.name} = {value!r} is outside {self.allowed()} ({self.help})")
        return value

    def allowed(self) -> str:
        if self.choices:
            return "{" + ", ".join(map(str, self.choices)) + "}"
        low = f"({self.above}" if self.above is not None else f"[{self.minimum}" if self.minimum is not None else "(-∞"
        high = f"{self.maximum}]" if self.maximum is not None else "∞)"
        return f"{low}, {high}"

    def footer(self, value) -> str:
        return (self.protocol or f", {self.label} = {{}}").format(value)


@dataclasses.dataclass(frozen=True)
class RecordedMetric:
    """A metric a family's records carry besides the registered sample metrics."""

    name: str
    label: str
    higher_is_better: bool
    # evaluation keys that must agree for two values to be compared (instead of the sample protocol)
    protocol: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ProtocolKey:
    """An evaluation key a family's records carry beyond the sample protocol (shown under the tables)."""

    name: str
    footer: str  # a format with {}: what the table's protocol line says of a value
    label: str  # how a difference is named ("10000 vs 200 <label>")


class Family(abc.ABC):
    """Subclass this, fill in the class attributes, implement the abstract methods, register an instance."""

    name: ClassVar[str]
    eval_options: ClassVar[tuple[EvalOption, ...]] = ()
    recorded_metrics: ClassVar[tuple[RecordedMetric, ...]] = ()
    protocol_keys: ClassVar[tuple[ProtocolKey, ...]] = ()
    labels: ClassVar[dict[str, str]] = {}
    record_keys: ClassVar[tuple[str, ...]] = ()
    selection_keys: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def config_class(self, preset: str | None = None) -> type:
        """The config dataclass of ``preset`` (every recipe's when None): its fields are the row switches."""

    @abc.abstractmethod
    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        """The validated config of one (row, seed); ``overrides`` values are ``--set`` texts."""

    @abc.abstractmethod
    def train(self, config, *, out: str, budget: str) -> dict:
        """Train (or resume) the run in ``out``; return its record."""

    def protocol_overrides(self, evaluation: dict) -> dict:
        return {}

    def switches(self, config) -> dict:
        """The values a table shows for a run's configuration (default: every config field)."""
        return config_dict(config)

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, **options) -> tuple[dict, dict]:
        raise GenevalInputError(f"{self.name}: re-scoring a finished run (evaluation-time options, bootstrap CI) "
                                "is not supported by this family")

    def sampler(self, run_dir, *, which: str = "final"):
        raise GenevalInputError(f"{self.name}: this family has no sampler")

    def likelihood_model(self, run_dir):
        return None

    # ------------------------------------------------------------------------------------------ helpers
    def option(self, name: str) -> EvalOption | None:
        return next((o for o in self.eval_options if o.name == name), None)


def check(family) -> Family:
    """``family`` if it fulfils the contract; else a one-line error saying what it lacks."""
    what = f"trainer family {getattr(family, 'name', family)!r}"
    if not isinstance(family, Family):
        raise TypeError(f"{what} is a {type(family).__name__}, not an instance of geneval.family.Family")
    if not isinstance(getattr(family, "name", None), str) or not family.name:
        raise TypeError(f"{what}: a family needs a non-empty string `name`")
    names = [o.name for o in family.eval_options]
    for option in family.eval_options:
        if not isinstance(option, EvalOption) or option.type not in OPTION_TYPES:
            raise TypeError(f"{what}: eval option {option!r} must be an EvalOption of type bool, int, float or str")
        option.parse(option.default, where=f"{what} default")
    recorded = [m.name for m in family.recorded_metrics]
    if not all(isinstance(m, RecordedMetric) for m in family.recorded_metrics):
        raise TypeError(f"{what}: recorded_metrics must be RecordedMetric instances")
    if not all(isinstance(k, ProtocolKey) for k in family.protocol_keys):
        raise TypeError(f"{what}: protocol_keys must be ProtocolKey instances")
    from geneval.metrics import METRICS

    for kind, declared in (("eval option", names), ("recorded metric", recorded)):
        if len(set(declared)) != len(declared):
            raise TypeError(f"{what}: a {kind} is declared twice: {declared}")
    clash = [m for m in recorded if m in METRICS]
    if clash:
        raise TypeError(f"{what}: recorded metric {clash[0]!r} is already a registered sample metric")
    return family


# ------------------------------------------------------------------------------------------- registry

_REGISTERED: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Register a family in this process (entry points and ``$GENEVAL_TRAINERS`` reach worker processes too)."""
    check(family)
    if family.name in _REGISTERED and _REGISTERED[family.name] is not family:
        raise ValueError(f"trainer family {family.name!r} is registered twice")
    _REGISTERED[family.name] = family
    return family


@functools.lru_cache(maxsize=1)
def _installed_entry_points() -> dict:
    """``name → entry point`` of every installed distribution, scanned once per process: the scan reads every
    distribution's metadata (a table build asks for families thousands of times; uncached that was 95% of it)."""
    from importlib.metadata import distributions

    found = {}
    # Every installed distribution, not just the first one found for a name: a stale ``geneval.egg-info`` in the
    # working directory would otherwise hide the entry points of the editable install.
    for dist in distributions():
        for entry in dist.entry_points:
            if entry.group == ENTRY_POINT_GROUP:
                found.setdefault(entry.name, entry)
    return found


def _entry_points() -> dict:
    """``name → entry point`` of every installed distribution, then ``$GENEVAL_TRAINERS`` (read on every call)."""
    from importlib.metadata import EntryPoint

    found = dict(_installed_entry_points())
    for value in filter(None, (v.strip() for v in os.environ.get(ENVIRONMENT_VARIABLE, "").split(","))):
        if ":" not in value:
            raise GenevalInputError(f"${ENVIRONMENT_VARIABLE}: {value!r} is not module:attribute")
        entry = EntryPoint(name="", value=value, group=ENTRY_POINT_GROUP)
        found[value] = entry  # keyed by its value: the family's name is known once loaded
    return found


def families() -> dict[str, object]:
    """``name → family or entry point`` of every family this process can reach (loaded lazily by ``get``)."""
    out: dict[str, object] = dict(_entry_points())
    for key in [k for k in out if ":" in k]:  # environment entries: load to learn their names
        family = _load(out.pop(key))
        out[family.name] = family
    out.update(_REGISTERED)
    return out


def _load(entry) -> Family:
    family = entry.load() if hasattr(entry, "load") else entry
    family = check(family)
    _REGISTERED.setdefault(family.name, family)
    return _REGISTERED[family.name]


def get(name: str, *, available: dict | None = None) -> Family:
    """The registered family ``name``, or an error naming the installed ones."""
    available = families() if available is None else available
    if name not in available:
        raise GenevalInputError(f"unknown trainer {name!r}; installed (geneval.trainers entry points): "
                                f"{', '.join(sorted(available)) or 'none'}")
    return _load(available[name])


def recorded_metrics() -> dict[str, RecordedMetric]:
    """Every family's recorded metrics (name → declaration), for tables that mix families."""
    out: dict[str, RecordedMetric] = {}
    for name in sorted(families()):
        try:
            family = get(name)
        except (ImportError, GenevalInputError):
            continue  # an entry point whose package is broken is reported when a spec uses it
        for metric in family.recorded_metrics:
            out.setdefault(metric.name, metric)
    return out
