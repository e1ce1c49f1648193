"""ProGAN / StyleGAN under the ``geneval.family`` contract (entry point ``stylegan``).

Presets are the rows of StyleGAN's Table 1 (``progan`` = ``stylegan-a`` … ``stylegan-f``, cumulative); every
ingredient is also a config switch, so a spec's rows can extend one another. Two evaluation-time options re-score
the same checkpoints: ``truncation`` ψ in W toward the tracked w̄ (StyleGAN §3.3; none = 1, untruncated) and
``truncation_cutoff``, the first layer left untruncated (none: every layer; the paper's coarse-only variant uses a
small cut-off). The samples use the run's own sample seeds, so only the option differs.
"""

from __future__ import annotations

from typing import ClassVar

from geneval.family import EvalOption, Family


class StyleGanFamily(Family):
    name = "stylegan"
    eval_options = (
        EvalOption("truncation", float, None, label="ψ", protocol=", truncation ψ = {}",
                   help="truncation ψ in W toward the tracked mean w̄, in [0, 1] (StyleGAN §3.3); none: 1",
                   minimum=0.0, maximum=1.0),
        EvalOption("truncation_cutoff", int, None, label="ψ cut-off", protocol=", ψ on layers < {}",
                   help="truncate only the styles of layers before this one (coarse layers); none: every layer",
                   minimum=1),
    )
    labels: ClassVar[dict[str, str]] = {
        "bilinear": "Bilinear", "mapping": "Mapping", "styles": "AdaIN styles", "const_input": "Const. input",
        "noise_inputs": "Noise", "mixing": "Mixing", "mixing_prob": "Mixing p", "loss": "Loss",
        "resolutions": "Growing", "params_m.generator": "G params (M)", "params_m.discriminator": "D params (M)",
        "kimg": "kimg", "channels": "Channels", "sampling.s_per_1000": "s / 1000 samples",
    }
    record_keys = ("kimg", "sampling.s_per_1000")
    selection_keys = ("eval_metrics",)

    def config_class(self, preset: str | None = None):
        from trainers.stylegan.config import StyleGanConfig

        return StyleGanConfig  # one config for every recipe: the recipes are presets of its switches

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        from trainers.stylegan.config import build_config

        return build_config(preset=preset, budget=budget, dataset=dataset, overrides=overrides, seed=seed)

    def protocol_overrides(self, evaluation: dict) -> dict:
        from trainers.common.evaluation import sampler_protocol_overrides

        return sampler_protocol_overrides(evaluation)

    def switches(self, config) -> dict:
        return config.switches()

    def train(self, config, *, out: str, budget: str, device: str = "cpu") -> dict:
        from trainers.stylegan.train import train

        return train(config, out=out, resume=True, device=device)

    def sampler(self, run_dir, *, which: str = "final"):
        from trainers.stylegan.sampler import StyleGanSampler

        return StyleGanSampler.from_run(run_dir, which=which)

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, truncation: float | None = None,
                 truncation_cutoff: int | None = None) -> tuple[dict, dict]:
        """Re-score checkpoint ``which`` on the test split with the run's protocol and sample seeds, truncated."""
        from trainers.gan.evaluation import rescore

        sampler = self.sampler(run_dir, which=which)
        samples = sampler.sample(config.eval_samples, config.sample_seed, truncation=truncation,
                                 truncation_cutoff=truncation_cutoff)
        values, protocol = rescore(samples, None, config=config, metrics=metrics, ci=ci, ci_resamples=ci_resamples)
        protocol.update({"truncation": truncation, "truncation_cutoff": truncation_cutoff})
        return values, protocol


STYLEGAN = StyleGanFamily()
