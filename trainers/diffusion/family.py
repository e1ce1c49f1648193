"""Diffusion models as the leaderboards and ``geneval`` reach them (the ``geneval.family`` contract).

Registered under the ``geneval.trainers`` entry point ``diffusion``. Recipes (``preset``): ``ddpm`` (Ho et al.
2020: linear β 1e-4 → 0.02, T = 1000, L_simple, σ_t² = β_t) and ``improved`` (Nichol & Dhariwal 2021: cosine
schedule, learned variances, L_hybrid). Budgets: ``smoke`` (seconds; tests), ``small`` (≤ 30 min on a
2-core CPU), ``paper`` (Ho et al.'s CIFAR-10 U-Net — ch 128, 2 blocks per level, attention at 16×16, dropout 0.1,
batch 128, EMA 0.9999, 800k steps — with its levels scaled to the image: ch_mult 1,2,2,2 at 32×32, 1,2,2 with
attention at 14×14 at 28×28; days of GPU time, never run here).

Evaluation-time options re-score the same checkpoint: ``sampler`` (ddpm ancestral / ddim), ``sampling_steps``
S and ``eta`` (DDIM's η), and ``num_samples`` (how many samples, for long chains that 10,000 would make
unaffordable; the count is in every number's protocol). Recorded metrics: the test bound in bits/dim and nats
(declared as the likelihood families declare them, so tables mixing families compare them) and the sampling
time per 1,000 samples.
"""

from __future__ import annotations

from typing import ClassVar

from geneval.errors import GenevalInputError
from geneval.family import EvalOption, Family, ProtocolKey, RecordedMetric
from trainers.common.likelihood_family import LikelihoodFamily

PRESETS = {
    "ddpm": dict(schedule="linear", loss="simple", model_var="fixedlarge"),
    "improved": dict(schedule="cosine", loss="hybrid", model_var="learned_range"),
}
# Sizes and lengths; `small` and `paper` adapt their levels to the image (see resolution_defaults).
BUDGETS = {
    "smoke": dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, timesteps=100, steps=12, batch_size=16, warmup_steps=4,
                  train_num=512, log_every=4, checkpoint_every=6, eval_samples=40, eval_sampling_steps=5,
                  eval_num_ref=200, bound_num=16, bound_strata=3, sample_batch_size=16, bound_batch_size=16,
                  eval_metrics=("fid", "kid")),
    # ch 16, attention in the middle (7×7) only: measured ≈ 0.5 s per step of batch 64 on one shared core
    "small": dict(ch=16, num_res_blocks=1, dropout=0.1, steps=3000, batch_size=64, warmup_steps=200,
                  ema_decay=0.999, eval_samples=2000, eval_sampling_steps=50, bound_strata=8),
    "paper": dict(ch=128, num_res_blocks=2, dropout=0.1, steps=800_000, batch_size=128, warmup_steps=5000,
                  ema_decay=0.9999, checkpoint_every=5000, log_every=500, eval_samples=10_000,
                  eval_sampling_steps=1000, eval_sampler="ddpm", bound_strata=0),
}


