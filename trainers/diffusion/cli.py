"""``geneval train ddpm`` and ``geneval train ddpm-steps-plot`` (torch is imported inside the commands)."""

from __future__ import annotations

import json

import click

from trainers.cli import train


@train.command("ddpm")
@click.option("--preset", default="ddpm", show_default=True, metavar="NAME",
              help="Recipe: ddpm (Ho et al. 2020: linear β, L_simple, σ²=β) or improved (cosine, learned Σ, L_hybrid).")
@click.option("--budget", default="small", show_default=True, metavar="NAME",
              help="smoke (seconds, tests), small (≤ 30 min on 2 CPU cores), paper (Ho et al.'s U-Net; GPU-days).")
@click.option("--dataset", default="fashion-mnist", show_default=True, metavar="NAME",
              help="A geneval dataset: fashion-mnist, mnist, cifar10.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key (repeatable), e.g. --set schedule=cosine --set steps=2000.")
@click.option("--seed", type=int, default=None, help="Training seed (default 0).")
@click.option("--out", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Run folder (config.json, checkpoint.pt, log.jsonl, samples_*.png, record.json).")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out if there is one.")
@click.option("--threads", type=int, default=0, show_default=True, help="torch threads (0: torch's default).")
@click.option("--stop-after-steps", type=int, default=None, metavar="N",
              help="Checkpoint and stop after N steps (to test resumption).")
@click.option("--print-config", is_flag=True, help="Print the resolved config as JSON and exit.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal].")
@click.option("--device", default="auto", show_default=True, metavar="DEV",
              help="auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each rank its local GPU.")
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
    from trainers.common.config import config_dict, parse_overrides
    from trainers.diffusion.family import build_config

    cfg = build_config(preset=preset, budget=budget, dataset=dataset, overrides=parse_overrides(overrides), seed=seed)
    if print_config:
        click.echo(json.dumps(config_dict(cfg), indent=2))
        return
    import logging

    import torch

    from trainers.diffusion.train import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("trainers").setLevel(logging.INFO)
    from geneval import distributed

    if threads:
        torch.set_num_threads(threads)
    resolved = distributed.resolve_device(device)
    ctx = distributed.init(resolved)
    result = run_training(cfg, out=out, resume=resume, stop_after_steps=stop_after_steps, progress=progress,
                          device=str(resolved))
    if ctx is not None and not ctx.is_main:
        return
    if "stopped" in result:
        click.echo(f"stopped at step {result['stopped']}; continue with --resume", err=True)
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
