"""The autoregressive family (FVSBN, NADE, MADE, PixelCNN, Gated PixelCNN, PixelCNN++, Row LSTM, Diagonal BiLSTM) under the ``geneval.family``
contract: ``preset`` names the model, ``budget`` its size and length (``trainers/autoregressive/train.py``)."""

from __future__ import annotations

from typing import ClassVar

from trainers.common.likelihood_family import LikelihoodFamily


class AutoregressiveFamily(LikelihoodFamily):
    name = "autoregressive"
    labels: ClassVar[dict[str, str]] = {**LikelihoodFamily.labels, "num_layers": "Layers", "channels": "Channels",
                                        "hidden": "Hidden", "rank": "Rank", "num_masks": "Masks",
                                        "filters": "Filters", "nr_resnet": "ResNet blocks", "num_mix": "Mixture",
                                        "ema_decay": "EMA decay"}

    def module(self):
        from trainers.autoregressive import train

        return train

    def config(self) -> type:
        return self.module().AutoregressiveConfig

    def config_class(self, preset: str | None = None):
        """PixelCNN++ and the PixelRNNs have their own config dataclasses; the others share AutoregressiveConfig."""
        if preset is None:
            return self.config()
        self.spec(preset)
        return self.module().CONFIGS[preset]

    def resolve(self, *, preset: str, budget: str, dataset: str, overrides: dict, seed: int):
        self.spec(preset)
        return self.module().make_config(preset, budget=budget, dataset=dataset, overrides={**overrides, "seed": seed})


AUTOREGRESSIVE = AutoregressiveFamily()
