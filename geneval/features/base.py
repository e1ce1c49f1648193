"""What every feature extractor offers: named layers, a default layer per metric, preprocessing it owns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from geneval.errors import GenevalInputError
from geneval.registry import Registry


@dataclass(frozen=True)
class ExtractorInfo:
    """The provenance of features: enough to tell whether two sets of features are comparable."""

    name: str
    weights_sha256: str
    mode: str  # preprocessing mode, e.g. "tf" or "pytorch-fid"; "native" for domain nets
    layers: dict[str, int] = field(default_factory=dict)  # layer name -> feature dimension
    default_layers: dict[str, str] = field(default_factory=dict)  # metric -> layer, e.g. {"fid": "pool3"}

    def as_dict(self) -> dict:
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "mode": self.mode}


class FeatureExtractor(torch.nn.Module):
    """Base class. Subclasses implement ``features(images_uint8, layers)``.

    Input: uint8 ``[B, C, H, W]`` (C = 1 or 3; the extractor repeats grayscale to RGB if it needs RGB and
    resizes as its mode says). Output: ``{layer: float32 [B, D]}`` for the requested layers.
    """

    info: ExtractorInfo
    # Images per forward pass when the caller does not choose: large enough to keep oneDNN's kernels busy,
    # small enough for memory (Inception at 299² holds ~0.1 GB of activations per 32 images).
    batch_size: int = 64

    def features(self, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def default_layer(self, metric: str) -> str:
        try:
            return self.info.default_layers[metric]
        except KeyError:
            # A user's choice (e.g. --metrics modes with --features pixels): one line on the CLI, not a traceback.
            roles = ", ".join(sorted(self.info.default_layers))
            raise GenevalInputError(
                f"extractor {self.info.name!r} has no default layer for metric {metric!r} (it has: {roles}); "
                "choose another --features"
            ) from None


# name -> factory(*, mode: str | None, weights: str | None, device: str) -> FeatureExtractor
EXTRACTORS: Registry = Registry("feature extractor")
