"""What every likelihood family (autoregressive models, VAEs, and the explicit-density families to come) tells
the leaderboards (the ``geneval.family`` contract), over the shared loop of ``likelihood_training``.

Its records carry the test likelihood (``test_nats``, ``test_bits_per_dim``) beside the sample metrics; two
likelihoods compare only when they were measured on the same test split (``likelihood_split``, which for
binarised MNIST names the fixed binarisation too). A subclass names the module that holds its ``SPECS`` (model
name → ``likelihood_training.Spec``), its config class and ``make_config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from geneval.errors import GenevalInputError
from geneval.family import Family, ProtocolKey, RecordedMetric

_SPLIT = ("likelihood_split",)


class LikelihoodFamily(Family):
    recorded_metrics: ClassVar[tuple[RecordedMetric, ...]] = (
        RecordedMetric("test_bits_per_dim", "bits/dim", False, protocol=_SPLIT),
        RecordedMetric("test_nats", "NLL (nats)", False, protocol=_SPLIT),
    )
    protocol_keys = (ProtocolKey("likelihood_split", footer="; likelihood on `{}`", label="test split"),)
    labels: ClassVar[dict[str, str]] = {"likelihood.kind": "Kind", "published.nats": "Published (nats)",
                                        "published.bits_per_dim": "Published (bits/dim)",
                                        "sampling.seconds": "100 samples (s)", "steps": "Steps",
                                        "sampling.s_per_1000": "s / 1000 samples"}
    record_keys = ("likelihood.kind", "published.nats", "published.bits_per_dim", "sampling.seconds",
                   "sampling.s_per_1000")

    def module(self):
        """The family's module: ``SPECS``, ``make_config`` and ``load_likelihood_model``."""
        raise NotImplementedError

    def config(self) -> type:
        """The family's config dataclass."""
        raise NotImplementedError

    def spec(self, preset: str):
        specs = self.module().SPECS
        if preset not in specs:
            raise GenevalInputError(f"{self.name}: unknown model (preset) {preset!r}; known: {', '.join(specs)}")
        return specs[preset]

    def config_class(self, preset: str | None = None):
        if preset is not None:
            self.spec(preset)
        return self.config()

    def protocol_overrides(self, evaluation: dict) -> dict:
        mapping = {"num_samples": "num_samples", "features": "sample_features"}
        return {mapping[k]: v for k, v in evaluation.items() if k in mapping}

    def train(self, config, *, out: str, budget: str, device: str = "cpu") -> dict:
        from trainers.common.likelihood_training import train

        return train(self.spec(getattr(config, "model", self.name)), config, out=out, budget=budget, resume=True,
                     device=device)

    def likelihood_model(self, run_dir):
        """The run's final model as a ``geneval.likelihood`` model (its kind: exact, iwae-K, ...)."""
        from trainers.common.checkpoint import load_checkpoint

        path = Path(run_dir) / "checkpoint.pt"
        if not path.is_file():
            raise GenevalInputError(f"{path} does not exist; expected a finished {self.name} run folder")
        return self.module().load_likelihood_model(load_checkpoint(path))

    def sampler(self, run_dir, *, which: str = "final"):
        if which != "final":
            raise GenevalInputError(f"{self.name}: runs keep their final checkpoint only, not {which!r}")
        return ModelSampler(self.likelihood_model(run_dir))

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, **options) -> tuple[dict, dict]:
        """Re-draw the run's ``num_samples`` samples (its sample seeds) with the evaluation-time ``options`` and
        score them with the run's protocol (``likelihood_training.score_samples``); the likelihood metrics are
        the record's (sampling options do not change the density)."""
        import json

        from trainers.common.likelihood_training import SAMPLE, TrainingData, score_samples
        from trainers.common.seeding import derived_seed

        if not self.eval_options:
            return super().evaluate(run_dir, config=config, which=which, metrics=metrics, ci=ci,
                                    ci_resamples=ci_resamples, **options)
        if ci:
            raise GenevalInputError(f"{self.name}: no bootstrap interval for re-scored samples")
        record = json.loads((Path(run_dir) / "record.json").read_text())
        seed = derived_seed(config.seed, SAMPLE)
        samples = self.sampler(run_dir, which=which)(config.num_samples, seed, **options)
        data = TrainingData(config.dataset, seed=config.seed, train_num=2)
        scores, protocol = score_samples(samples, config, data)
        values = {k: v for k, v in record["metrics"][which].items() if k not in scores}
        values.update({k: v for k, v in scores.items() if k in metrics or not metrics})
        protocol.update({**{o.name: options.get(o.name) for o in self.eval_options}, "sample_seed": seed})
        return values, protocol


class ModelSampler:
    """``sample(num, seed, labels=None, **options) -> uint8 [N, C, H, W]`` of a likelihood model; sample ``i`` is
    drawn from its own generator, so it is the same in any batch. ``options`` are the family's evaluation-time
    options (a flow's temperature), passed to the model's ``sample`` when set."""

    def __init__(self, adapter):
        self.model, self.binary = adapter.model, adapter.convention.levels == 2

    @torch.inference_mode()
    def sample(self, num: int, seed: int, labels=None, **options) -> torch.Tensor:
        options = {k: v for k, v in options.items() if v is not None}
        x = self.model.sample(num, seed=seed, first=0, labels=labels, **options)
        return (x * 255).to(torch.uint8) if self.binary else x.to(torch.uint8)

    __call__ = sample
