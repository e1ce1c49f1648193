"""Pix2Pix under the ``geneval.family`` contract (one recipe, ``preset = "pix2pix"``; the spec's ``dataset`` is the
paired task). Its records carry geneval's paired metrics (``l1``, ``psnr``, ``ssim`` of each test output against its
target; ``target_agreement``) beside FID / precision / recall of the outputs and the domain classifier's agreement
with the targets' labels — all registered sample metrics, so no family-specific metric is declared.

A translator has no unconditional sampler (``sample(num, seed)`` has no input to translate), so the family
answers ``sampler`` with the contract's error and re-scores through ``evaluate``: the option ``test_dropout``
(the paper keeps dropout at test time, §3.1) re-translates the test inputs with dropout off."""

from __future__ import annotations

from typing import ClassVar

from geneval.errors import GenevalInputError
from geneval.family import EvalOption, Family, ProtocolKey


class Pix2PixFamily(Family):
    name = "pix2pix"
    eval_options = (EvalOption("test_dropout", bool, None, "Test dropout",
                               "dropout at test time (the paper's noise source; none = true)",
                               protocol=", test-time dropout = {}"),)
    protocol_keys = (ProtocolKey("targets", footer="; outputs of the test inputs vs their targets `{}`",
                                 label="targets"),
                     ProtocolKey("pairs", footer=" ({} pairs)", label="pairs"))
    labels: ClassVar[dict[str, str]] = {"loss": "Loss", "skips": "U-Net", "patch": "Patch", "lambda_l1": "λ",
                                        "params.generator": "G params", "steps": "Steps"}
    record_keys = ("params.generator",)

    def config_class(self, preset: str | None = None):
        from trainers.pix2pix.train import Pix2PixConfig

        self._check_preset(preset)
        return Pix2PixConfig

    def _check_preset(self, preset):
        if preset not in (None, "pix2pix"):
            raise GenevalInputError(f"pix2pix: unknown preset {preset!r}; known: pix2pix")

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        from trainers.pix2pix.train import make_config

        self._check_preset(preset)
        return make_config(budget=budget, task=dataset, overrides={**overrides, "seed": str(seed)})

    def protocol_overrides(self, evaluation: dict) -> dict:
        mapping = {"features": "sample_features", "num_samples": "eval_num"}
        return {mapping[k]: v for k, v in evaluation.items() if k in mapping}

    def train(self, config, *, out: str, budget: str, device: str = "cpu") -> dict:
        from trainers.pix2pix.train import train

        return train(config, out=out, budget=budget, resume=True, device=device)

    def evaluate(self, run_dir, *, config, which: str, metrics: tuple[str, ...], ci: float | None = None,
                 ci_resamples: int = 100, test_dropout: bool | None = None) -> tuple[dict, dict]:
        from trainers.pix2pix.train import evaluate, load_generator

        if which != "final" or ci:
            raise GenevalInputError(f"{self.name}: re-scoring covers the final checkpoint without bootstrap")
        model, _ = load_generator(run_dir)
        values, protocol, _ = evaluate(model, config, dropout=test_dropout is not False)
        return {k: v for k, v in values.items() if k in metrics or not metrics}, protocol


PIX2PIX = Pix2PixFamily()
