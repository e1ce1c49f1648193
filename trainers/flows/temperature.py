"""A picture of a flow's samples at several temperatures: one row per T, the same sample seeds in every row.

    python -m trainers.flows.temperature RUN_DIR --temperatures 1.0,0.9,0.7,0.5 --out docs/flows/glow_temperature.png

The seeds are the run's own (sample i of ``derived_seed(seed, SAMPLE)``), so row T = 1 repeats the first images of
the run's ``samples.png``; only the scale of the latents changes between rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def temperature_grid(run_dir: str | Path, *, temperatures: list[float], num: int = 10, out: str | Path) -> Path:
    from geneval.grid import save_grid
    from trainers.common.likelihood_training import SAMPLE
    from trainers.common.seeding import derived_seed
    from trainers.flows.family import FLOWS

    seed = json.loads((Path(run_dir) / "record.json").read_text())["seed"]
    sampler = FLOWS.sampler(run_dir)
    rows = [sampler(num, derived_seed(seed, SAMPLE), temperature=t) for t in temperatures]
    save_grid(Path(out), torch.cat(rows), ncols=num, scale=2)
    return Path(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--temperatures", default="1.0,0.9,0.7,0.5")
    parser.add_argument("--num", type=int, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    path = temperature_grid(args.run_dir, temperatures=[float(t) for t in args.temperatures.split(",")],
                            num=args.num, out=args.out)
    print(path)


if __name__ == "__main__":
    main()
