"""The flows family (NICE, RealNVP, Glow) under the ``geneval.family`` contract: ``preset`` names the flow,
``budget`` its size and length (``trainers/flows/train.py``); the evaluation-time option ``temperature`` re-samples
a finished run with latents z ~ N(0, T²) (logistic of scale T for NICE) and re-scores the samples with the run's
own sample seeds and protocol, so only T differs between rows."""

from __future__ import annotations

from typing import ClassVar

import torch

from geneval.errors import GenevalInputError
from geneval.family import EvalOption
from trainers.common.likelihood_family import LikelihoodFamily


class FlowSampler:
    """``sample(num, seed, labels=None, temperature=None) -> uint8 [N, C, H, W]``; sample i from its own generator."""

    def __init__(self, adapter):
        self.model = adapter.model

    @torch.inference_mode()
    def sample(self, num: int, seed: int, labels=None, temperature: float | None = None) -> torch.Tensor:
        return self.model.sample(num, seed=seed, first=0, temperature=temperature)

    __call__ = sample


class FlowsFamily(LikelihoodFamily):
    name = "flows"
    eval_options = (EvalOption("temperature", float, None, "T",
                               "sampling temperature: latents ~ N(0, T²) (NICE: logistic of scale T); none = 1.0",
                               protocol=", temperature T = {}"),)
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

    def sampler(self, run_dir, *, which: str = "final"):
        if which != "final":
            raise GenevalInputError(f"{self.name}: runs keep their final checkpoint only, not {which!r}")
        return FlowSampler(self.likelihood_model(run_dir))

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, temperature: float | None = None) -> tuple[dict, dict]:
        """Re-draw the run's ``num_samples`` samples (its sample seeds) at ``temperature`` and score them with the
        run's protocol (``likelihood_training.score_samples``); the likelihood metrics are the record's (T does
        not change the density)."""
        import json
        from pathlib import Path

        from trainers.common.likelihood_training import SAMPLE, TrainingData, score_samples
        from trainers.common.seeding import derived_seed

        if ci:
            raise GenevalInputError(f"{self.name}: no bootstrap interval for re-scored samples")
        record = json.loads((Path(run_dir) / "record.json").read_text())
        samples = self.sampler(run_dir, which=which)(config.num_samples, derived_seed(config.seed, SAMPLE),
                                                     temperature=temperature)
        data = TrainingData(config.dataset, seed=config.seed, train_num=2)
        scores, protocol = score_samples(samples, config, data)
        values = {k: v for k, v in record["metrics"][which].items() if k not in scores}
        values.update({k: v for k, v in scores.items() if k in metrics or not metrics})
        protocol.update({"temperature": temperature, "sample_seed": derived_seed(config.seed, SAMPLE)})
        return values, protocol


FLOWS = FlowsFamily()
