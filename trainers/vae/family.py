"""The VAE family under the ``geneval.family`` contract (one model, ``preset = "vae"``). Its records carry the
test ELBO beside the IWAE bound they report as the likelihood (``trainers/vae/train.py``)."""

from __future__ import annotations

from typing import ClassVar

from geneval.family import RecordedMetric
from trainers.common.likelihood_family import LikelihoodFamily


class VAEFamily(LikelihoodFamily):
    name = "vae"
    recorded_metrics: ClassVar[tuple[RecordedMetric, ...]] = LikelihoodFamily.recorded_metrics + (
        RecordedMetric("test_elbo_bits_per_dim", "ELBO bits/dim", False, protocol=("likelihood_split",)),
        RecordedMetric("test_elbo_nats", "−ELBO (nats)", False, protocol=("likelihood_split",)),
    )
    labels: ClassVar[dict[str, str]] = {**LikelihoodFamily.labels, "latent_dim": "Latent", "hidden": "Hidden",
                                        "iwae_k": "IWAE K"}

    def module(self):
        from trainers.vae import train

        return train

    def config(self) -> type:
        return self.module().VAEConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self.spec(preset)
        return self.module().make_config(budget=budget, dataset=dataset, overrides={**overrides, "seed": seed})


VAE = VAEFamily()
