"""``geneval train gan`` and ``geneval train gan-truncation`` (torch is imported inside the commands)."""

from __future__ import annotations

import json

import click

from trainers.cli import train
from trainers.common.run_options import launch, resolved_config, training_options

PRESET_NAMES = ("mlp", "dcgan", "cgan", "wgan", "wgan-gp", "sngan", "sagan", "biggan-lite")


@train.command("gan")
@click.option("--preset", required=True, metavar="NAME",
              help=f"Recipe: {', '.join(PRESET_NAMES)}.")
@click.option("--budget", "--scale", "budget", default="default", show_default=True, metavar="NAME",
              help="Size and length: smoke (seconds, tests), small (≤20 min on a CPU), default (the recipe's own).")
@click.option("--dataset", default="fashion-mnist", show_default=True, metavar="NAME",
              help="A geneval dataset: fashion-mnist, mnist, cifar10, ... (geneval datasets).")
@training_options(set_example="--set n_dis=2 --set sn_g=true", torchrun=True,
                  out_files="config.json, checkpoint.pt, best.pt, log.jsonl, PNGs, record.json",
                  stop_note="; N counts generator steps")
def gan(preset, budget, dataset, overrides, seed, out, resume, threads, stop_after_steps, print_config, progress,
        device):
    """Train a GAN recipe, evaluate it on the validation slice while training and on the test split at the end.

    \b
    Examples:
      geneval train gan --preset dcgan --budget small --out runs/gan/dcgan --resume
      geneval train gan --preset sngan --set n_dis=2 --set lr_d=4e-4 --out runs/gan/sngan
      geneval train gan --preset biggan-lite --dataset cifar10 --set width_mult=2 --out runs/gan/biggan
      torchrun --nproc_per_node=2 -m geneval train gan --preset dcgan --device cuda --out runs/gan/dcgan-ddp
    """
    from trainers.gan.config import build_config

    cfg = resolved_config(build_config, command="geneval train gan", torchrun=True, preset=preset, budget=budget,
                          dataset=dataset, overrides=overrides, seed=seed, print_config=print_config)
    if cfg is None:
        return
    from trainers.gan.train import train as run_training

    result = launch(run_training, cfg, torchrun=True, out=out, resume=resume, threads=threads,
                    stop_after_steps=stop_after_steps, progress=progress, device=device)
    if result is None:
        return
    final, best = result["metrics"]["final"], result["metrics"]["best"]
    summary = {which: {k: round(v["value"], 4) for k, v in m.items()} for which, m in (("final", final), ("best", best))}
    click.echo(json.dumps({"out": out, "steps": result["steps"], "best_step": result["best_step"],
                           "collapse": result["collapse"]["detected"], "wall_time_s": result["wall_time_s"],
                           **summary}))


@train.command("gan-truncation")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--thresholds", default="none,2,1.5,1,0.75,0.5", show_default=True, metavar="LIST",
              help="Comma-separated truncation thresholds (none: no truncation).")
@click.option("--num-samples", type=click.IntRange(1), default=5000, show_default=True, metavar="N")
@click.option("--which", type=click.Choice(["best", "final"]), default="best", show_default=True)
@click.option("--seed", type=int, default=None, help="First sample seed (default: the run's sample_seed).")
@click.option("--out", default=None, metavar="DIR", help="Where to write truncation.{csv,md,png} (default RUN_DIR).")
def gan_truncation(run_dir, thresholds, num_samples, which, seed, out):
    """Truncation sweep of a trained GAN: IS vs FID and precision vs recall per threshold (table + plot).

    \b
    Example:
      geneval train gan-truncation runs/gan/biggan-lite --thresholds none,2,1,0.5 --num-samples 5000
    """
    from trainers.gan.truncation import parse_thresholds, truncation_sweep

    rows = truncation_sweep(run_dir, thresholds=parse_thresholds(thresholds), num_samples=num_samples, which=which,
                            seed=seed, out_dir=out)
    from pathlib import Path

    click.echo((Path(out or run_dir) / "truncation.md").read_text())
    return rows


@train.command("gan-baseline")
@click.option("--dataset", default="fashion-mnist", show_default=True, metavar="NAME")
@click.option("--budget", "--scale", "budget", default="small", show_default=True, metavar="NAME",
              help="Whose report protocol to copy (sample count, extractor, validation slice).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--out", required=True, metavar="DIR", type=click.Path(file_okay=False))
def gan_baseline(dataset, budget, overrides, out):
    """Score per-pixel Gaussian samples fitted to the training images with the GAN report protocol.

    \b
    Example:
      geneval train gan-baseline --dataset fashion-mnist --budget small --out runs/gan/baseline
    """
    from trainers.common.config import parse_overrides
    from trainers.gan.baseline import run_baseline
    from trainers.gan.config import build_config

    cfg = build_config(preset="dcgan", budget=budget, dataset=dataset, overrides=parse_overrides(overrides))
    record = run_baseline(cfg, out=out)
    click.echo(json.dumps({"out": out, **{k: round(v["value"], 4) for k, v in record["metrics"]["final"].items()}}))