def resolution_defaults(dataset: str, budget: str) -> dict:
    """Levels and attention for the image size: 32×32 halves three times (Ho et al.'s CIFAR-10 net), 28×28
    twice (28 → 14 → 7), with attention at the middle resolution (16 or 14)."""
    from geneval.datasets import DATASETS

    if dataset not in DATASETS:
        raise GenevalInputError(f"dataset {dataset!r} is unknown; known: {', '.join(sorted(DATASETS))}")
    height = DATASETS.get(dataset).shape[1]
    if budget == "smoke":
        return dict(attn_resolutions=(height // 2,))
    if budget == "small":  # attention only in the middle block (7×7 / 8×8): at 14×14 it cost 30% of the time
        return dict(ch_mult=(1, 2, 2), attn_resolutions=())
    if height == 32:
        return dict(ch_mult=(1, 2, 2, 2) if budget == "paper" else (1, 2, 2), attn_resolutions=(16,))
    return dict(ch_mult=(1, 2, 2), attn_resolutions=(height // 2,))


def build_config(*, preset: str, budget: str, dataset: str, overrides: dict, seed: int | None = None):
    from trainers.common.config import apply_overrides
    from trainers.diffusion.model import DiffusionConfig

    if preset not in PRESETS:
        raise GenevalInputError(f"diffusion: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    if budget not in BUDGETS:
        raise GenevalInputError(f"diffusion: unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
    fields = {**PRESETS[preset], **BUDGETS[budget], **resolution_defaults(dataset, budget)}
    base = DiffusionConfig(preset=preset, budget=budget, dataset=dataset, seed=0 if seed is None else seed, **fields)
    base.validate()
    return apply_overrides(base, overrides, what="diffusion config")


class DiffusionFamily(Family):
    name = "diffusion"
    eval_options = (
        EvalOption("sampler", str, None, label="Sampler", protocol=", sampler {}",
                   help="ddpm (ancestral, Ho et al. Algorithm 2; strided when S < T) or ddim (Song et al. 2021); "
                        "none: the run's eval_sampler", choices=("ddpm", "ddim")),
        EvalOption("sampling_steps", int, None, label="S", protocol=", S = {} steps",
                   help="number of sampling steps S (1 … T); none: the run's eval_sampling_steps (or T)", minimum=1),
        EvalOption("eta", float, None, label="η", protocol=", η = {}",
                   help="DDIM's η (0: deterministic, 1: DDPM-like noise); none: the run's eval_eta", minimum=0.0),
        EvalOption("num_samples", int, None, label="Samples", protocol=", {} scored",
                   help="number of samples drawn and scored (the protocol's sample count); none: the run's "
                        "eval_samples", minimum=2),
    )
    recorded_metrics: ClassVar[tuple[RecordedMetric, ...]] = LikelihoodFamily.recorded_metrics + (
        RecordedMetric("sampling_s_per_1000", "s / 1000 samples", False),
    )
    protocol_keys = LikelihoodFamily.protocol_keys + (
        ProtocolKey("likelihood_estimator", footer=" ({})", label="bound estimator"),
    )
    labels: ClassVar[dict[str, str]] = {"likelihood.kind": "Kind", "schedule": "Schedule", "loss": "Loss",
                                        "model_var": "Σ", "ch": "Ch.", "timesteps": "T", "steps": "Steps",
                                        "sampling.s_per_1000": "s / 1000 (run's sampler)"}
    record_keys = ("likelihood.kind", "sampling.s_per_1000")
    selection_keys = ("eval_metrics",)

    def config_class(self, preset: str | None = None):
        from trainers.diffusion.model import DiffusionConfig

        if preset is not None and preset not in PRESETS:
            raise GenevalInputError(f"diffusion: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        return DiffusionConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        return build_config(preset=preset, budget=budget, dataset=dataset, overrides=overrides, seed=seed)

    def protocol_overrides(self, evaluation: dict) -> dict:
        from trainers.common.evaluation import sampler_protocol_overrides

        return sampler_protocol_overrides(evaluation)

    def switches(self, config) -> dict:
        keys = ("schedule", "loss", "model_var", "ch", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout",
                "timesteps", "steps", "batch_size", "ema_decay", "conditional")
        return {k: getattr(config, k) for k in keys}

    def train(self, config, *, out: str, budget: str, device: str = "cpu") -> dict:
        from trainers.diffusion.train import train

        return train(config, out=out, resume=True, device=device)

    def sampler(self, run_dir, *, which: str = "final"):
        from trainers.diffusion.train import load_run, make_sampler

        cfg, model, diffusion, _ = load_run(run_dir, which=which)
        return make_sampler(cfg, model, diffusion)

    def likelihood_model(self, run_dir):
        from pathlib import Path

        from trainers.common.checkpoint import load_checkpoint
        from trainers.diffusion.train import load_likelihood_model

        path = Path(run_dir) / "checkpoint.pt"
        if not path.is_file():
            raise GenevalInputError(f"{path} does not exist; expected a diffusion run folder")
        return load_likelihood_model(load_checkpoint(path))

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, sampler: str | None = None, sampling_steps: int | None = None,
                 eta: float | None = None, num_samples: int | None = None) -> tuple[dict, dict]:
        """Re-score the run's EMA checkpoint with another sampler / S / η / sample count (same sample seeds)."""
        from trainers.diffusion.train import evaluate_run

        return evaluate_run(run_dir, which=which, metrics=metrics, ci=ci, ci_resamples=ci_resamples,
                            sampler=sampler, sampling_steps=sampling_steps, eta=eta, num_samples=num_samples)


DIFFUSION = DiffusionFamily()
