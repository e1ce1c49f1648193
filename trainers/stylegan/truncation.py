"""The truncation trade-off in W (StyleGAN §3.3, Figure 8; the sweep of ``trainers/gan/truncation.py`` for BigGAN's
truncation in Z): score one checkpoint at ψ = 1 → 0 with the run's protocol and the same sample seeds, so only ψ
differs. Smaller ψ pulls every w toward the tracked mean w̄: fidelity up, variety (recall) down; ψ = 0 draws w̄'s
image N times.

    geneval train stylegan-truncation runs/stylegan-f --psis 1,0.9,0.7,0.5,0.25,0 --num-samples 5000

Writes ``truncation.{csv,md,png}`` (FID / IS / precision / recall per ψ, written by the GAN sweep's
``write_outputs``; its "threshold" column holds ψ) and ``truncation_samples.png`` (one row per ψ, same seeds).
"""

from __future__ import annotations

import json
from pathlib import Path

from geneval.errors import GenevalInputError

SWEEP_METRICS = ("fid", "is", "precision", "recall", "density", "coverage")


def parse_psis(text: str) -> list[float]:
    out = []
    for item in text.split(","):
        try:
            psi = float(item.strip())
        except ValueError:
            raise GenevalInputError(f"ψ {item.strip()!r} is not a number; expected e.g. 1,0.7,0.5,0") from None
        if not 0.0 <= psi <= 1.0:
            raise GenevalInputError(f"ψ = {psi} must be in [0, 1]")
        out.append(psi)
    return out


def truncation_sweep(run_dir, *, psis: list[float], num_samples: int, which: str = "best", cutoff: int | None = None,
                     seed: int | None = None, out_dir=None, device: str = "cpu") -> list[dict]:
    import torch

    from geneval.grid import save_grid
    from geneval.optional import require_plotting
    from trainers.gan import evaluation
    from trainers.gan.sampler import config_from_json
    from trainers.gan.truncation import write_outputs
    from trainers.stylegan.config import StyleGanConfig
    from trainers.stylegan.sampler import StyleGanSampler, check_truncation

    require_plotting("a truncation sweep (its trade-off plot)")
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise GenevalInputError(f"{run_dir} is not a stylegan run folder (no config.json)")
    cfg = config_from_json(json.loads((run_dir / "config.json").read_text()), StyleGanConfig)
    sampler = StyleGanSampler.from_run(run_dir, which=which, device=device)
    check_truncation(None, cutoff, num_layers=sampler.num_layers)
    metrics, skipped = evaluation.available_metrics(cfg, SWEEP_METRICS)
    reference, seed = f"{cfg.dataset}:test", cfg.sample_seed if seed is None else seed
    rows, protocol = [], None
    for psi in psis:
        samples = sampler.sample(num_samples, seed, truncation=psi, truncation_cutoff=cutoff)
        values, protocol = evaluation.score(samples, None, cfg=cfg, reference=reference, reference_name=reference,
                                            metrics=metrics, num_ref=cfg.eval_num_ref)
        rows.append({"threshold": f"{psi:g}", **{name: values[name]["value"] for name in metrics}})
    out_dir = Path(out_dir) if out_dir else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = [sampler.sample(10, seed, truncation=psi, truncation_cutoff=cutoff) for psi in psis]
    save_grid(out_dir / "truncation_samples.png", torch.cat(grid), ncols=10, scale=2)
    where = f", layers < {cutoff}" if cutoff else ""
    write_outputs(rows, out_dir=out_dir, title=f"{_configuration(cfg)} ({which}) on {cfg.dataset}, ψ in W{where}",
                  protocol={**protocol, "which": which, "sample_seed": seed, "metrics_skipped": skipped})
    return rows


def _configuration(cfg) -> str:
    letter = cfg.table1_configuration()
    return f"StyleGAN configuration {letter}" if letter and cfg.preset != "progan" else cfg.preset
