"""Bilinear resizing exactly as TensorFlow 1.x ``tf.image.resize_bilinear`` computes it.

The FID of Heusel et al. (TTUR) feeds images through the 2015-12-05 Inception graph, whose first op is a
``ResizeBilinear`` with ``align_corners=False`` and *no* half-pixel centres (the TF1 default). Output pixel
``i`` samples input coordinate ``i · (in / out)`` — not ``(i + ½) · (in / out) − ½`` as PyTorch's
``F.interpolate(..., align_corners=False)`` does — so the two resizes give visibly different images and
different FIDs. This module reproduces TF1's kernel (``tensorflow/core/kernels/resize_bilinear_op.cc`` and
``image_resizer_state.h``) operation for operation in float32:

- ``scale = float(in) / out`` (float32), ``src = float(i) * scale`` (float32);
- ``lower = floor(src)``, ``upper = min(ceil(src), in − 1)``, ``lerp = src − floor(src)``;
- ``top = tl + (tr − tl) · x_lerp``, ``bottom = bl + (br − bl) · x_lerp``, ``out = top + (bottom − top) · y_lerp``.

The horizontal lerp is done once per *input* row and the vertical lerp then combines two of those rows; this
is the same arithmetic as TF's per-output-pixel formula (``top`` and ``bottom`` are exactly the horizontally
interpolated input rows), so the result is identical, and it is much cheaper when upsampling 32 → 299.
"""

from __future__ import annotations

import torch


def _source_grid(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower index, upper index, lerp weight) of every output position along one axis, as TF1 computes them."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)  # TF: static_cast<float>(in) / out
    src = torch.arange(out_size, dtype=torch.float32) * scale  # TF: static_cast<float>(i) * scale
    floor = torch.floor(src)
    lower = floor.to(torch.int64).clamp_(0, in_size - 1)
    upper = torch.ceil(src).to(torch.int64).clamp_(0, in_size - 1)
    lerp = src - floor
    return lower.to(device), upper.to(device), lerp.to(device)


def resize_bilinear_tf1(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float ``[B, C, H, W]`` to ``size = (height, width)`` like TF1 ``resize_bilinear(align_corners=False)``."""
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"expected a float [B, C, H, W] tensor, got {images.dtype} {list(images.shape)}")
    out_h, out_w = size
    in_h, in_w = images.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return images  # scale 1: every source coordinate is an integer and every lerp is 0
    x_lo, x_hi, x_lerp = _source_grid(in_w, out_w, images.device)
    y_lo, y_hi, y_lerp = _source_grid(in_h, out_h, images.device)
    x_lerp = x_lerp.to(images.dtype)
    y_lerp = y_lerp.to(images.dtype).view(-1, 1)
    left = images.index_select(3, x_lo)
    rows = left + (images.index_select(3, x_hi) - left) * x_lerp  # [B, C, in_h, out_w]: TF's top/bottom rows
    top = rows.index_select(2, y_lo)
    return top + (rows.index_select(2, y_hi) - top) * y_lerp
