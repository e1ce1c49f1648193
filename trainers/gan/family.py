"""The GAN family as the leaderboards and ``geneval`` reach it (the ``geneval.family`` contract).

Registered under the ``geneval.trainers`` entry point ``gan``. Its one evaluation-time option is BigGAN's
truncation trick (Brock et al. 2019, §3.1): a row setting ``truncation = ψ`` re-scores the same checkpoints with
latents resampled until every coordinate lies within ±ψ, with the run's own sample seeds, so only the option
differs from the untruncated numbers.
"""

from __future__ import annotations

from typing import ClassVar

from geneval.family import EvalOption, Family


class GanFamily(Family):
    name = "gan"
    eval_options = (
        EvalOption("truncation", float, None, label="Truncation", protocol=", truncation ψ = {}",
                   help="truncation threshold ψ of the latents (BigGAN §3.1); none: untruncated", above=0.0),
    )
    labels: ClassVar[dict[str, str]] = {
        "batch_size": "Batch", "width_mult": "Ch. ×", "params_m.generator": "G params (M)",
        "params_m.discriminator": "D params (M)", "shared_embedding": "Shared", "skip_z": "Skip-z",
        "ortho_reg": "Ortho.", "attention_res": "Attention at", "attention": "Attention", "attention_block": "Block",
        "ema": "EMA", "sn_g": "SN in G", "sn_d": "SN in D", "conditional": "Cond.",
        "sampling.s_per_1000": "s / 1000 samples",
    }
    selection_keys = ("eval_metrics",)  # which metrics a run reports, not how any of them is measured
    record_keys = ("sampling.s_per_1000",)  # the final checkpoint's eval_samples, timed

    def config_class(self, preset: str | None = None):
        from trainers.gan.config import GanConfig

        return GanConfig  # one config for every recipe: the recipes are presets of its switches

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        from trainers.gan.config import build_config

        return build_config(preset=preset, budget=budget, dataset=dataset, overrides=overrides, seed=seed)

    def protocol_overrides(self, evaluation: dict) -> dict:
        from trainers.common.evaluation import sampler_protocol_overrides

        return sampler_protocol_overrides(evaluation)

    def switches(self, config) -> dict:
        return config.switches()

    def train(self, config, *, out: str, budget: str, device: str = "cpu") -> dict:
        from trainers.gan.train import train

        return train(config, out=out, resume=True, device=device)

    def sampler(self, run_dir, *, which: str = "final"):
        from trainers.gan.sampler import GanSampler

        return GanSampler.from_run(run_dir, which=which)

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, truncation: float | None = None) -> tuple[dict, dict]:
        """Re-score checkpoint ``which`` on the test split with the run's own protocol, truncated and/or with a
        bootstrap interval; the samples use the run's sample seeds, so only the option differs."""
        from trainers.gan.evaluation import rescore

        sampler = self.sampler(run_dir, which=which)
        labels = sampler.labels_for(config.eval_samples)
        samples = sampler.sample(config.eval_samples, config.sample_seed, labels, truncation=truncation)
        values, protocol = rescore(samples, labels, config=config, metrics=metrics, ci=ci, ci_resamples=ci_resamples)
        protocol["truncation"] = truncation
        return values, protocol


GAN = GanFamily()


class PixelBaselineFamily(GanFamily):
    """The per-pixel Gaussian every GAN number is read against (``trainers/gan/baseline.py``): fitted to the
    training images a GAN run of the same config uses and scored with that run's report protocol. Its config
    is the DCGAN recipe's at the row's budget (only its data and protocol fields matter); nothing to re-score."""

    name = "baseline"
    eval_options = ()
    PRESETS = ("pixel-gaussian",)

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        from geneval.errors import GenevalInputError
        from trainers.gan.config import build_config

        if preset not in self.PRESETS:
            raise GenevalInputError(f"baseline: unknown preset {preset!r}; known: {', '.join(self.PRESETS)}")
        return build_config(preset="dcgan", budget=budget, dataset=dataset, overrides=overrides, seed=seed)

    def train(self, config, *, out: str, budget: str) -> dict:
        from trainers.gan.baseline import run_baseline

        return run_baseline(config, out=out)

    def sampler(self, run_dir, *, which: str = "final"):
        return Family.sampler(self, run_dir, which=which)

    def evaluate(self, run_dir, **options):
        return Family.evaluate(self, run_dir, **options)


BASELINE = PixelBaselineFamily()
