"""The flows family (NICE, RealNVP, Glow) under the ``geneval.family`` contract: ``preset`` names the flow,
``budget`` its size and length (``trainers/flows/train.py``); the evaluation-time option ``temperature`` re-samples
a finished run with latents z ~ N(0, T²) (logistic of scale T for NICE) and re-scores the samples with the run's
own sample seeds and protocol, so only T differs between rows (``LikelihoodFamily.evaluate``); the option
``dequantization_samples`` re-computes a finished run's test likelihood as the importance-weighted bound over K
draws of the dequantisation noise (Flow++'s evaluation), a tighter bound than the one-draw ELBO the papers report."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from geneval.errors import GenevalInputError
from geneval.family import EvalOption
from trainers.common.runs import module_device
from trainers.common.likelihood_family import LikelihoodFamily


class FlowsFamily(LikelihoodFamily):
    name = "flows"
    eval_options = (EvalOption("temperature", float, None, "T",
                               "sampling temperature: latents ~ N(0, T²) (NICE: logistic of scale T); none = 1.0",
                               protocol=", temperature T = {}", above=0.0),
                    EvalOption("dequantization_samples", int, None, "u draws",
                               "test likelihood as the importance-weighted dequantisation bound over K draws of u "
                               "per image (iwae-K with q(u | x) uniform); none = 1 draw, the published protocol",
                               protocol=", test likelihood from K = {} draws of the dequantisation noise", minimum=1))
    labels: ClassVar[dict[str, str]] = {**LikelihoodFamily.labels, "published.bits_per_dim": "Published (bits/dim)",
                                        "hidden": "Hidden", "depth": "K", "num_levels": "Levels",
                                        "num_couplings": "Couplings", "norm": "Norm", "lu": "LU"}
    record_keys = (*LikelihoodFamily.record_keys, "published.bits_per_dim")

    def module(self):
        from trainers.flows import train

        return train

    def config(self) -> type:
        return self.module().FlowsConfig

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, dequantization_samples: int | None = None, **options) -> tuple[dict, dict]:
        """As ``LikelihoodFamily.evaluate`` (re-drawn samples at the row's temperature); with
        ``dequantization_samples = K`` the test likelihood is re-computed as the importance-weighted bound (the
        samples are the record's when no sampling option is set: the density, hence every sample, is unchanged)."""
        import json

        if options.get("temperature") is not None or not dequantization_samples:
            values, protocol = super().evaluate(run_dir, config=config, which=which, metrics=metrics, ci=ci,
                                                ci_resamples=ci_resamples, **options)
        else:
            if ci:
                raise GenevalInputError(f"{self.name}: no bootstrap interval for re-scored runs")
            record = json.loads((Path(run_dir) / "record.json").read_text())
            values, protocol = dict(record["metrics"][which]), {o.name: options.get(o.name) for o in self.eval_options}
        protocol["dequantization_samples"] = dequantization_samples
        if dequantization_samples:
            values.update(self.importance_weighted_likelihood(run_dir, config, dequantization_samples))
        return values, protocol

    def importance_weighted_likelihood(self, run_dir, config, k: int) -> dict:
        """``test_nats`` / ``test_bits_per_dim`` of the run's final weights over its test split (``eval_num``),
        as the record's likelihood metrics are, but from K draws of u per image."""
        from geneval.likelihood import evaluate
        from trainers.common.likelihood_training import likelihood_metrics

        adapter = self.likelihood_model(run_dir)
        kind = f"iwae-{k}"
        result = evaluate(_ImportanceWeighted(adapter, k, kind), adapter.default_split, num=config.eval_num,
                          batch_size=config.eval_batch_size)
        return likelihood_metrics(result, kind)

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self.spec(preset)
        return self.module().make_config(preset, budget=budget, dataset=dataset, overrides={**overrides, "seed": seed})


class _ImportanceWeighted:
    """A flow's ``LikelihoodModel`` scoring each image with K draws of the dequantisation noise."""

    def __init__(self, adapter, k: int, kind: str):
        self.adapter, self.k, self.kind, self.convention = adapter, k, kind, adapter.convention

    def log_prob(self, x_uint8, labels=None):
        model = self.adapter.model
        with torch.inference_mode():
            return model.log_prob(x_uint8.to(module_device(model)), dequantization_samples=self.k).double().cpu()


FLOWS = FlowsFamily()
