"""``geneval train ddpm`` and ``geneval train ddpm-steps-plot`` (torch is imported inside the commands)."""

from __future__ import annotations

import json

import click

from trainers.cli import train
from trainers.common.run_options import launch, resolved_config, training_options


@train.command("ddpm")
@click.option("--preset", default="ddpm", show_default=True, metavar="NAME",
              help="Recipe: ddpm (Ho et al. 2020: linear β, L_simple, σ²=β) or improved (cosine, learned Σ, L_hybrid).")
@click.option("--budget", default="small", show_default=True, metavar="NAME",
              help="smoke (seconds, tests), small (≤ 30 min on 2 CPU cores), paper (Ho et al.'s U-Net; GPU-days).")
@click.option("--dataset", default="fashion-mnist", show_default=True, metavar="NAME",
              help="A geneval dataset: fashion-mnist, mnist, cifar10.")
@training_options(set_example="--set schedule=cosine --set steps=2000", torchrun=True,
                  out_files="config.json, checkpoint.pt, log.jsonl, samples_*.png, record.json")
def ddpm(preset, budget, dataset, overrides, seed, out, resume, threads, stop_after_steps, print_config, progress,
         device):
    """Train a DDPM, then measure its test bound (bits/dim) and its samples (FID, IS, KID, precision, recall).

    \b
    Examples:
      geneval train ddpm --budget smoke --out runs/ddpm_smoke
      geneval train ddpm --budget small --dataset fashion-mnist --out runs/ddpm_small --resume
      geneval train ddpm --preset improved --set steps=2000 --out runs/iddpm --resume
      torchrun --nproc_per_node=2 -m geneval train ddpm --budget small --device cuda --out runs/ddpm-ddp
    Other samplers and step counts re-score a finished run: leaderboards/specs/ddpm_sampling.toml.
    """
    from trainers.diffusion.family import build_config

    cfg = resolved_config(build_config, command="geneval train ddpm", torchrun=True, preset=preset, budget=budget,
                          dataset=dataset, overrides=overrides, seed=seed, print_config=print_config)
    if cfg is None:
        return
    from trainers.diffusion.train import train as run_training

    result = launch(run_training, cfg, torchrun=True, out=out, resume=resume, threads=threads,
                    stop_after_steps=stop_after_steps, progress=progress, device=device)
    if result is None:
        return
    final = result["metrics"]["final"]
    click.echo(json.dumps({"out": out, "steps": result["steps"], "wall_time_s": result["wall_time_s"],
                           **{k: round(v["value"], 4) for k, v in final.items() if v.get("value") is not None}}))


@train.command("ddpm-steps-plot")
@click.argument("records", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, metavar="PNG", help="Where to write the plot (FID and s/1000 vs S).")
@click.option("--metric", default="fid", show_default=True, help="The metric plotted against S.")
def ddpm_steps_plot(records, out, metric):
    """FID (or another metric) vs sampling steps S, one line per sampler/η, from a leaderboard's records.

    \b
    Example:
      geneval train ddpm-steps-plot leaderboards/records/ddpm_sampling.jsonl \\
          --out leaderboards/tables/ddpm_sampling_fid_vs_steps.png
    """
    from trainers.diffusion.plots import steps_plot

    click.echo(steps_plot(records, out=out, metric=metric))
