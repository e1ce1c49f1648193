"""PIL's bicubic resize of uint8 images, as the reference pipelines of FD-DINOv2 and CMMD compute it.

dgm-eval (``models/dinov2.py``) feeds each PIL image through torchvision's ``Resize((224, 224), BICUBIC)``,
which on a PIL image calls ``Image.resize`` (PIL's antialiased bicubic, rounded back to uint8), then
``ToTensor`` and ``Normalize``. The CMMD repository (``cmmd/io_util.py``) centre-crops each PIL image to a square
and resizes it to 336² with ``Image.BICUBIC`` before anything else. Both resizes run in PIL on uint8 pixels, so
this module calls PIL itself, image by image: the bytes are then the reference's bytes, not an approximation.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def resize_bicubic_pil(images: torch.Tensor, size: int, *, center_crop: bool = False) -> torch.Tensor:
    """uint8 ``[B, 1|3, H, W]`` → uint8 ``[B, 3, size, size]``: grayscale repeated, optional square centre crop
    (CMMD's ``_center_crop_and_resize``), then ``PIL.Image.resize((size, size), BICUBIC)``."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    out = []
    for image in images.permute(0, 2, 3, 1).cpu().numpy():
        pil = Image.fromarray(np.ascontiguousarray(image))
        if center_crop:
            width, height = pil.size
            side = min(width, height)
            top, left = (height - side) // 2, (width - side) // 2
            pil = pil.crop((left, top, left + side, top + side))
        out.append(np.asarray(pil.resize((size, size), resample=Image.BICUBIC)))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
