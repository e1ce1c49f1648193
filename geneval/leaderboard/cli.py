"""``geneval leaderboard check|run|build SPEC`` (registered through the ``geneval.cli`` entry point)."""

from __future__ import annotations

from pathlib import Path

import click

_DIRS = [
    click.option("--records-dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
                 help="Where <table>.jsonl lives (default: leaderboards/records next to the spec's folder)."),
    click.option("--tables-dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
                 help="Where the table files go (default: leaderboards/tables)."),
]


def _dirs(command):
    for option in reversed(_DIRS):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.pass_context
def leaderboard(ctx) -> None:
    """Tables from runs: specs → training/evaluation → records → Markdown/CSV/HTML/PNG.

    \b
    Examples:
      geneval leaderboard check leaderboards/specs/biggan_ablation.toml
      geneval leaderboard run leaderboards/specs/smoke.toml --jobs 2
      geneval leaderboard build leaderboards/specs/cross_family.toml
      geneval leaderboard reproduce leaderboards/specs/biggan_ablation.toml --row "cDCGAN + attention" --seed 0
    """
    if ctx.invoked_subcommand != "check":  # tables and training runs draw PNGs: fail now, not after the work
        from geneval.optional import require_plotting

        require_plotting(f"geneval leaderboard {ctx.invoked_subcommand}")


@leaderboard.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def check(spec):
    """Validate SPEC (keys, row switches against the trainer's config, baseline) and list its runs."""
    from geneval.leaderboard.runner import plan
    from geneval.leaderboard.spec import load_spec

    loaded = load_spec(spec)
    tasks = plan(loaded, runs_dir=Path("runs/leaderboards"))
    counts = sorted({len(row.seeds) for row in loaded.rows})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    click.echo(f"{spec}: {len(loaded.rows)} rows × {seeds} seeds = {len(tasks)} (row, seed); "
               f"{len({t.run_dir for t in tasks})} distinct training runs")
    for task in tasks:
        click.echo(f"  {loaded.rows[task.row_index].name!r} seed {task.seed}: {task.run_dir} (config {task.config_hash})")


@leaderboard.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="SPEC...")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, metavar="N",
              help="Training runs at once, one process each, shared by all the SPECs.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/leaderboards"),
              show_default=True, metavar="DIR", help="Where run folders (checkpoints, record.json) go.")
@click.option("--no-build", is_flag=True, help="Only record; do not regenerate the table.")
@click.option("--no-train", is_flag=True,
              help="Train nothing: only record finished run folders and the spec's matching imported records.")
@click.option("--row", "rows", multiple=True, metavar="NAME",
              help="Only this row (repeatable; trained in the order named); the spec's other missing rows wait "
                   "for a later call.")
@click.option("--device", default="auto", show_default=True, metavar="DEV",
              help="Where trainers that support it train: auto (CUDA when available), cpu, cuda, cuda:N.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool here (--jobs); ray: one Ray task per run folder on an existing cluster.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to submit to (default: $RAY_ADDRESS, else the one `ray start` started here).")
@click.option("--ray-cpus-per-run", type=click.IntRange(1), default=None, metavar="N",
              help="CPUs each Ray task reserves (and its torch threads); default: the spec's [resources], else 1.")
@click.option("--ray-gpus-per-run", type=click.FloatRange(0), default=None, metavar="G",
              help="GPUs each Ray task reserves (0.5: two runs share one); default: the spec's [resources], else 0.")
