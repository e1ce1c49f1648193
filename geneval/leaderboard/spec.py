"""Leaderboard specs: a TOML file that says what to train, how to measure it and what the table shows.

    [table]                      # the base config every row starts from
    name = "ablation"            # records: leaderboards/records/<name>.jsonl (default: the file's stem)
    title = "An ablation at CPU scale"
    trainer = "gan"              # a registered family (geneval.family: gan, autoregressive, ...)
    preset = "dcgan"             # the recipe: what is trained (a GAN recipe, a likelihood model's name)
    budget = "small"             # how long and how big (smoke, small, ...)
    dataset = "fashion-mnist"
    seeds = [0, 1, 2]            # training seeds (default [0, 1, 2])
    import = ["records/gan/*.json"]   # optional: finished trainer records (relative to leaderboards/) adopted
                                      # when their config equals a row's resolved config
    notes = "free text printed under the table"
    [table.set]                  # switches every row shares
    eval_every = 250

    [evaluation]                 # the protocol, carried into the family's own end-of-run evaluation
    reference = "fashion-mnist:test"; features = "fashion-mnist-cnn"; mode = "native"
    num_samples = 10000; metrics = ["fid", "is", "precision", "recall"]
    ci = 0.95                    # bootstrap interval level for rows with a single seed (absent: none)

    [columns]
    show = ["batch_size", "params_m.total", "iterations_k"]   # line, switch, config, option or record keys (a key
                                                               # no line can carry fails at load)
    flags = ["conditional"]                                    # shown as ✓/✗
    metrics = ["fid", "is"]; which = ["final", "best"]; tradeoff = ["fid", "is"]
    labels = { batch_size = "Batch" }                          # beside the families' own labels
    gap = { test_nats = "published.nats" }                     # optional: metric − a recorded reference value

    [resources]                  # optional: what one run needs on a cluster (--engine ray; the command line's
    cpus_per_run = 2             # --ray-cpus-per-run / --ray-gpus-per-run override it); default 1 CPU, 0 GPUs
    gpus_per_run = 1             # a fraction (0.5) shares a GPU between runs, as Ray allows

    [[rows]]                     # one row per configuration; every key not reserved below is a family switch,
    name = "baseline"            # or one of the family's declared evaluation-time options
    baseline = true
    seeds = [0]                  # optional: this row's training seeds instead of the table's (an expensive row
                                 # trained once beside cheap rows trained three times); not inherited by extends
    [[rows]]
    name = "+ conditional"
    extends = "baseline"         # start from that row's switches and options
    conditional = true

    [[findings]]                 # a paper's claim; its verdict under the table is computed from the records
    claim = "Labels help"; row = "+ conditional"; metric = "fid"   # than = the baseline by default
    # expect = "worse": the paper says the row costs this metric; default "better"

Everything is validated before anything trains: unknown keys and sections, switches the family's config does
not know (through the family's own ``resolve``), evaluation-time options by their declared types, a missing or
doubled baseline, ``extends``/finding rows that do not exist. Errors name the spec file and the line. The core
knows no family by name: switches, options, extra metrics and their labels are the families' declarations
(``geneval.family``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import tomllib
from pathlib import Path

from geneval import family
from geneval.errors import GenevalInputError

def metric_label(name: str) -> tuple[str, bool | None]:
    """``(column label, higher is better: True / False / None for no better side)`` of a table metric: the metric registry's, or the declaration of the
    family that records it — one place per metric."""
    from geneval.metrics import METRICS

    recorded = family.recorded_metrics()
    if name in recorded:
        return recorded[name].label, recorded[name].higher_is_better
    spec = METRICS.get(name)
    return spec.label, spec.higher_is_better


def _check_metrics(names, lines: "_Lines", *, line: int, where: str, recorded: bool) -> None:
    from geneval.metrics import METRICS

    known = sorted(METRICS) + (sorted(family.recorded_metrics()) if recorded else [])
    for name in names:
        if name not in known:
            near = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise lines.error(line, f"{where}: metric {name!r} is unknown{hint}; expected some of {', '.join(known)}")

SECTIONS = ("table", "evaluation", "columns", "resources", "rows", "findings")
RESOURCE_KEYS = {"cpus_per_run": (int, 1), "gpus_per_run": ((int, float), 0)}  # type, least value
TABLE_KEYS = ("name", "title", "trainer", "preset", "budget", "dataset", "seeds", "import", "notes", "paper", "set")
EVALUATION_KEYS = ("reference", "features", "mode", "num_samples", "num_ref", "metrics", "ci", "ci_resamples")
COLUMN_KEYS = ("show", "flags", "metrics", "which", "tradeoff", "labels", "gap")
ROW_RESERVED = ("name", "baseline", "extends", "trainer", "preset", "budget", "dataset", "note", "seeds")
FINDING_KEYS = ("claim", "row", "metric", "than", "which", "paper", "expect")
EXPECTATIONS = ("better", "worse")
DEFAULT_SEEDS = (0, 1, 2)


@dataclasses.dataclass(frozen=True)
class Row:
    index: int
    name: str
    baseline: bool
    trainer: str
    preset: str
    budget: str
    dataset: str
    switches: dict  # trainer config overrides (row's own + extended rows' + [table.set])
    eval_options: dict  # the family's evaluation-time options this row sets (re-scoring the same runs)
    note: str | None
    line: int
    seeds: tuple[int, ...]  # training seeds: the row's own ``seeds``, else the table's


@dataclasses.dataclass(frozen=True)
class Finding:
    claim: str
    row: str
    metric: str
    than: str
    which: str
    paper: str | None
    expect: str = "better"  # the direction the paper reports for `row` against `than` on `metric`


@dataclasses.dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    title: str
    seeds: tuple[int, ...]  # the table's training seeds (each row's own: ``Row.seeds``)
    evaluation: dict
    columns: dict
    rows: tuple[Row, ...]
    findings: tuple[Finding, ...]
    notes: str
    paper: str | None
    imports: tuple[str, ...]
    resources: dict = dataclasses.field(default_factory=dict)  # [resources]: cpus_per_run, gpus_per_run

    @property
    def root(self) -> Path:
        """The ``leaderboards/`` folder the spec lives in (``leaderboards/specs/<name>.toml``)."""
        return self.path.resolve().parent.parent

    @property
    def baseline(self) -> Row:
        return next(r for r in self.rows if r.baseline)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


# ------------------------------------------------------------------------------------------------ lines

class _Lines:
    """Find the line of a key in the spec text (tomllib does not report positions of valid TOML)."""

    def __init__(self, text: str, path: Path):
        self.lines = text.splitlines()
        self.path = path

    def _header_lines(self, header: str) -> list[int]:
        pattern = re.compile(rf"^\s*{re.escape(header)}\s*(#.*)?$")
        return [i for i, line in enumerate(self.lines) if pattern.match(line)]

    def block(self, section: str, index: int | None = None) -> int:
        """0-based line of ``[section]`` (or of the ``index``-th ``[[section]]``); -1 when absent."""
        found = self._header_lines(f"[[{section}]]" if index is not None else f"[{section}]")
        if index is not None:
            return found[index] if index < len(found) else -1
        return found[0] if found else -1

    def key(self, key: str, *, start: int = -1) -> int:
        """1-based line of ``key = ...`` (also inside an inline table) after line ``start``, within its block."""
        pattern = re.compile(rf"(^|[\s{{,]){re.escape(key)}\s*=")
        for i in range(start + 1, len(self.lines)):
            stripped = self.lines[i].strip()
            if i > start + 1 and stripped.startswith("[") and start >= 0:
                break
            if pattern.search(self.lines[i].split("#", 1)[0]):
                return i + 1
        return max(start, 0) + 1

    def error(self, line: int, message: str) -> GenevalInputError:
        return GenevalInputError(f"{self.path}:{line}: {message}")


# ------------------------------------------------------------------------------------------------ load

def load_spec(path: str | Path) -> Spec:
    """Parse and validate a spec; every row's config is resolved by its trainer (nothing trains)."""
    path = Path(path)
    if not path.is_file():
        raise GenevalInputError(f"{path}: no such spec file; expected a TOML file such as leaderboards/specs/smoke.toml")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GenevalInputError(f"{path}: invalid TOML: {error}") from None
    lines = _Lines(text, path)

    for section in data:
        if section not in SECTIONS:
            line = lines.block(section)
            line = line + 1 if line >= 0 else lines.key(section)
            raise lines.error(line, f"unknown section or key {section!r}; expected one of {', '.join(SECTIONS)}")
    table = data.get("table")
    if not isinstance(table, dict):
        raise lines.error(1, "missing [table] section (trainer, preset, budget, dataset)")
    table_line = lines.block("table")
    _check_keys(table, TABLE_KEYS, lines, start=table_line, where="[table]")
    for key in ("trainer", "preset", "budget", "dataset"):
        if not isinstance(table.get(key), str):
            raise lines.error(table_line + 1, f"[table] needs {key} = \"...\" (the base config of every row)")
    evaluation = data.get("evaluation", {})
    _check_keys(evaluation, EVALUATION_KEYS, lines, start=lines.block("evaluation"), where="[evaluation]")
    columns = data.get("columns", {})
    _check_keys(columns, COLUMN_KEYS, lines, start=lines.block("columns"), where="[columns]")
    columns = {"show": [], "flags": [], "metrics": list(evaluation.get("metrics", ["fid"])), "which": ["final"],
               "tradeoff": [], "labels": {}, "gap": {}, **columns}
    gap = columns["gap"]
    if not isinstance(gap, dict) or any(m not in columns["metrics"] or not isinstance(k, str) for m, k in gap.items()):
        raise lines.error(lines.key("gap", start=lines.block("columns")),
                          f"[columns] gap: expected {{ metric = \"record key\" }} with metrics from "
                          f"{columns['metrics']} (e.g. gap = {{ test_nats = \"published.nats\" }})")
    _check_metrics(evaluation.get("metrics", []), lines, line=lines.key("metrics", start=lines.block("evaluation")),
                   where="[evaluation] metrics", recorded=False)
    for key in ("metrics", "tradeoff"):
        _check_metrics(columns[key], lines, line=lines.key(key, start=lines.block("columns")),
                       where=f"[columns] {key}", recorded=True)
    for which in columns["which"]:
        if which not in ("final", "best"):
            raise lines.error(lines.key("which", start=lines.block("columns")),
                              f"[columns] which: {which!r}; expected final and/or best")

    seeds = _seeds(table.get("seeds", list(DEFAULT_SEEDS)), lines, start=table_line)
    resources = _resources(data.get("resources", {}), lines)

    raw_rows = data.get("rows")
    if not isinstance(raw_rows, list) or not raw_rows:
        raise lines.error(len(lines.lines), "no [[rows]]: a table needs at least a baseline row")
    base_set = dict(table.get("set", {}))
    rows: list[Row] = []
    by_name: dict[str, Row] = {}
    for index, raw in enumerate(raw_rows):
        start = lines.block("rows", index)
        if not isinstance(raw.get("name"), str) or not raw["name"].strip():
            raise lines.error(start + 1, f"row {index + 1} needs name = \"...\"")
        name = raw["name"]
        if name in by_name:
            raise lines.error(lines.key("name", start=start), f"row name {name!r} is used twice")
        switches = dict(base_set)
        eval_options: dict = {}
        if "extends" in raw:
            parent = by_name.get(raw["extends"])
            if parent is None:
                raise lines.error(lines.key("extends", start=start),
                                  f"row {name!r} extends {raw['extends']!r}, which is not an earlier row")
            switches.update(parent.switches)
            eval_options.update(parent.eval_options)
        trainer = raw.get("trainer", table["trainer"])
        try:
            owner = family.get(trainer)
        except GenevalInputError as error:
            raise lines.error(lines.key("trainer", start=start) if "trainer" in raw
                              else lines.key("trainer", start=table_line), str(error)) from None
        for key, value in raw.items():
            if key in ROW_RESERVED:
                continue
            option = owner.option(key)
            if option is None:
                switches[key] = value
            else:  # an evaluation-time option of the row's family: typed, and no part of the training config
                eval_options[key] = option.parse(value, where=f"{path}:{lines.key(key, start=start)}")
        row = Row(index=index, name=name, baseline=bool(raw.get("baseline", False)),
                  trainer=trainer, preset=raw.get("preset", table["preset"]),
                  budget=raw.get("budget", table["budget"]), dataset=raw.get("dataset", table["dataset"]),
                  switches=switches, eval_options=eval_options, note=raw.get("note"), line=start + 1,
                  seeds=_seeds(raw["seeds"], lines, start=start) if "seeds" in raw else tuple(seeds))
        rows.append(row)
        by_name[name] = row
    baselines = [r for r in rows if r.baseline]
    if len(baselines) != 1:
        line = lines.key("baseline", start=baselines[1].line - 1) if len(baselines) > 1 else rows[0].line
        raise lines.error(line, "no row is marked baseline = true (Δ% columns are relative to it)" if not baselines
                          else "more than one row is marked baseline = true")

    findings = []
    for index, raw in enumerate(data.get("findings", [])):
        start = lines.block("findings", index)
        _check_keys(raw, FINDING_KEYS, lines, start=start, where="[[findings]]")
        for key in ("claim", "row", "metric"):
            if not isinstance(raw.get(key), str):
                raise lines.error(start + 1, f"[[findings]] needs {key} = \"...\"")
        than = raw.get("than", baselines[0].name)
        for key, value in (("row", raw["row"]), ("than", than)):
            if value not in by_name:
                raise lines.error(lines.key(key, start=start) if key in raw else start + 1,
                                  f"finding refers to row {value!r}, which the spec does not have")
        if raw["metric"] not in columns["metrics"]:
            raise lines.error(lines.key("metric", start=start),
                              f"finding metric {raw['metric']!r} is not in [columns] metrics {columns['metrics']}")
        if metric_label(raw["metric"])[1] is None:
            raise lines.error(lines.key("metric", start=start),
                              f"finding metric {raw['metric']!r} has no better side (a property, not a quality): "
                              "a finding cannot rank rows by it")
        expect = raw.get("expect", "better")
        if expect not in EXPECTATIONS:
            raise lines.error(lines.key("expect", start=start),
                              f"finding expect = {expect!r}: expected one of {', '.join(map(repr, EXPECTATIONS))}")
        findings.append(Finding(claim=raw["claim"], row=raw["row"], metric=raw["metric"], than=than,
                                which=raw.get("which", columns["which"][0]), paper=raw.get("paper"),
                                expect=expect))

    spec = Spec(path=path, name=table.get("name", path.stem), title=table.get("title", path.stem),
                seeds=tuple(seeds), evaluation=dict(evaluation), columns=columns, rows=tuple(rows),
                findings=tuple(findings), notes=table.get("notes", "").strip(), paper=table.get("paper"),
                imports=tuple(table.get("import", ())), resources=resources)
    _resolve_all(spec, lines, raw_rows)
    _check_shown_keys(spec, lines)
    return spec


