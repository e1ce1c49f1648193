"""Leaderboard records: one JSON line per measured (row, seed), appended to ``records/<table>.jsonl``.

A line carries everything its table row shows (switches, parameters, iterations, metrics of the final and best
checkpoints, collapse, the evaluation protocol and the software that measured it), so tables are rebuilt from
records alone. Appends are one ``write`` of a complete line on an ``O_APPEND`` descriptor, so concurrent
runners never interleave and a killed runner leaves at most an incomplete last line, which readers skip.
Several lines for the same ``(row, seed, config_hash)`` (a re-run) collapse to the last one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_FORMAT = 1
# The sample protocol every family's record carries; a family adds its own keys (its evaluation-time options and
# ``protocol_keys``, e.g. the split a likelihood was measured on).
PROTOCOL_KEYS = ("extractor", "weights_sha256", "mode", "num_samples", "reference", "reference_count",
                 "reference_fingerprint", "sample_seed", "skipped")


def protocol_keys(trainer) -> tuple[str, ...]:
    """The evaluation keys a line of ``trainer``'s family keeps: the sample protocol, then the family's own."""
    own = [o.name for o in trainer.eval_options] + [k.name for k in trainer.protocol_keys]
    return PROTOCOL_KEYS + tuple(k for k in own if k not in PROTOCOL_KEYS)


def append_line(path: Path, line: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # a writer killed mid-line left a torn last line: end it, so this record is not glued onto it and
            # dropped with it by read_lines (records are appended by one parent process at a time)
            data = b"\n" + data
        written = os.write(fd, data)
        if written != len(data):  # a regular file takes the whole line; anything else is a broken disk
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict]:
    """All complete lines, deduplicated on (row, seed, config_hash), the last one winning, in file order."""
    if not path.is_file():
        return []
    out: dict[tuple, dict] = {}
    for text in path.read_text().split("\n"):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:  # an incomplete last line from a killed writer
            continue
        out.pop(key(line), None)
        out[key(line)] = line
    return list(out.values())


def key(line: dict) -> tuple:
    return line["row"], line["seed"], line["config_hash"]


def from_trainer_record(record: dict, *, trainer, table: str, row, seed: int, hashes: tuple[str, str],
                        switches: dict, config: dict, source: str, path: str, metrics: dict | None = None,
                        protocol: dict | None = None) -> dict:
    """A leaderboard line from a trainer's ``record.json`` (``metrics``/``protocol``: a re-evaluation's)."""
    params = record.get("params", {})
    params_m = {k: round(v / 1e6, 4) for k, v in params.items()}
    params_m.setdefault("total", round(sum(params.values()) / 1e6, 4))
    evaluation = dict(record.get("evaluation", {}))
    if protocol:
        evaluation.update(protocol)
    collapse = record.get("collapse") or {}
    return {
        "leaderboard_record": RECORD_FORMAT, "table": table, "row": row.name, "seed": seed,
        "train_hash": hashes[0], "config_hash": hashes[1],
        "trainer": row.trainer, "preset": row.preset, "budget": row.budget, "dataset": row.dataset,
        "row_switches": row.switches, "eval_options": row.eval_options,
        "source": source, "path": path, "model": record.get("model"),
        "params": params, "params_m": params_m, "steps": record.get("steps"),
        "iterations_k": (record.get("steps") or 0) / 1000, "wall_time_s": record.get("wall_time_s"),
        "switches": switches, "config": config,
        "metrics": {which: {name: _metric(m) for name, m in values.items()}
                    for which, values in (metrics or record.get("metrics", {})).items()},
        "best_step": record.get("best_step"),
        "collapse": {"detected": bool(collapse.get("detected", False)), "step": collapse.get("step")},
        "evaluation": {k: evaluation[k] for k in protocol_keys(trainer) if k in evaluation},
        "software": record.get("software", {}),
        **({"record": {k: _dotted(record, k) for k in trainer.record_keys}} if trainer.record_keys else {}),
    }


def _dotted(record: dict, key: str):
    value = record
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _metric(m: dict) -> dict:
    out = {k: m.get(k) for k in ("value", "std", "label", "higher_is_better")}
    details = m.get("details") or {}
    for k in ("ci_low", "ci_high", "ci_level", "ci_half_width", "num_gen", "num_ref"):
        if k in details:
            out[k] = details[k]
    return out
