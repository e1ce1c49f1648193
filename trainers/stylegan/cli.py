"""``geneval train stylegan`` and ``geneval train stylegan-truncation`` (torch is imported inside the commands)."""

from __future__ import annotations

import json

import click

from trainers.cli import train
from trainers.common.run_options import launch, resolved_config, training_options

PRESET_NAMES = ("progan", "stylegan-a", "stylegan-b", "stylegan-c", "stylegan-d", "stylegan-e", "stylegan-f")


@train.command("stylegan", context_settings={"max_content_width": 110})
@click.option("--preset", default="stylegan-f", show_default=True, metavar="NAME",
              help=f"Recipe (StyleGAN's Table 1, cumulative): {', '.join(PRESET_NAMES)}.")
@click.option("--budget", default="small", show_default=True, metavar="NAME",
              help="smoke (seconds, tests), small (≤ 30 min on a shared 2-core CPU), paper (the papers' widths).")
@click.option("--dataset", default="fashion-mnist", show_default=True, metavar="NAME",
              help="A geneval dataset (28×28 grows 7 → 14 → 28; 32×32 grows 8 → 16 → 32).")
@training_options(set_example="--set mixing_prob=0.5 --set mapping_layers=4", torchrun=False,
                  out_files="config.json, checkpoint.pt, best.pt, log.jsonl, pictures, record.json",
                  stop_note="; the growing schedule resumes too")
def stylegan(preset, budget, dataset, overrides, seed, out, resume, threads, stop_after_steps, print_config, progress,
             device):
    """Train ProGAN or a StyleGAN configuration (growing 7 → 14 → 28 with fade-in), select the best checkpoint on
    a held-out train slice, score final and best on the test split, draw the style-mixing, noise and ψ pictures.

    \b
    Examples:
      geneval train stylegan --preset stylegan-f --budget small --dataset fashion-mnist --out runs/sg-f --resume
      geneval train stylegan --preset progan --set loss=nonsat --out runs/progan-ns
      geneval train stylegan --preset stylegan-c --set mapping_layers=2 --stop-after-steps 500 --out runs/sg-c
      geneval train stylegan --preset stylegan-f --budget paper --device cuda --out runs/sg-f-paper
      geneval train stylegan-truncation runs/sg-f --psis 1,0.7,0.5,0
    """
    from trainers.stylegan.config import build_config

    cfg = resolved_config(build_config, command="geneval train stylegan", torchrun=False, preset=preset,
                          budget=budget, dataset=dataset, overrides=overrides, seed=seed, print_config=print_config)
    if cfg is None:
        return
    from trainers.stylegan.train import train as run_training

    result = launch(run_training, cfg, torchrun=False, out=out, resume=resume, threads=threads,
                    stop_after_steps=stop_after_steps, progress=progress, device=device)
    if result is None:
        return
    summary = {which: {k: round(v["value"], 4) for k, v in m.items()} for which, m in result["metrics"].items()}
    click.echo(json.dumps({"out": out, "steps": result["steps"], "growth": result["growth"],
                           "best_step": result["best_step"], "wall_time_s": result["wall_time_s"], **summary}))


@train.command("stylegan-truncation", context_settings={"max_content_width": 110})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--psis", default="1,0.9,0.8,0.7,0.6,0.5,0.25,0", show_default=True, metavar="LIST",
              help="Comma-separated ψ values in [0, 1] (1: untruncated).")
@click.option("--cutoff", type=int, default=None, metavar="LAYER",
              help="Truncate only the layers before this one (coarse styles); default: every layer.")
@click.option("--num-samples", type=click.IntRange(1), default=5000, show_default=True, metavar="N")
@click.option("--which", type=click.Choice(["best", "final"]), default="best", show_default=True)
@click.option("--seed", type=int, default=None, help="First sample seed (default: the run's sample_seed).")
@click.option("--out", default=None, metavar="DIR", help="Where to write truncation.{csv,md,png} (default RUN_DIR).")
@click.option("--device", default="auto", show_default=True, metavar="DEV",
              help="Where the generator runs: auto (CUDA when available), cpu, cuda or cuda:N.")
def stylegan_truncation(run_dir, psis, cutoff, num_samples, which, seed, out, device):
    """Truncation in W of a trained StyleGAN: FID, IS, precision, recall per ψ (table + plot + sample rows).

    \b
    Example:
      geneval train stylegan-truncation runs/sg-f --psis 1,0.7,0.5,0 --cutoff 4 --num-samples 5000
    """
    from pathlib import Path

    from geneval.distributed import resolve_device
    from trainers.stylegan.truncation import parse_psis, truncation_sweep

    truncation_sweep(run_dir, psis=parse_psis(psis), num_samples=num_samples, which=which, cutoff=cutoff, seed=seed,
                     out_dir=out, device=str(resolve_device(device)))
    click.echo((Path(out or run_dir) / "truncation.md").read_text())
