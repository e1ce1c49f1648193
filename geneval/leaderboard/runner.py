"""``geneval leaderboard run``: train and evaluate every (row, seed) of a spec that has no record yet.

Resumable at two levels: a (row, seed) whose line is in ``records/<table>.jsonl`` is skipped; a run folder
(``runs/leaderboards/<trainer>-<preset>-<train_hash>``, named by the training config, seed included) whose
``record.json`` exists is adopted without training; one with only a checkpoint is resumed by its trainer
(exactly). Rows that differ only in their family's evaluation-time options share one run folder. Finished
trainer records listed by the spec's ``import`` globs are adopted when their config equals the row's, and adopted
again when the file changes (its sha256 is in the line).

``--jobs N`` trains N run folders at once, each in its own process (``spawn``: no forked torch state), over
all the specs given; records are appended by the parent, one complete line per write. ``engine="ray"`` submits
each run folder as a Ray task to an existing cluster instead (``geneval.leaderboard.ray_engine``); the records
are collected the same way.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
from pathlib import Path

from geneval import family
from geneval.errors import GenevalInputError
from geneval.leaderboard import records as rec
from geneval.leaderboard.spec import Spec, config_hashes, load_spec, resolve

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Task:
    row_index: int
    seed: int
    train_hash: str
    config_hash: str
    run_dir: Path


def plan(spec: Spec, *, runs_dir: Path) -> list[Task]:
    tasks = []
    for row in spec.rows:
        for seed in row.seeds:
            _, config = resolve(spec, row, seed)
            train_hash, config_hash = config_hashes(row, config)
            tasks.append(Task(row.index, seed, train_hash, config_hash,
                              runs_dir / f"{row.trainer}-{row.preset}-{row.budget}-{train_hash}"))
    return tasks


def records_path(spec: Spec, records_dir: Path | None) -> Path:
    return (records_dir or spec.root / "records") / f"{spec.name}.jsonl"


def run(spec_paths: str | Path | list, *, jobs: int = 1, runs_dir: Path = Path("runs/leaderboards"),
        records_dir: Path | None = None, train: bool = True, echo=print, device: str = "cpu", engine: str = "local",
        ray_address: str | None = None, ray_cpus_per_run: int | None = None,
        ray_gpus_per_run: float | None = None, rows: list[str] | None = None) -> list[dict]:
    """Record every missing (row, seed) of one spec or several; ``train=False``: only adopt finished run folders
    and imports. ``device``: where trainers that take one train (``auto``, ``cpu``, ``cuda``, ...); ``engine``:
    ``local`` (this machine's process pool) or ``ray`` (tasks on the cluster at ``ray_address``, each reserving
    ``ray_cpus_per_run`` CPUs and ``ray_gpus_per_run`` GPUs; None: its spec's ``[resources]``, else 1 and 0).

    Several specs share one pool of ``jobs`` processes, so one table's last long run does not leave cores idle
    while the next table waits; a run folder two specs need (a shared baseline) is trained once, by one worker.
    ``rows``: only these row names (of any of the specs) are trained now, in the order named; the others wait
    for a later call.
    """
    paths = [spec_paths] if isinstance(spec_paths, (str, Path)) else list(spec_paths)
    specs = [load_spec(p) for p in paths]  # validates every row of every spec before anything trains
    if rows:
        known = {row.name for spec in specs for row in spec.rows}
        if unknown := [name for name in rows if name not in known]:
            raise GenevalInputError(f"row {unknown[0]!r} is in none of {', '.join(map(str, paths))}; "
                                    f"rows: {', '.join(sorted(known))}")
    chosen: list[tuple[Spec, Task]] = []
    imports: dict[str, dict] = {}
    for spec in specs:
        done = {rec.key(line): line for line in rec.read_lines(records_path(spec, records_dir))}
        # an imported record that changed since its line was written (re-scored, say) is adopted again
        changed = {k for k, line in done.items()
                   if line.get("source") == "import" and line.get("source_sha256") != _sha256(spec.root / line["path"])}
        tasks = plan(spec, runs_dir=runs_dir)
        todo = [t for t in tasks
                if (key := (spec.rows[t.row_index].name, t.seed, t.config_hash)) not in done or key in changed]
        total = len(tasks)
        refresh = sum((spec.rows[t.row_index].name, t.seed, t.config_hash) in changed for t in todo)
        message = (f"{spec.name}: {total - len(todo) + refresh} of {total} (row, seed) already recorded; "
                   f"{len(todo)} to do" + (f" ({refresh} of them: imported records changed since)" if refresh else ""))
        if rows:
            later = len(todo)
            todo = [t for t in todo if spec.rows[t.row_index].name in rows]
            message += f", {len(todo)} of them now (--row), {later - len(todo)} later"
        echo(message)
        imports[str(spec.path)] = _import_candidates(spec)
        chosen += [(spec, task) for task in todo]
    if rows:  # in the order the rows were named (a stable sort keeps each row's seeds in order)
        chosen.sort(key=lambda pair: rows.index(pair[0].rows[pair[1].row_index].name))
    groups: dict[Path, list[tuple[str, int, int]]] = {}
    for spec, task in chosen:
        groups.setdefault(task.run_dir, []).append((str(spec.path), task.row_index, task.seed))
    work = [(items, str(runs_dir), imports, train, device) for items in groups.values()]
    by_path = {str(spec.path): spec for spec in specs}
    lines: list[dict] = []

    def keep(new: list[tuple[str, dict]]) -> None:
        for spec_path, line in new:
            rec.append_line(records_path(by_path[spec_path], records_dir), line)
            echo(f"recorded {by_path[spec_path].name}: {line['row']!r} seed {line['seed']} "
                 f"({line['source']}: {line['path']})")
            lines.append(line)

    if engine == "ray":
        from geneval.leaderboard.ray_engine import run_on_ray

        def needs(items) -> tuple[int, float]:  # a run folder two specs share reserves the larger need
            wanted = [by_path[spec_path].resources for spec_path, _, _ in items]
            cpus = max(r.get("cpus_per_run", 1) for r in wanted) if ray_cpus_per_run is None else ray_cpus_per_run
            gpus = max(r.get("gpus_per_run", 0) for r in wanted) if ray_gpus_per_run is None else ray_gpus_per_run
            return cpus, gpus

        run_on_ray(work, run_group, keep, address=ray_address, resources=[needs(item[0]) for item in work],
                   echo=echo)
    elif jobs <= 1:
        for item in work:
            keep(run_group(*item))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_single_thread) as pool:
            for future in as_completed([pool.submit(run_group, *item) for item in work]):
                keep(future.result())
    return lines


def _single_thread() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def run_group(items: list[tuple[str, int, int]], runs_dir: str, imports: dict[str, dict],
              train: bool = True, device: str = "cpu") -> list[tuple[str, dict]]:
    """Train one run folder (if needed) and return ``(spec path, record line)`` for its (spec, row, seed) items."""
    out, loaded = [], {}
    for spec_path, row_index, seed in items:
        if spec_path not in loaded:  # a group's items mostly share one spec: validate it once
            loaded[spec_path] = load_spec(spec_path)
        spec = loaded[spec_path]
        row = spec.rows[row_index]
        trainer, config = resolve(spec, row, seed)
        hashes = config_hashes(row, config)
        run_dir = Path(runs_dir) / f"{row.trainer}-{row.preset}-{row.budget}-{hashes[0]}"
        config_json = json.dumps(family.config_dict(config), sort_keys=True, default=str)
        canonical = json.loads(config_json)
        source, where = "run", str(run_dir)
        imported = imports[spec_path].get(import_key(row.trainer, canonical, trainer, preset=row.preset))
        if (run_dir / "record.json").is_file():
            record = json.loads((run_dir / "record.json").read_text())
        elif imported:
            source, where = "import", imported
            record = json.loads((spec.root / where).read_text())
        elif not train:
            continue
        else:
            log.info("training %s seed %d in %s", row.name, seed, run_dir)
            record = trainer.train(config, out=str(run_dir), budget=row.budget, **_device_option(trainer, device))
        metrics, protocol = _evaluation_time(spec, row, trainer, config, record, run_dir if source == "run" else None)
        line = rec.from_trainer_record(
            record, trainer=trainer, table=spec.name, row=row, seed=seed, hashes=hashes,
            switches=json.loads(json.dumps(trainer.switches(config), default=str)), config=canonical,
            source=source, path=where, metrics=metrics, protocol=protocol)
        if source == "import":
            line["source_sha256"] = _sha256(spec.root / where)
        out.append((spec_path, line))
    return out


def _device_option(trainer, device: str) -> dict:
    """``{"device": ...}`` for a family whose ``train`` takes one; others train on the CPU (said in the log)."""
    import inspect

    from geneval.distributed import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cpu":
        return {}  # every family's default
    if "device" in inspect.signature(trainer.train).parameters:
        return {"device": str(resolved)}
    log.warning("%s: this family trains on the CPU (its train() takes no device); --device %s is ignored for it",
                trainer.name, device)
    return {}


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _evaluation_time(spec: Spec, row, trainer, config, record: dict, run_dir: Path | None):
    """Re-score with the row's evaluation-time options, or with a bootstrap CI when the row has one seed."""
    ci = spec.evaluation.get("ci") if len(row.seeds) == 1 else None
    if not row.eval_options and not ci:
        return None, None
    if run_dir is None:
        if row.eval_options:
            raise GenevalInputError(f"row {row.name!r}: evaluation-time options need the run's checkpoints, and an "
                                    "imported record has none")
        return None, None
    metrics_wanted = tuple(spec.evaluation.get("metrics") or spec.columns["metrics"])
    metrics, protocol = {}, {}
    for which in record.get("metrics", {}):
        if which == "best" and "final" in metrics and _best_is_final(record):
            metrics["best"] = metrics["final"]  # the same weights, sample seeds and protocol: the same numbers
            continue
        try:
            metrics[which], protocol = trainer.evaluate(run_dir, config=config, which=which, metrics=metrics_wanted,
                                                        ci=ci, ci_resamples=spec.evaluation.get("ci_resamples", 100),
                                                        **row.eval_options)
        except GenevalInputError:
            if row.eval_options:
                raise
            return None, None  # no bootstrap for this trainer: the record's own ± stays
    return metrics, protocol


def _best_is_final(record: dict) -> bool:
    """The best checkpoint (lowest validation FID) was taken at the last step: it is the final one."""
    return record.get("best_step") is not None and record.get("best_step") == record.get("steps")


def import_key(trainer_name: str, config: dict, trainer, *, preset: str | None = None) -> str:
    """What an importable record must share with a row: its family and its config, where keys the record
    predates take the config class's default (a switch added later cannot have changed an earlier run) and
    the family's metric-selection keys (which metrics a run reports, not how) are left out: an imported record
    that lacks a metric the table shows leaves that cell empty rather than blocking the adoption."""
    defaults = {field.name: field.default for field in dataclasses.fields(trainer.config_class(preset))
                if field.default is not dataclasses.MISSING}
    full = {**json.loads(json.dumps(defaults, default=str)), **config}
    for key in trainer.selection_keys:
        full.pop(key, None)
    return f"{trainer_name}:{json.dumps(full, sort_keys=True, default=str)}"


def _import_candidates(spec: Spec) -> dict[str, str]:
    """``import_key → path relative to leaderboards/`` of the finished trainer records the spec imports."""
    out = {}
    for pattern in spec.imports:
        for found in sorted(glob.glob(str(spec.root / pattern))):
            try:
                record = json.loads(Path(found).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if "config" not in record or "family" not in record:
                continue
            try:
                trainer = family.get(record["family"])
            except GenevalInputError:
                continue  # a family this installation does not have
            out[import_key(record["family"], record["config"], trainer, preset=record.get("model"))] = \
                os.path.relpath(found, spec.root)
    return out
