"""How ``geneval leaderboard`` reaches the trainers: one plugin object per family, registered under the
``geneval.trainers`` entry point in ``pyproject.toml`` (geneval never imports ``trainers`` by name).

A plugin answers four questions for a leaderboard spec row:

* ``resolve(preset=, budget=, dataset=, overrides=, seed=)`` → the trainer's validated config object: the
  row's switches go through the trainer's own ``apply_overrides`` and ``validate()``, so an unknown switch
  or an incompatible combination fails here, before anything trains;
* ``protocol_overrides(evaluation)`` → the config keys that carry the spec's evaluation protocol (sample
  count, extractor, metrics) into the trainer's own end-of-run evaluation;
* ``train(config, out=)`` → trains (resuming ``out`` when it holds a checkpoint) and returns ``record.json``;
* ``evaluate(run_dir, which=, truncation=, ci=, ...)`` → re-scores a finished run with an evaluation-time
  option (BigGAN's truncation, a bootstrap interval) through geneval's public API.

Presets and budgets: ``preset`` names *what* is trained (a GAN recipe, or the likelihood model's name) and
``budget`` *how long and how big* (``smoke``/``small``/...; for the likelihood trainers this is their preset).
"""

from __future__ import annotations

import dataclasses

from geneval.errors import GenevalInputError


class GanPlugin:
    name = "gan"

    def config_class(self):
        from trainers.gan.config import GanConfig

        return GanConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        from trainers.gan.config import build_config

        return build_config(preset=preset, budget=budget, dataset=dataset, overrides=overrides, seed=seed)

    def protocol_overrides(self, evaluation: dict) -> dict:
        mapping = {"num_samples": "eval_samples", "features": "eval_features", "metrics": "eval_metrics",
                   "num_ref": "eval_num_ref"}
        out = {mapping[k]: v for k, v in evaluation.items() if k in mapping}
        if "metrics" in out or "eval_metrics" in out:
            out["eval_metrics"] = tuple(out["eval_metrics"])
        return out

    def switches(self, config) -> dict:
        return config.switches()

    def train(self, config, *, out: str, budget: str) -> dict:
        from trainers.gan.train import train

        return train(config, out=out, resume=True)

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], truncation: float | None = None,
                 ci: float | None = None, ci_resamples: int = 100) -> tuple[dict, dict]:
        """Re-score checkpoint ``which`` on the test split with the run's own protocol, truncated and/or with a
        bootstrap interval; the samples use the run's sample seeds, so only the option differs."""
        from trainers.gan import evaluation
        from trainers.gan.sampler import GanSampler

        sampler = GanSampler.from_run(run_dir, which=which)
        labels = sampler.labels_for(config.eval_samples)
        samples = sampler.sample(config.eval_samples, config.sample_seed, labels, truncation=truncation)
        keep, skipped = evaluation.available_metrics(config, metrics)
        from trainers.common.evaluation import evaluate_samples

        options = {"ci": ci, "ci_resamples": ci_resamples} if ci else {}
        values, protocol = evaluate_samples(samples, reference=f"{config.dataset}:test", metrics=keep,
                                            features=evaluation.extractor_name(config), labels=labels,
                                            num_ref=config.eval_num_ref or None,
                                            kid_subsets=100 if len(samples) >= 1000 else 10, **options)
        protocol.update({"sample_seed": config.sample_seed, "metrics_skipped": skipped, "truncation": truncation})
        return values, protocol


class LikelihoodPlugin:
    """The autoregressive models and the VAE share one training loop (trainers.common.likelihood_training)."""

    def __init__(self, family: str):
        self.name = family

    def _module(self):
        if self.name == "vae":
            from trainers.vae import train as module
        else:
            from trainers.autoregressive import train as module
        return module

    def _spec(self, model: str):
        specs = self._module().SPECS
        if model not in specs:
            raise GenevalInputError(f"{self.name}: unknown model (preset) {model!r}; known: {', '.join(specs)}")
        return specs[model]

    def config_class(self):
        module = self._module()
        return module.VAEConfig if self.name == "vae" else module.AutoregressiveConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self._spec(preset)
        overrides = {**overrides, "seed": seed}
        if self.name == "vae":
            return self._module().make_config(preset=budget, dataset=dataset, overrides=overrides)
        return self._module().make_config(preset, preset=budget, dataset=dataset, overrides=overrides)

    def protocol_overrides(self, evaluation: dict) -> dict:
        mapping = {"num_samples": "num_samples", "features": "sample_features"}
        return {mapping[k]: v for k, v in evaluation.items() if k in mapping}

    def switches(self, config) -> dict:
        return dataclasses.asdict(config)

    def train(self, config, *, out: str, budget: str) -> dict:
        from trainers.common.likelihood_training import train

        model = getattr(config, "model", "vae")
        return train(self._spec(model), config, out=out, preset=budget, resume=True)

    def evaluate(self, run_dir, **_):
        raise GenevalInputError(f"{self.name}: evaluation-time options (truncation, bootstrap CI) are not "
                                "supported for likelihood runs; their records' ± is the standard error")


GAN = GanPlugin()
AUTOREGRESSIVE = LikelihoodPlugin("autoregressive")
VAE = LikelihoodPlugin("vae")