@_dirs
def run(specs, jobs, runs_dir, no_build, no_train, rows, device, engine, ray_address, ray_cpus_per_run,
        ray_gpus_per_run, records_dir, tables_dir):
    """Train and evaluate every (row, seed) of each SPEC without a record, append records, then build the tables.

    Resumable: recorded (row, seed) are skipped, finished run folders are adopted, interrupted ones resume.
    Several SPECs share one pool of --jobs processes (a run folder two specs need is trained once).

    \b
    Examples:
      geneval leaderboard run leaderboards/specs/smoke.toml
      geneval leaderboard run leaderboards/specs/biggan_ablation.toml leaderboards/specs/cross_family.toml --jobs 2
      geneval leaderboard run leaderboards/specs/smoke.toml --engine ray --ray-address 10.0.0.1:6379
      geneval leaderboard run leaderboards/specs/stylegan_ablation.toml --engine ray --ray-gpus-per-run 1
      geneval leaderboard run leaderboards/specs/cross_family.toml --row "Row LSTM" --row DDPM
    """
    from geneval.distributed import resolve_device
    from geneval.leaderboard.runner import run as run_specs

    if device != "auto":
        resolve_device(device)  # a bad --device fails here, before any run
    if engine != "ray" and (ray_address, ray_cpus_per_run, ray_gpus_per_run) != (None, None, None):
        raise click.UsageError("--ray-address / --ray-cpus-per-run / --ray-gpus-per-run need --engine ray")
    run_specs(list(specs), jobs=jobs, runs_dir=runs_dir, records_dir=records_dir, train=not no_train,
              echo=lambda m: click.echo(m, err=True), device=device, engine=engine, ray_address=ray_address,
              ray_cpus_per_run=ray_cpus_per_run, ray_gpus_per_run=ray_gpus_per_run, rows=list(rows) or None)
    if not no_build:
        for spec in specs:
            _build(spec, records_dir, tables_dir)


@leaderboard.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_dirs
def build(spec, records_dir, tables_dir):
    """Regenerate SPEC's table files from its records (no training)."""
    _build(spec, records_dir, tables_dir)


@leaderboard.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--row", "row_name", required=True, metavar="NAME", help="The row to retrain (its name in SPEC).")
@click.option("--seed", type=int, default=0, show_default=True, help="The training seed to retrain.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Fresh run folder (default: runs/reproduce/<table>-<row>-seed<S>).")
@click.option("--records-dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Where <table>.jsonl lives (default: leaderboards/records next to the spec's folder).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout instead of the table.")
def reproduce(spec, row_name, seed, out, records_dir, as_json):
    """Retrain one recorded (row, seed) from scratch and compare its numbers with the record.

    Every metric the table shows for the row must lie within the table's stated ± (std over seeds, or the
    CI / the metric's own ± with one seed) of the recorded value; exit status 1 when one does not.
    """
    import json
    import re

    from geneval.leaderboard.reproduce import reproduce as run_reproduction
    from geneval.leaderboard.spec import load_spec

    if out is None:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", row_name).strip("-").lower() or "row"
        out = Path("runs/reproduce") / f"{load_spec(spec).name}-{slug}-seed{seed}"
    line, comparisons = run_reproduction(spec, row_name=row_name, seed=seed, out=out, records_dir=records_dir)
    current_cpu = json.loads((out / "record.json").read_text()).get("software", {}).get("cpu")
    holds = all(c.holds for c in comparisons)
    if as_json:
        click.echo(json.dumps({"spec": str(spec), "row": row_name, "seed": seed, "run": str(out),
                               "cpu": {"recorded": line.get("software", {}).get("cpu"), "reproduced": current_cpu},
                               "recorded_config_hash": line["config_hash"], "holds": holds,
                               "metrics": [{"metric": c.metric, "which": c.which, "recorded": c.recorded,
                                            "reproduced": c.reproduced, "difference": c.difference,
                                            "stated": c.stated, "holds": c.holds} for c in comparisons]}))
    else:
        click.echo(f"{row_name!r} seed {seed}: retrained in {out}")
        click.echo(f"{'metric':<14} {'which':<6} {'recorded':>12} {'reproduced':>12} {'difference':>12} "
                   f"{'stated ±':>10}  holds")
        for c in comparisons:
            num = lambda v: "–" if v is None else f"{v:.6g}"  # noqa: E731
            click.echo(f"{c.metric:<14} {c.which:<6} {num(c.recorded):>12} {num(c.reproduced):>12} "
                       f"{num(c.difference):>12} {num(c.stated):>10}  {'yes' if c.holds else 'NO'}")
        click.echo("reproduced within the stated ±" if holds else "NOT reproduced within the stated ±")
        recorded_cpu = line.get("software", {}).get("cpu")
        if recorded_cpu != current_cpu:  # float rounding follows the CPU's kernels: say where each number came from
            click.echo(f"note: recorded on CPU {recorded_cpu or 'unknown (the record predates the field)'}, "
                       f"reproduced on {current_cpu}")
    raise SystemExit(0 if holds else 1)


def _build(spec, records_dir, tables_dir):
    from geneval.leaderboard.build import build as build_tables

    for name, path in build_tables(spec, records_dir=records_dir, tables_dir=tables_dir).items():
        click.echo(str(path))
