"""Small domain classifiers trained by geneval itself: ``fashion-mnist-cnn``, ``mnist-cnn``, ``cifar10-cnn``.

Inception-v3 features are a poor fit for 28×28 grayscale digits and clothes, so FID/KID/IS on MNIST-like data
are usually computed with a small classifier trained on the dataset. The networks are defined here, because
the installed package must rebuild them to load the shipped weights (``geneval/`` never imports
``trainers/``); ``trainers/classifiers/`` trains them and exports ``geneval/weights/<name>.pt`` (a state dict,
loaded with ``weights_only=True``) beside ``<name>.json`` (sha256, seed, epochs, test accuracy, the retrain
command, torch version, date).

Each network owns its preprocessing: it takes uint8 ``[B, C, H, W]`` and normalises
``(x / 255 − mean) / std`` with the mean/std stored in its state dict — exactly what training did.

Layers: ``embedding`` (the penultimate activations, after ReLU), ``logits`` and ``probs`` (softmax of logits).
FID, KID and PRDC use ``embedding``; IS uses ``logits`` and applies the softmax itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from geneval.errors import GenevalInputError
from geneval.features.allocator import keep_freed_memory_for_reuse
from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor
from geneval.features.fusion import fuse_for_inference

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
LAYERS = ("embedding", "logits", "probs")
DEFAULT_LAYERS = {"fid": "embedding", "kid": "embedding", "prdc": "embedding", "is": "logits", "modes": "logits"}


# --------------------------------------------------------------------------------------------- networks


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class Normalize(nn.Module):
    """uint8 → float ``(x / 255 − mean) / std``; mean and std are saved in the state dict with the weights."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float() / 255.0 - self.mean) / self.std