def _seeds(seeds, lines: _Lines, *, start: int) -> tuple[int, ...]:
    """The training seeds of the table or of a row (its ``seeds = [...]`` after line ``start``), validated."""
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds) or \
            not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise lines.error(lines.key("seeds", start=start), f"seeds = {seeds!r}: expected distinct integers")
    return tuple(seeds)


def _check_keys(section: dict, allowed: tuple[str, ...], lines: _Lines, *, start: int, where: str) -> None:
    for key in section:
        if key not in allowed:
            raise lines.error(lines.key(key, start=start),
                              f"unknown key {key!r} in {where}; expected one of {', '.join(allowed)}")


# --------------------------------------------------------------------------------------- resolution

def resolve(spec: Spec, row: Row, seed: int):
    """``(family, config object)`` of one (row, seed): the row's switches plus the protocol overrides."""
    trainer = family.get(row.trainer)
    overrides = {key: _as_text(value) for key, value in
                 {**trainer.protocol_overrides(spec.evaluation), **row.switches}.items()}
    config = trainer.resolve(preset=row.preset, budget=row.budget, dataset=row.dataset, overrides=overrides,
                             seed=seed)
    return trainer, config


def _resolve_all(spec: Spec, lines: _Lines, raw_rows: list[dict]) -> None:
    for row in spec.rows:
        start = row.line - 1
        trainer = family.get(row.trainer)
        try:
            known = {f.name for f in dataclasses.fields(trainer.config_class(row.preset))}
        except GenevalInputError as error:  # an unknown recipe
            raise lines.error(lines.key("preset", start=start) if "preset" in raw_rows[row.index]
                              else lines.key("preset", start=lines.block("table")), str(error)) from None
        for key in row.switches:
            if key not in known:
                origin = start if key in raw_rows[row.index] else lines.block("table")
                options = [o.name for o in trainer.eval_options]
                raise lines.error(lines.key(key, start=origin),
                                  f"row {row.name!r}: trainer {row.trainer} has no switch {key!r}; known: "
                                  f"{', '.join(sorted(known))}"
                                  + (f"; evaluation-time options: {', '.join(options)}" if options else ""))
        try:
            resolve(spec, row, row.seeds[0])
        except GenevalInputError as error:  # a bad value or combination: point at the switch it names
            named = [k for k in raw_rows[row.index] if re.search(rf"\b{re.escape(k)}\b", str(error))]
            line = lines.key(named[0], start=start) if named else row.line
            raise lines.error(line, f"row {row.name!r}: {error}") from None


