"""PNG grids of uint8 images, for a person to look at what was scored."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from geneval.atomic import write_bytes_atomic
from geneval.images import check_batch


def image_grid(images: torch.Tensor | np.ndarray, *, ncols: int = 10, padding: int = 2, scale: int = 1) -> Image.Image:
    """Tile uint8 ``[N, C, H, W]`` images row-major into one RGB image, with white padding between tiles."""
    batch = check_batch(torch.as_tensor(images), what="grid images")
    if batch.shape[1] == 1:
        batch = batch.repeat(1, 3, 1, 1)
    n, _, h, w = batch.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding, 3), 255, np.uint8)
    for i, image in enumerate(batch.permute(0, 2, 3, 1).numpy()):
        top, left = padding + (i // ncols) * (h + padding), padding + (i % ncols) * (w + padding)
        canvas[top : top + h, left : left + w] = image
    grid = Image.fromarray(canvas)
    if scale != 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    return grid


def save_grid(path, images, *, ncols: int = 10, padding: int = 2, scale: int = 1):
    """Write ``image_grid(...)`` as a PNG, atomically."""
    buffer = io.BytesIO()
    image_grid(images, ncols=ncols, padding=padding, scale=scale).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())