class Classifier(nn.Module):
    """``normalize → body → embedding (Linear/ReLU or pooled) → dropout → logits``; ``forward`` returns logits."""

    normalize: Normalize
    body: nn.Module  # uint8-normalised images -> flat [B, F]
    embed: nn.Module  # [B, F] -> [B, D]
    classifier: nn.Linear

    def embedding_and_logits(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(self.body(self.normalize(x_uint8)))
        return embedding, self.classifier(self.dropout(embedding))

    def forward(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return self.embedding_and_logits(x_uint8)[1]


class SmallCNN(Classifier):
    """28×28 grayscale: conv32 ↓ conv64 ↓ conv128 conv128 ↓ → 1152 → 256 (embedding) → 10. ~0.54 M parameters."""

    def __init__(self, *, mean: float, std: float, num_classes: int = 10, embedding_dim: int = 256,
                 dropout: float = 0.3):
        super().__init__()
        self.normalize = Normalize((mean,), (std,))
        self.body = nn.Sequential(
            *_conv_bn_relu(1, 32), nn.MaxPool2d(2),  # 14×14
            *_conv_bn_relu(32, 64), nn.MaxPool2d(2),  # 7×7
            *_conv_bn_relu(64, 128), *_conv_bn_relu(128, 128), nn.MaxPool2d(2),  # 3×3
            nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(128 * 3 * 3, embedding_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embedding_dim, num_classes)


class Residual(nn.Module):
    """``x + (conv-bn-relu)²(x)``: the residual unit of the ResNet-9 design below."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(channels, channels), *_conv_bn_relu(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SmallResNet(Classifier):
    """32×32 RGB: a narrow ResNet-9 in the layout of Page's DAWNBench CIFAR-10 network (2018).

    prep conv w0 → conv w1, pool, residual(w1) → conv w2, pool → conv w3, pool, residual(w3) → global max
    pool → embedding (``w3``-d, non-negative) → logits. Default widths (32, 48, 96, 192): ~0.93 M parameters.
    """

    def __init__(self, *, mean: tuple[float, float, float], std: tuple[float, float, float],
                 widths: tuple[int, int, int, int] = (32, 48, 96, 192), num_classes: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.normalize = Normalize(mean, std)
        self.body = nn.Sequential(
            *_conv_bn_relu(3, w0),
            *_conv_bn_relu(w0, w1), nn.MaxPool2d(2), Residual(w1),  # 16×16
            *_conv_bn_relu(w1, w2), nn.MaxPool2d(2),  # 8×8
            *_conv_bn_relu(w2, w3), nn.MaxPool2d(2), Residual(w3),  # 4×4
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.embed = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(w3, num_classes)


# --------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class DomainNet:
    """What geneval knows about one shipped classifier before its weights exist."""

    name: str
    dataset: str
    input_shape: tuple[int, int, int]  # C, H, W
    build: Callable[[], Classifier]
    target_accuracy: float  # on the real test split, fraction
    train_command: str

    @property
    def embedding_dim(self) -> int:
        return self.build().classifier.in_features


def _train_command(dataset: str, name: str) -> str:
    run = f"runs/classifiers/{dataset}"
    return (f"python -m trainers.classifiers.train --dataset {dataset} --out {run} --resume && "
            f"python -m trainers.classifiers.export --run {run} --name {name}")


NETS: dict[str, DomainNet] = {
    net.name: net
    for net in (
        DomainNet("fashion-mnist-cnn", "fashion-mnist", (1, 28, 28),
                  lambda: SmallCNN(mean=0.2860, std=0.3530), 0.93,
                  _train_command("fashion-mnist", "fashion-mnist-cnn")),
        DomainNet("mnist-cnn", "mnist", (1, 28, 28),
                  lambda: SmallCNN(mean=0.1307, std=0.3081), 0.993,
                  _train_command("mnist", "mnist-cnn")),
        DomainNet("cifar10-cnn", "cifar10", (3, 32, 32),
                  lambda: SmallResNet(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)), 0.85,
                  _train_command("cifar10", "cifar10-cnn")),
    )
}


# --------------------------------------------------------------------------------------------- weights


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_metadata(name: str, weights: str | Path | None = None) -> dict | None:
    """The ``<name>.json`` beside the weights (shipped or explicit), or None if there is none."""
    path = _weights_path(name, weights).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else None


def _weights_path(name: str, weights: str | Path | None) -> Path:
    return Path(weights).expanduser() if weights is not None else WEIGHTS_DIR / f"{name}.pt"


def load_classifier(name: str, weights: str | Path | None = None) -> tuple[Classifier, str]:
    """Build the network ``name`` and load its weights; return ``(net in eval mode, sha256 of the file)``.

    The file's sha256 must equal the one in the ``.json`` beside it, when there is one (always for the shipped
    weights).
    """
    spec = NETS[name]
    path = _weights_path(name, weights)
    if not path.is_file():
        if weights is None:
            raise GenevalInputError(
                f"weights for {name!r} are not shipped yet ({path} is missing); train and export them with: "
                f"{spec.train_command}"
            )
        raise GenevalInputError(f"{path}: weights file for {name!r} does not exist")
    sha256 = file_sha256(path)
    meta = load_metadata(name, weights)
    if meta is None:
        if weights is None:
            raise GenevalInputError(f"{path.with_suffix('.json')} is missing: shipped weights need their metadata")
        log.warning("%s has no .json beside it; its sha256 %s is recorded but not checked", path, sha256)
    elif meta.get("sha256") != sha256:
        raise GenevalInputError(
            f"{path}: sha256 {sha256} does not match {meta.get('sha256')} recorded in {path.with_suffix('.json')}"
        )
    net = spec.build()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:  # unpickling or key/shape mismatch: the file is not this network's state dict
        raise GenevalInputError(f"{path}: not a state dict of {name!r} ({type(exc).__name__}: {exc})") from None
    return net.eval(), sha256


# --------------------------------------------------------------------------------------------- extractor


class DomainExtractor(FeatureExtractor):
    """Features of a geneval-trained classifier. Outputs are float32 on the extractor's device."""

    batch_size = 500  # small 28×28 / 32×32 networks: large batches amortise per-call overhead

    def __init__(self, spec: DomainNet, net: Classifier, sha256: str, device: str | torch.device = "cpu"):
        super().__init__()
        self.spec = spec
        self.device = torch.device(device)
        self.net = fuse_for_inference(net).to(self.device).eval()
        if self.device.type == "cpu":  # oneDNN runs these small convs about twice as fast in NHWC
            self.net = self.net.to(memory_format=torch.channels_last)
            keep_freed_memory_for_reuse()  # batch-500 activations of 25–100 MB: +27–42% images/s measured
        dim = net.classifier.in_features
        classes = net.classifier.out_features
        self.info = ExtractorInfo(
            name=spec.name, weights_sha256=sha256, mode="native",
            layers={"embedding": dim, "logits": classes, "probs": classes},
            default_layers=dict(DEFAULT_LAYERS),
        )

    def prepare(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Check a uint8 ``[B, C, H, W]`` batch against the network's input and match its channels."""
        x = torch.as_tensor(images)
        c, h, w = self.spec.input_shape
        if x.dtype != torch.uint8:
            raise GenevalInputError(
                f"{self.spec.name}: images have dtype {x.dtype}; expected uint8 (quantise floats with "
                "geneval.images.quantize_to_uint8)"
            )
        if x.ndim != 4:
            raise GenevalInputError(f"{self.spec.name}: images have shape {tuple(x.shape)}; expected [B, C, H, W]")
        if tuple(x.shape[2:]) != (h, w):
            raise GenevalInputError(
                f"{self.spec.name}: images are {x.shape[2]}×{x.shape[3]}; this extractor expects {h}×{w} "
                f"({self.spec.dataset}) and does not resize"
            )
        if x.shape[1] == c:
            return x
        if c == 3 and x.shape[1] == 1:
            return x.expand(-1, 3, -1, -1)
        if c == 1 and x.shape[1] == 3:
            if bool((x[:, 1:] == x[:, :1]).all()):
                return x[:, :1]
            raise GenevalInputError(
                f"{self.spec.name}: images have 3 different channels; this grayscale network takes 1 channel "
                "(or 3 equal ones)"
            )
        raise GenevalInputError(f"{self.spec.name}: images have {x.shape[1]} channels; expected {c}")

    def features(self, images: torch.Tensor, layers: tuple[str, ...] = ("embedding",)) -> dict[str, torch.Tensor]:
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown:
            raise GenevalInputError(f"{self.spec.name}: unknown layer(s) {unknown}; known: {', '.join(LAYERS)}")
        x = self.prepare(images).to(self.device)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            embedding, logits = self.net.embedding_and_logits(x)
            out = {"embedding": embedding, "logits": logits}
            if "probs" in layers:
                out["probs"] = torch.softmax(logits.double(), dim=1).float()
        return {layer: out[layer].float().contiguous() for layer in layers}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images, ("embedding",))["embedding"]


def build(name: str, *, mode: str | None = None, weights: str | Path | None = None,
          device: str = "cpu") -> DomainExtractor:
    """Load the classifier ``name`` (``weights``: explicit ``.pt`` path, default the shipped file)."""
    if name not in NETS:
        raise GenevalInputError(f"unknown domain network {name!r}; known: {', '.join(sorted(NETS))}")
    if mode not in (None, "native"):
        raise GenevalInputError(f"{name}: mode {mode!r} is not supported; domain networks have only 'native'")
    net, sha256 = load_classifier(name, weights)
    return DomainExtractor(NETS[name], net, sha256, device)


def _register(name: str) -> None:
    def factory(*, mode: str | None = None, weights: str | None = None, device: str = "cpu") -> DomainExtractor:
        return build(name, mode=mode, weights=weights, device=device)

    factory.__doc__ = f"Feature extractor {name!r}: the geneval-trained {NETS[name].dataset} classifier."
    EXTRACTORS.register(name)(factory)


for _name in NETS:
    _register(_name)
