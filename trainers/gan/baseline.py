"""The trivial baseline every GAN number is read against: independent per-pixel Gaussians fitted to the
training images (mean and standard deviation of each pixel), sampled, rounded to uint8 and scored with the
GAN runs' report protocol (same extractor, test split, sample count, seeds, metrics).

    geneval train gan-baseline --dataset fashion-mnist --out runs/gan/baseline

A model that does not beat this by a wide margin has learned little beyond the average image.
"""

from __future__ import annotations

import time
import torch

from geneval.images import quantize_to_uint8
from trainers.common.config import config_dict
from trainers.common.data import load_split
from trainers.common.runs import RunDir
from trainers.common.seeding import per_sample_normal


def pixel_gaussian_samples(images_uint8: torch.Tensor, *, num: int, seed: int) -> torch.Tensor:
    """``num`` uint8 samples from per-pixel Gaussians fitted to ``images_uint8``; sample i from seed (seed, 0, i)."""
    x = images_uint8.double()
    mean, std = x.mean(0), x.std(0)
    z = per_sample_normal(num, tuple(mean.shape), seed=seed).double()
    return quantize_to_uint8((mean + std * z).clamp(0, 255), "0,255", what="pixel-Gaussian samples")


def run_baseline(cfg, *, out) -> dict:
    """Fit on the same training images a GAN run of ``cfg`` uses; score like its ``finish`` step."""
    from geneval.grid import save_grid
    from trainers.gan import evaluation

    started = time.perf_counter()
    run = RunDir(out)
    if run.finished():  # like a finished GAN run: rerunning the script does not re-measure it
        return run.read_record()
    run.start({**config_dict(cfg), "model": "pixel-gaussian"}, resume=True)
    images, _, info = load_split(cfg.dataset, "train")
    n_train = len(images) - cfg.val_holdout
    if cfg.train_subset:
        n_train = min(n_train, cfg.train_subset)
    samples = pixel_gaussian_samples(images[:n_train], num=cfg.eval_samples, seed=cfg.sample_seed)
    metrics, skipped = evaluation.available_metrics(cfg, tuple(m for m in cfg.eval_metrics if m != "intra_fid"))
    reference = f"{cfg.dataset}:test"
    values, protocol = evaluation.score(samples, None, cfg=cfg, reference=reference, reference_name=reference,
                                        metrics=metrics, num_ref=cfg.eval_num_ref)
    save_grid(run.file("samples_final.png"), samples[:100], ncols=10, scale=2)
    record = {
        "family": "baseline", "model": "pixel-gaussian", "preset": "pixel-gaussian", "budget": cfg.budget,
        "seed": cfg.seed, "dataset": cfg.dataset, "config": config_dict(cfg), "params": {"mean_and_std": 2 * samples[0].numel()},
        "steps": 0, "train_images": n_train, "wall_time_s": round(time.perf_counter() - started, 1),
        "metrics": {"final": values},
        "evaluation": {**protocol, "sample_seed": cfg.sample_seed, "metrics_skipped": skipped,
                       "train_fingerprint": info["fingerprint"]},
        "artifacts": {"final_samples": "samples_final.png"},
    }
    run.write_record(record)
    return run.read_record()
