"""The one place where pixel values change type: float images → uint8, and uint8 batch checks.

Samples cross every boundary of geneval as uint8 ``[B, C, H, W]`` tensors, i.e. the same bytes a PNG would
hold. A model's float output is quantised here and nowhere else, so that scoring a folder of PNGs and scoring
the model's tensors directly give the same number.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from geneval.errors import GenevalInputError

log = logging.getLogger(__name__)

VALUE_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}


def parse_value_range(value_range: str | tuple[float, float] | None) -> tuple[float, float] | None:
    """Accept ``"[0,1]"``, ``"0,1"``, ``"-1,1"``, ``(0, 1)``… and return a float pair (or None)."""
    if value_range is None:
        return None
    if isinstance(value_range, str):
        key = value_range.strip().strip("[]()").replace(" ", "")
        if key not in VALUE_RANGES:
            raise GenevalInputError(
                f"value range {value_range!r} is not supported; expected one of [0,1], [-1,1], [0,255]"
            )
        return VALUE_RANGES[key]
    low, high = (float(v) for v in value_range)
    if (low, high) not in VALUE_RANGES.values():
        raise GenevalInputError(
            f"value range {value_range!r} is not supported; expected one of [0,1], [-1,1], [0,255]"
        )
    return low, high


def quantize_to_uint8(
    images: torch.Tensor | np.ndarray,
    value_range: str | tuple[float, float] | None,
    *,
    what: str = "images",
) -> torch.Tensor:
    """Map float images in a declared range to uint8 by round-half-up, as torchvision's ``save_image``.

    ``x ↦ floor((x − low) / (high − low) · 255 + 0.5)``, clamped to [0, 255]. A float array without a
    declared range is an error: guessing [0,1] vs [-1,1] silently changes every metric.
    """
    tensor = torch.as_tensor(images)
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.dtype == torch.bool or not (tensor.is_floating_point() or _is_integer(tensor)):
        raise GenevalInputError(f"{what}: dtype {tensor.dtype} is not an image type; expected uint8 or float")
    if _is_integer(tensor):
        if value_range is None and tensor.numel() and (tensor.min() < 0 or tensor.max() > 255):
            raise GenevalInputError(
                f"{what}: integer values span [{int(tensor.min())}, {int(tensor.max())}]; expected 0..255"
            )
        if value_range is None:
            return tensor.to(torch.uint8)
        tensor = tensor.to(torch.float64)
    rng = parse_value_range(value_range)
    if rng is None:
        raise GenevalInputError(
            f"{what}: float values need a declared range (value_range='[0,1]' or '[-1,1]', "
            "CLI --range); geneval does not guess it"
        )
    tensor = tensor.to(torch.float64)
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise GenevalInputError(f"{what}: {bad} NaN or infinite values; expected finite pixel values")
    low, high = rng
    slack = 1e-3 * (high - low)
    if tensor.numel() and (tensor.min() < low - slack or tensor.max() > high + slack):
        log.warning(
            "%s: values span [%.4g, %.4g], outside the declared range [%g, %g]; clipping",
            what, float(tensor.min()), float(tensor.max()), low, high,
        )
    scaled = (tensor - low) * (255.0 / (high - low))
    return torch.floor(scaled + 0.5).clamp_(0, 255).to(torch.uint8)


def _is_integer(tensor: torch.Tensor) -> bool:
    return tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32)


def check_batch(images: torch.Tensor, *, what: str = "batch") -> torch.Tensor:
    """Check the uint8 ``[B, C, H, W]`` contract with C in {1, 3}; return the tensor unchanged."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise GenevalInputError(f"{what}: expected a uint8 tensor, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GenevalInputError(f"{what}: expected shape [B, C, H, W] with C = 1 or 3, got {list(images.shape)}")
    return images
