"""The VQ-VAE family under the ``geneval.family`` contract (one model, ``preset = "vqvae"``). Its records carry the
bound's two terms, the uniform-prior bound the paper reports, reconstruction error and codebook use beside the
likelihood and sample metrics (``trainers/vqvae/train.py``); the evaluation-time option ``pixel_noise`` re-samples
a finished run drawing pixels from p(x | z) instead of taking the decoder's mean (``LikelihoodFamily.evaluate``)."""

from __future__ import annotations

from typing import ClassVar

from geneval.family import EvalOption, RecordedMetric
from trainers.common.likelihood_family import LikelihoodFamily

_SPLIT = ("likelihood_split",)


class VQVAEFamily(LikelihoodFamily):
    name = "vqvae"
    eval_options = (EvalOption("pixel_noise", bool, None, "Pixel noise",
                               "samples drawn from p(x | z) (true) instead of the decoder's mean image (none/false)",
                               protocol=", pixel noise = {}"),)
    recorded_metrics: ClassVar[tuple[RecordedMetric, ...]] = LikelihoodFamily.recorded_metrics + (
        RecordedMetric("test_recon_bits_per_dim", "−log p(x|z) bits/dim", False, protocol=_SPLIT),
        RecordedMetric("test_prior_bits_per_dim", "−log p(z) bits/dim", False, protocol=_SPLIT),
        RecordedMetric("test_uniform_bits_per_dim", "bits/dim (uniform prior)", False, protocol=_SPLIT),
        RecordedMetric("test_mse", "MSE", False, protocol=_SPLIT),
        RecordedMetric("test_psnr", "PSNR (dB)", True, protocol=_SPLIT),
        RecordedMetric("codebook_usage", "Codes used", True, protocol=_SPLIT),
        RecordedMetric("codebook_perplexity", "Code perplexity", True, protocol=_SPLIT),
    )
    labels: ClassVar[dict[str, str]] = {**LikelihoodFamily.labels, "published.bits_per_dim": "Published (bits/dim)",
                                        "num_codes": "K", "code_dim": "Code dim", "codebook_update": "Codebook",
                                        "hidden": "Hidden", "prior_steps": "Prior steps"}
    record_keys = (*LikelihoodFamily.record_keys, "published.bits_per_dim")

    def module(self):
        from trainers.vqvae import train

        return train

    def config(self) -> type:
        return self.module().VQVAEConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self.spec(preset)
        return self.module().make_config(preset, budget=budget, dataset=dataset, overrides={**overrides, "seed": seed})


VQVAE = VQVAEFamily()
