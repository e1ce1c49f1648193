"""``geneval train pix2pix`` (torch and the trainer load when the command runs)."""

from __future__ import annotations

import json

import click

from trainers.cli import train

TASKS = ("fashion-mnist-edges", "cifar10-gray")  # trainers.pix2pix.train.TASKS
LOSSES = ("l1", "gan", "cgan", "l1+gan", "l1+cgan")


@train.command("pix2pix", context_settings={"max_content_width": 110})
@click.option("--task", type=click.Choice(TASKS), default="fashion-mnist-edges", show_default=True,
              help="Paired dataset: its inputs, and the target dataset's images as targets.")
@click.option("--budget", type=click.Choice(("smoke", "small", "paper")), default="small", show_default=True,
              help="How long and how big: smoke (seconds), small (≤ 30 min on a CPU), paper.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help=f"Override a config field (repeatable): loss ({', '.join(LOSSES)}), skips, patch (1, 4, 10, "
                   "image), norm, lambda_l1, seed, ...")
@click.option("--out", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Run folder (config.json, checkpoint.pt, log.jsonl, triplets.png, record.json).")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--stop-after-steps", type=click.IntRange(1), default=None, metavar="N",
              help="Checkpoint and stop after N steps (to test resumption).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal].")
@click.option("--device", default="auto", show_default=True, metavar="DEV",
              help="auto (CUDA when available), cpu, cuda or cuda:N; one process (no torchrun).")
def pix2pix(task, budget, overrides, out, resume, stop_after_steps, progress, device):
    """Train Pix2Pix on a paired task, then score its test outputs against the targets (L1, PSNR, SSIM,
    classifier agreement, FID / precision / recall).

    \b
    Examples:
      geneval train pix2pix --task fashion-mnist-edges --budget small --out runs/p2p --resume
      geneval train pix2pix --task cifar10-gray --set loss=l1 --out runs/p2p-l1
      geneval train pix2pix --set skips=false --set patch=image --out runs/p2p-ed-imagegan
      geneval train pix2pix --task cifar10-gray --budget paper --device cuda --out runs/p2p-color-paper
    """
    import logging

    from geneval import distributed
    from trainers.common.config import parse_overrides
    from trainers.pix2pix.train import make_config, train as train_run

    distributed.refuse_launch("geneval train pix2pix")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = make_config(budget=budget, task=task, overrides=parse_overrides(overrides))
    record = train_run(config, out=out, budget=budget, resume=resume, stop_after_steps=stop_after_steps,
                       progress=progress, device=str(distributed.resolve_device(device)))
    if record is None:
        click.echo(json.dumps({"stopped": True, "out": out}))
        return
    final = record["metrics"]["final"]
    click.echo(json.dumps({"task": task, "loss": config.loss, "steps": record["steps"], "out": out,
                           **{k: round(v["value"], 5) for k, v in final.items() if v.get("value") is not None}}))
