"""The ``geneval train <model>`` command of a likelihood model: the same options for every model."""

from __future__ import annotations

import json

import click


def likelihood_command(group: click.Group, name: str, *, presets: tuple[str, ...], run) -> None:
    """Register ``geneval train <name>``; ``run(preset, dataset, overrides, out, resume, stop_after_steps)``."""

    help_text = (f"Train {name} on binarised MNIST or Fashion-MNIST, then evaluate its test likelihood (geneval."
                 f"likelihood) and samples.\n\n\b\nExample:\n  geneval train {name} --dataset binarized-mnist "
                 f"--preset small --out runs/{name}-bmnist --resume")

    @group.command(name, help=help_text, short_help=f"Train {name} (likelihood model).", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
    @click.option("--dataset", type=click.Choice(["binarized-mnist", "fashion-mnist"]), default="binarized-mnist",
                  show_default=True, help="binarized-mnist: dynamic binarisation; fashion-mnist: 8-bit.")
    @click.option("--preset", type=click.Choice(presets), default="small", show_default=True)
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config field (repeatable).")
    @click.option("--out", required=True, metavar="DIR", help="Run folder (config.json, checkpoint.pt, record.json).")
    @click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
    @click.option("--stop-after-steps", type=click.IntRange(1), default=None, metavar="N",
                  help="Checkpoint and stop after N steps (to test resumption).")
    def command(dataset, preset, overrides, out, resume, stop_after_steps):
        import logging

        from trainers.common.config import parse_overrides

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        record = run(preset=preset, dataset=dataset, overrides=parse_overrides(overrides), out=out, resume=resume,
                     stop_after_steps=stop_after_steps)
        if record is None:
            click.echo(json.dumps({"stopped": True, "out": out}))
            return
        final = record["metrics"]["final"]
        click.echo(json.dumps({
            "model": record["model"], "dataset": record["dataset"], "steps": record["steps"],
            "test_nats": final["test_nats"]["value"], "test_bits_per_dim": final["test_bits_per_dim"]["value"],
            "sampling_s_per_100": record["sampling"]["seconds"], "out": out,
        }))
