"""The autoregressive family (FVSBN, NADE, MADE, PixelCNN, Gated PixelCNN) under the ``geneval.family``
contract: ``preset`` names the model, ``budget`` its size and length (``trainers/autoregressive/train.py``)."""

from __future__ import annotations

from typing import ClassVar

from trainers.common.likelihood_family import LikelihoodFamily


class AutoregressiveFamily(LikelihoodFamily):
    name = "autoregressive"
    labels: ClassVar[dict[str, str]] = {**LikelihoodFamily.labels, "num_layers": "Layers", "channels": "Channels",
                                        "hidden": "Hidden", "rank": "Rank", "num_masks": "Masks"}

    def module(self):
        from trainers.autoregressive import train

        return train

    def config(self) -> type:
        return self.module().AutoregressiveConfig

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self.spec(preset)
        return self.module().make_config(preset, budget=budget, dataset=dataset, overrides={**overrides, "seed": seed})


AUTOREGRESSIVE = AutoregressiveFamily()
