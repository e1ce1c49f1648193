"""Training data from geneval's named datasets, as uint8 tensors, plus the float views models train on."""

from __future__ import annotations

import torch

from geneval.datasets import open_dataset


def load_split(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """uint8 ``[N, C, H, W]``, int64 labels ``[N]`` and the dataset info (with its fingerprint)."""
    images, labels, info = open_dataset(dataset, split)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy()).long(), info


def to_signed_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 → float32 in [-1, 1] (``x / 127.5 − 1``), the usual GAN/diffusion input range."""
    return x_uint8.float() / 127.5 - 1.0


def binarize(x_uint8: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binarised MNIST. With a generator: dynamic binarisation (each pixel ~ Bernoulli(x / 255), fresh draws
    every time, as in pytorch-generative and the NADE/MADE papers); without: a fixed threshold at 127.5."""
    p = x_uint8.float() / 255.0
    if generator is None:
        return (p > 0.5).float()
    return torch.bernoulli(p, generator=generator)
