"""Share a sampling sweep between processes: re-score a spec's rows of finished diffusion runs ahead of
``geneval leaderboard run``, which then reads each result from its run's ``evaluations/`` (the family's
``evaluate`` keeps them there, keyed by checkpoint sha256, options and metrics) instead of sampling again.

    python -m trainers.diffusion.sweep leaderboards/specs/ddpm_sampling.toml --rows "DDPM, S=1000" "DDIM η=0, S=10"

The runner itself evaluates the rows of one run folder one after another in one process; this lets other cores
take some of them, and start as soon as the final checkpoint is written (while the run still measures its bound).
``--last-first`` draws each row's sample batches from the last one back, so a second process can take half of a
long row that a first process is drawing in order (both load the batches the other has kept; both then score it,
to the same values).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def main(argv=None) -> None:
    from geneval.leaderboard.spec import config_hashes, load_spec, resolve
    from trainers.diffusion.train import evaluate_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--rows", nargs="*", default=None, help="row names (default: every row)")
    parser.add_argument("--runs-dir", default="runs/leaderboards")
    parser.add_argument("--last-first", action="store_true", help="draw each row's batches from the last one back")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    spec = load_spec(args.spec)
    names = [row.name for row in spec.rows]
    for name in args.rows or names:
        if name not in names:
            raise SystemExit(f"{args.spec}: no row {name!r}; rows: {', '.join(names)}")
    metrics = tuple(spec.evaluation.get("metrics") or spec.columns["metrics"])
    by_name = {row.name: row for row in spec.rows}
    for row in [by_name[name] for name in args.rows] if args.rows else spec.rows:  # in the order asked
        for seed in row.seeds:
            _, config = resolve(spec, row, seed)
            run_dir = Path(args.runs_dir) / f"{row.trainer}-{row.preset}-{row.budget}-{config_hashes(row, config)[0]}"
            if not (run_dir / "checkpoint.pt").is_file():
                logging.warning("%s: %s has no checkpoint; skipped", row.name, run_dir)
                continue
            values, _ = evaluate_run(run_dir, which="final", metrics=metrics, last_first=args.last_first,
                                     **row.eval_options)
            logging.info("%s seed %d: %s", row.name, seed,
                         {k: round(v["value"], 4) for k, v in values.items() if v.get("value") is not None})


if __name__ == "__main__":
    main()
