"""``stacked-mnist-cnn``: the ``mnist-cnn`` classifier applied to each channel of a stacked-MNIST image.

Stacked-MNIST puts three MNIST digits in the R, G, B channels (1000 modes, label ``100·d0 + 10·d1 + d2``). This
extractor classifies every channel with the shipped ``mnist-cnn`` and offers:

- ``logits``: the 1000 joint log-probabilities log p(d0) + log p(d1) + log p(d2) (channels treated as independent),
  ordered like the dataset's labels; their argmax is the per-channel argmaxes combined, i.e. the predicted mode.
  Mode counting (``geneval.metrics.modes``) and IS read this layer.
- ``channel_logits``: the three channels' 10 logits, concatenated ``[B, 30]``.
- ``embedding``: the three 256-d embeddings concatenated ``[B, 768]`` (FID/KID/PRDC).
"""

from __future__ import annotations

import torch

from geneval.errors import GenevalInputError
from geneval.features import domain
from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor

NAME = "stacked-mnist-cnn"
LAYERS = ("embedding", "logits", "channel_logits")
DEFAULT_LAYERS = {"fid": "embedding", "kid": "embedding", "prdc": "embedding", "is": "logits", "modes": "logits"}


class StackedMnistExtractor(FeatureExtractor):
    def __init__(self, digits: domain.DomainExtractor):
        super().__init__()
        self.digits = digits
        dim = digits.info.layers["embedding"]
        self.info = ExtractorInfo(
            name=NAME, weights_sha256=digits.info.weights_sha256, mode="native",
            layers={"embedding": 3 * dim, "logits": 1000, "channel_logits": 30}, default_layers=dict(DEFAULT_LAYERS),
        )

    def features(self, images: torch.Tensor, layers: tuple[str, ...] = ("logits",)) -> dict[str, torch.Tensor]:
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown:
            raise GenevalInputError(f"{NAME}: unknown layer(s) {unknown}; known: {', '.join(LAYERS)}")
        x = torch.as_tensor(images)
        if x.ndim != 4 or x.shape[1] != 3:
            raise GenevalInputError(f"{NAME}: images have shape {tuple(x.shape)}; expected [B, 3, 28, 28] (one digit per channel)")
        b = len(x)
        per_channel = x.reshape(b * 3, 1, *x.shape[2:])  # channel c of image i is row 3i + c
        out = self.digits.features(per_channel, ("embedding", "logits"))
        logits = out["logits"].double().reshape(b, 3, 10)
        log_p = torch.log_softmax(logits, dim=2)
        joint = log_p[:, 0, :, None, None] + log_p[:, 1, None, :, None] + log_p[:, 2, None, None, :]
        result = {
            "embedding": out["embedding"].reshape(b, -1),
            "logits": joint.reshape(b, 1000).float(),
            "channel_logits": out["logits"].reshape(b, 30),
        }
        return {layer: result[layer].contiguous() for layer in layers}


@EXTRACTORS.register(NAME)
def build(*, mode: str | None = None, weights: str | None = None, device: str = "cpu") -> StackedMnistExtractor:
    """``weights``: an explicit ``mnist-cnn`` state dict (default: the shipped one)."""
    return StackedMnistExtractor(domain.build("mnist-cnn", mode=mode, weights=weights, device=device))
