"""``geneval leaderboard reproduce SPEC --row NAME --seed S``: retrain one recorded (row, seed) from scratch in a
fresh folder and compare every number the table shows for it with the record, against the table's stated ±.

The stated ± is the one the table prints for that row: the sample std over training seeds, or with one seed
the bootstrap CI half-width / the metric's own ±. A reproduction "holds" when every shown metric of the
retrained run lies within that ± of the recorded value. Nothing is appended to the records: a reproduction
is a check of the table, not a new row.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from geneval import family
from geneval.errors import GenevalInputError
from geneval.leaderboard import records as rec
from geneval.leaderboard.build import summarise, uncertainty
from geneval.leaderboard.runner import _evaluation_time, plan, records_path
from geneval.leaderboard.spec import config_hashes, load_spec, resolve


@dataclasses.dataclass
class Comparison:
    metric: str
    which: str
    recorded: float
    reproduced: float | None
    stated: float | None  # the table's ± for this row (None: the table shows none)

    @property
    def difference(self) -> float | None:
        return None if self.reproduced is None else self.reproduced - self.recorded

    @property
    def holds(self) -> bool:
        if self.reproduced is None:
            return False
        if self.stated is None:  # no ± shown: only an exact reproduction holds
            return self.reproduced == self.recorded
        return abs(self.reproduced - self.recorded) <= self.stated


def _float(value) -> float | None:
    return None if value is None else float(value)


def reproduce(spec_path: str | Path, *, row_name: str, seed: int, out: Path,
              records_dir: Path | None = None) -> tuple[dict, list[Comparison]]:
    """Retrain (row, seed) into ``out`` and compare; returns ``(the recorded line, comparisons)``."""
    spec = load_spec(spec_path)
    names = [r.name for r in spec.rows]
    if row_name not in names:
        raise GenevalInputError(f"{spec.path}: no row {row_name!r}; rows: {', '.join(map(repr, names))}")
    row = spec.rows[names.index(row_name)]
    current = {(spec.rows[t.row_index].name, t.seed, t.config_hash) for t in plan(spec, runs_dir=Path("."))}
    lines = [l for l in rec.read_lines(records_path(spec, records_dir)) if rec.key(l) in current]
    recorded = [l for l in lines if l["row"] == row_name and l["seed"] == seed]
    if not recorded:
        raise GenevalInputError(f"{spec.path}: row {row_name!r} seed {seed} has no record for the spec's current "
                                f"config; record it first with `geneval leaderboard run {spec.path}`")
    if (out / "record.json").exists() or (out / "checkpoint.pt").exists():
        raise GenevalInputError(f"{out} already holds a run; a reproduction trains from scratch in a new folder")
    line = recorded[0]
    trainer, config = resolve(spec, row, seed)
    record = trainer.train(config, out=str(out), budget=row.budget)
    metrics, protocol = _evaluation_time(spec, row, trainer, config, record, out)
    again = rec.from_trainer_record(record, trainer=trainer, table=spec.name, row=row, seed=seed, hashes=config_hashes(row, config),
                                    switches=json.loads(json.dumps(trainer.switches(config), default=str)),
                                    config=json.loads(json.dumps(family.config_dict(config), default=str)),
                                    source="reproduction", path=str(out), metrics=metrics, protocol=protocol)
    frame = summarise(spec, lines)
    cells = frame[frame["row"] == row_name].iloc[0]
    comparisons = []
    for which in spec.columns["which"]:
        for metric in spec.columns["metrics"]:
            old = line["metrics"].get(which, {}).get(metric)
            if not old or old.get("value") is None:
                continue
            new = again["metrics"].get(which, {}).get(metric) or {}
            stated, _ = uncertainty(cells, f"{metric}_{which}")  # pandas/NumPy scalars → plain floats
            comparisons.append(Comparison(metric, which, float(old["value"]), _float(new.get("value")), _float(stated)))
    return line, comparisons
