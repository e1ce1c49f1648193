"""``pixels``: raw pixel values as features (x / 255, flattened). No weights, no preprocessing.

Useful for pixel-space nearest neighbours (memorisation checks) and for exercising the pipeline where no
trained network is wanted. Its dimension is C·H·W of the input, so ``layers`` reports -1 (input-dependent).
"""

from __future__ import annotations

import torch

from geneval.errors import GenevalInputError
from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor
from geneval.images import check_batch


class PixelFeatures(FeatureExtractor):
    def __init__(self):
        super().__init__()
        self.info = ExtractorInfo(
            name="pixels",
            weights_sha256="none",
            mode="native",
            layers={"pixels": -1},
            default_layers={"fid": "pixels", "kid": "pixels", "prdc": "pixels"},
        )

    def features(self, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        check_batch(images, what="pixels extractor input")
        flat = images.reshape(len(images), -1).float() / 255.0
        return {layer: flat for layer in layers}


@EXTRACTORS.register("pixels")
def build(*, mode: str | None = None, weights: str | None = None, device: str = "cpu") -> PixelFeatures:
    if weights is not None:
        raise GenevalInputError(f"--weights {weights}: the pixels extractor has no weights (drop --weights)")
    return PixelFeatures()
