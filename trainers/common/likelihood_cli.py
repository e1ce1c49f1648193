"""The ``geneval train <model>`` command of a likelihood model: the same options for every model.

The command's name is the preset (what is trained: ``pixelcnn``, ``vae``, ...); ``--budget`` says how long and
how big (``smoke``/``small``/``paper``), as ``--budget`` does for ``geneval train gan``.
"""

from __future__ import annotations

import json

import click


def _no_preset(ctx, param, value):
    """``--preset`` used to mean the budget here; it is an error now, not a silent synonym."""
    if value is not None:
        raise click.UsageError(f"--preset {value}: use --budget {value} (how long and how big); the model, its "
                               "preset, is the command's name", ctx=ctx)
    return value


def likelihood_command(group: click.Group, name: str, *, budgets: tuple[str, ...], run,
                       datasets: tuple[str, ...] | None = None, default_dataset: str = "binarized-mnist") -> None:
    """Register ``geneval train <name>``; ``run(budget, dataset, overrides, out, resume, stop_after_steps,
    progress, device)`` trains and returns the record (None when stopped early, ``{}`` on a rank other than 0
    under torchrun). ``datasets``: the ones the model accepts (default: every likelihood training dataset)."""
    from trainers.common.likelihood_training import DATASETS

    datasets = tuple(datasets or DATASETS)
    help_text = (f"Train {name} on {', '.join(datasets)}, then evaluate its test likelihood (geneval."
                 f"likelihood) and samples.\n\n\b\nExamples:\n  geneval train {name} --dataset {default_dataset} "
                 f"--budget small --out runs/{name}-{default_dataset} --resume\n  torchrun --nproc_per_node=2 -m "
                 f"geneval train {name} --dataset {default_dataset} --budget small --device cuda "
                 f"--out runs/{name}-ddp")

    @group.command(name, help=help_text, short_help=f"Train {name} (likelihood model).", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
    @click.option("--dataset", type=click.Choice(datasets), default=default_dataset,
                  show_default=True, help="binarized-mnist: dynamic binarisation; the others: 8-bit.")
    @click.option("--budget", type=click.Choice(budgets), default="small", show_default=True,
                  help="How long and how big: smoke (seconds), small (minutes on a CPU), paper.")
    @click.option("--preset", hidden=True, default=None, expose_value=False, callback=_no_preset,
                  help="Renamed: use --budget.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config field (repeatable).")
    @click.option("--out", required=True, metavar="DIR", help="Run folder (config.json, checkpoint.pt, record.json).")
    @click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
    @click.option("--stop-after-steps", type=click.IntRange(1), default=None, metavar="N",
                  help="Checkpoint and stop after N steps (to test resumption).")
    @click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal].")
    @click.option("--device", default="auto", show_default=True, metavar="DEV",
                  help="auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each rank its local GPU.")
    def command(dataset, budget, overrides, out, resume, stop_after_steps, progress, device):
        import logging

        from geneval import distributed
        from trainers.common.config import parse_overrides

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        overrides = parse_overrides(overrides)
        resolved = distributed.resolve_device(device)
        ctx = distributed.init(resolved)  # under torchrun: gloo on the CPU, NCCL on CUDA
        record = run(budget=budget, dataset=dataset, overrides=overrides, out=out, resume=resume,
                     stop_after_steps=stop_after_steps, progress=progress, device=str(resolved))
        if ctx is not None and not ctx.is_main:
            return
        if record is None:
            click.echo(json.dumps({"stopped": True, "out": out}))
            return
        final = record["metrics"]["final"]
        click.echo(json.dumps({
            "model": record["model"], "dataset": record["dataset"], "steps": record["steps"],
            "test_nats": final["test_nats"]["value"], "test_bits_per_dim": final["test_bits_per_dim"]["value"],
            "sampling_s_per_100": record["sampling"]["seconds"], "out": out,
        }))
