"""A run folder and the results record a finished run writes (the leaderboards read these records).

Layout of ``<out>/``: ``config.json`` (what was asked; a resumed run must ask the same), ``checkpoint.pt``
(latest, atomic; its layout is ``trainers.common.harness``'s), ``best.pt`` (best on the validation protocol, if
the trainer tracks one), ``log.jsonl`` (one JSON line per logged window, ``{"kind": "train", "step", <mean
losses>, "wall_time_s"}``, and per validation, ``{"kind": "val", "step", "wall_time_s", <values>}``),
``samples*.png`` and other images, ``record.json`` (written last: its presence means the run finished).

The record's schema (``RECORD_VERSION``), the keys every family writes: ``record_version``, ``family``,
``model``, ``preset`` (the recipe: what was trained), ``budget`` (how long and how big; None where the family
has no named budgets), ``seed``, ``dataset``, ``config`` (the config's fields), ``params`` (name → count),
``steps``, ``wall_time_s`` (training time, summed over resumptions), ``metrics`` (``{"final": {...}}`` plus
``"best"`` where the run selects a best checkpoint; each metric ``{"value", "std", "label",
"higher_is_better", ...}``), ``evaluation`` (the protocol: extractor + weights sha256, sample count, reference
split and fingerprint, seeds), ``artifacts`` (name → relative path), and ``software`` (geneval, torch and
python versions, git commit; added by ``write_record``). Families add their own keys beside these: GANs
``switches``, ``best_step``, ``selection``, ``collapse``; likelihood models ``likelihood``, ``sampling``,
``published``; classifiers ``history``, ``target_accuracy``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from geneval.atomic import write_text_atomic
from geneval.errors import GenevalInputError

RECORD_VERSION = 1


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    def finished(self) -> bool:
        return self.record_path.is_file()

    def start(self, config: dict, *, resume: bool) -> bool:
        """Create the folder and write ``config.json``; return True when resuming an existing checkpoint.

        An existing run with a different config is an error (resuming it would mix two experiments); so is
        an existing checkpoint without ``resume``. Without a checkpoint the run starts afresh, and the log of an
        earlier attempt that died before its first checkpoint is dropped.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        config_path = self.file("config.json")
        canonical = json.loads(json.dumps(config, default=str))
        if config_path.is_file():
            previous = json.loads(config_path.read_text())
            if previous != canonical:
                changed = sorted(k for k in set(previous) | set(canonical) if previous.get(k) != canonical.get(k))
                raise GenevalInputError(
                    f"{self.path} holds a run with a different config (keys {', '.join(changed)}); "
                    "use another --out or delete it"
                )
        if self.checkpoint.is_file() and not resume:
            raise GenevalInputError(f"{self.checkpoint} exists: pass --resume to continue it, or use another --out")
        write_text_atomic(config_path, json.dumps(canonical, indent=2, sort_keys=True) + "\n")
        resuming = self.checkpoint.is_file()
        if not resuming:  # a fresh start: what an attempt that died before its first checkpoint logged is not
            self.file("log.jsonl").unlink(missing_ok=True)  # this run's history
        return resuming

    def log(self, entry: dict) -> None:
        with open(self.file("log.jsonl"), "a") as handle:
            handle.write(json.dumps(entry, default=_jsonable) + "\n")

    def read_log(self) -> list[dict]:
        path = self.file("log.jsonl")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []

    def write_record(self, record: dict) -> Path:
        full = {"record_version": RECORD_VERSION, **record, "software": software()}
        return write_text_atomic(self.record_path, json.dumps(full, indent=2, default=_jsonable) + "\n")

    def read_record(self) -> dict:
        return json.loads(self.record_path.read_text())


def truncate_log(run: RunDir, *, after_step: int) -> None:
    """Drop log lines past ``after_step`` (written after the checkpoint a resumed run restarts from)."""
    entries = [e for e in run.read_log() if e.get("step", 0) <= after_step]
    write_text_atomic(run.file("log.jsonl"), "".join(json.dumps(e) + "\n" for e in entries))


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def module_device(module: torch.nn.Module) -> torch.device:
    """Where ``module`` runs (its first parameter's or buffer's device; the CPU for one with neither)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def software() -> dict:
    from geneval import __version__

    # The CPU is part of a number's provenance: oneDNN picks kernels by instruction set, and a GAN's training
    # amplifies their different float rounding (the same commit and seed gave FID 53.93 on an AMD EPYC Zen 4 and
    # 58.04 on an Intel Xeon: leaderboards/reproductions/biggan_ablation.md).
    return {"geneval": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "commit": git_commit(), "cpu": cpu_model()}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Stopwatch:
    """Wall time that survives resumption: seconds spent before the checkpoint plus this session's."""

    def __init__(self, before: float = 0.0):
        self.before = before
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.started


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
