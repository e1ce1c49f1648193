"""Collect finished GAN runs into tracked folders: records → ``leaderboards/records/gan/<name>.json``, images →
``docs/gan/<name>_*.png``, and one generated Markdown table → ``docs/gan/results.md`` (no hand-typed numbers).

    python -m trainers.gan.report runs/gan/baseline-small runs/gan/dcgan-small runs/gan/cdcgan-small
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from geneval.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("fid", "is", "kid", "precision", "recall")


def collect(run_dirs: list[Path], *, records_dir: Path, docs_dir: Path) -> str:
    records_dir.mkdir(parents=True, exist_ok=True)
    docs_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for run_dir in run_dirs:
        record = json.loads((run_dir / "record.json").read_text())
        name = run_dir.name
        shutil.copyfile(run_dir / "record.json", records_dir / f"{name}.json")
        for artifact in ("samples_final.png", "samples_best.png", "curves.png", "truncation.png", "truncation_samples.png", "truncation.md",
                         "truncation.csv"):
            if (run_dir / artifact).is_file():
                shutil.copyfile(run_dir / artifact, docs_dir / f"{name}_{artifact}")
        rows.append((name, record))

    lines = ["| run | model | conditional | steps | G params (M) | wall (min) | checkpoint | "
             + " | ".join(COLUMNS) + " | collapse |", "|" + "---|" * (8 + len(COLUMNS))]
    for name, record in rows:
        for which, metrics in record["metrics"].items():
            cells = [name, record["model"], str(record.get("switches", {}).get("conditional", "")),
                     str(record.get("steps", "")), f"{record.get('params_m', {}).get('generator', '')}",
                     f"{record['wall_time_s'] / 60:.1f}",
                     which + (f" (step {record['best_step']})" if which == "best" else "")]
            cells += [f"{metrics[c]['value']:.3f}" if c in metrics else "–" for c in COLUMNS]
            cells.append(str(record.get("collapse", {}).get("detected", "–")))
            lines.append("| " + " | ".join(cells) + " |")
    protocol = rows[0][1]["evaluation"]
    lines += ["", f"Protocol: {protocol['num_samples']} samples (seeds from {protocol['sample_seed']}) vs "
                  f"{protocol['reference']} ({protocol['reference_count']} images), extractor {protocol['extractor']} "
                  f"(weights sha256 {protocol['weights_sha256'][:12]}…); best = lowest FID on the held-out slice "
                  f"of the train split (not the test split). Records: leaderboards/records/gan/.", ""]
    table = "\n".join(lines)
    write_text_atomic(docs_dir / "results.md", table)
    return table


def main(argv: list[str] | None = None) -> None:
    runs = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    print(collect(runs, records_dir=ROOT / "leaderboards" / "records" / "gan", docs_dir=ROOT / "docs" / "gan"))


if __name__ == "__main__":
    main()