# What every line carries whatever its family (records.line): a shown key may start with one of these.
LINE_KEYS = ("trainer", "preset", "model", "dataset", "budget", "seed", "steps", "iterations_k", "wall_time_s",
             "params", "params_m", "best_step", "evaluation", "software", "path", "source")


def _check_shown_keys(spec: Spec, lines: _Lines) -> None:
    """Every ``show`` / ``flags`` key and every ``gap`` reference is something a line can hold — a core line key,
    or a switch, config field, evaluation-time option or copied record key (``record_keys``) of one of the
    table's families — so a misspelt or undeclared key fails here, naming its line, instead of leaving a column
    of "–" forever."""
    known: set[str] = set()
    declared: set[str] = set()
    for row in spec.rows:
        trainer = family.get(row.trainer)
        known.update(f.name for f in dataclasses.fields(trainer.config_class(row.preset)))
        known.update(option.name for option in trainer.eval_options)
        known.update(trainer.switches(resolve(spec, row, row.seeds[0])[1]))
        declared.update(trainer.record_keys)
    start = lines.block("columns")
    wanted = [("show", k) for k in spec.columns["show"]] + [("flags", k) for k in spec.columns["flags"]] + \
             [("gap", k) for k in spec.columns["gap"].values()]
    for where, key in wanted:
        if key.split(".")[0] in LINE_KEYS or key in known or key in declared:
            continue
        raise lines.error(lines.key(where, start=start),
                          f"[columns] {where}: {key!r} is not a key the lines of this table carry (a core key, a "
                          f"switch, config field or evaluation option of its families, or one of the record keys "
                          f"they copy: {', '.join(sorted(declared)) or 'none'})")


def _resources(raw: dict, lines: _Lines) -> dict:
    """``[resources]``: whole CPUs (≥ 1) and GPUs (≥ 0, fractions allowed) one run reserves on a Ray cluster."""
    start = lines.block("resources")
    _check_keys(raw, tuple(RESOURCE_KEYS), lines, start=start, where="[resources]")
    for key, value in raw.items():
        kind, least = RESOURCE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kind) or value < least:
            raise lines.error(lines.key(key, start=start), f"[resources] {key} = {value!r}: expected "
                              + ("a whole number ≥ 1" if kind is int else "a number ≥ 0"))
    return dict(raw)


def _as_text(value) -> str:
    """TOML values as ``--set`` text, so the trainer's typed parser checks them (``flag = 3`` is no boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def config_hashes(row: Row, config) -> tuple[str, str]:
    """``(train_hash, config_hash)``: the training config alone (names the run folder; rows that differ
    only in evaluation-time options share a run) and with the evaluation options (keys the record)."""
    train = {"trainer": row.trainer, "budget": row.budget, "config": _canonical(family.config_dict(config))}
    train_hash = _digest(train)
    return train_hash, _digest({**train, "eval": row.eval_options})


def _canonical(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]
