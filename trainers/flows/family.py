"""The flows family (NICE, RealNVP, Glow) under the ``geneval.family`` contract: ``preset`` names the flow,
``budget`` its size and length (``trainers/flows/train.py``); the evaluation-time option ``temperature`` re-samples
a finished run with latents z ~ N(0, T²) (logistic of scale T for NICE) and re-scores the samples with the run's
own sample seeds and protocol, so only T differs between rows (``LikelihoodFamily.evaluate``)."""

from __future__ import annotations

from typing import ClassVar

from geneval.family import EvalOption
from trainers.common.likelihood_family import LikelihoodFamily


class FlowsFamily(LikelihoodFamily):
    name = "flows"
    eval_options = (EvalOption("temperature", float, None, "T",
                               "sampling temperature: latents ~ N(0, T²) (NICE: logistic of scale T); none = 1.0",
                               protocol=", temperature T = {}", above=0.0),)
    labels: ClassVar[dict[str, str]] = {**LikelihoodFamily.labels, "published.bits_per_dim": "Published (bits/dim)",
                                        "hidden": "Hidden", "depth": "K", "num_levels": "Levels",
                                        "num_couplings": "Couplings", "norm": "Norm", "lu": "LU"}
    record_keys = (*LikelihoodFamily.record_keys, "published.bits_per_dim")

    def module(self):
        from trainers.flows import train

        return train

    def config(self) -> type:
        return self.module().FlowsConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self.spec(preset)
        return self.module().make_config(preset, budget=budget, dataset=dataset, overrides={**overrides, "seed": seed})


FLOWS = FlowsFamily()
