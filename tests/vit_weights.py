"""Random state dicts with an official key layout for the ViT extractors (DINOv2, CLIP): the real files are
0.3–1.2 GB downloads. Default initialisations would not do: DINOv2's LayerScale starts at 1e-5, so every image
would give nearly the same CLS token. Here every matrix is N(0, 1/fan_in), vectors are small, norms and layer
scales near 1 — features then differ between images as a trained network's do."""

from __future__ import annotations

import torch


@torch.no_grad()
def randomise_(module: torch.nn.Module, *, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma" or (leaf == "weight" and tensor.ndim == 1):  # LayerScale, LayerNorm scale
            tensor.copy_(0.6 + 0.8 * torch.rand(tensor.shape, generator=gen))
        elif tensor.ndim == 1 or leaf == "bias":
            tensor.copy_(0.02 * torch.randn(tensor.shape, generator=gen))
        elif tensor.ndim >= 2 and ("weight" in leaf or leaf == "proj"):
            fan_in = tensor[0].numel() if leaf != "proj" else tensor.shape[0]
            tensor.copy_(torch.randn(tensor.shape, generator=gen) / fan_in**0.5)
        else:  # class token, position embeddings
            tensor.copy_(0.5 * torch.randn(tensor.shape, generator=gen))
    return module
