"""Pix2Pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"), scaled to
28×28 / 32×32 images. Reference implementation: junyanz/pytorch-CycleGAN-and-pix2pix (``models/networks.py``:
``UnetSkipConnectionBlock``, ``NLayerDiscriminator``, ``PixelDiscriminator``).

    generator      U-Net: ``num_down`` 4×4 stride-2 convolutions (LeakyReLU 0.2, norm after the first), a 3×3
                   bottleneck, then as many 4×4 stride-2 transposed convolutions (ReLU, norm), each fed the
                   encoder's map of the same size (skip connections, §3.1); tanh output. ``skips = False`` is the
                   paper's plain encoder–decoder. Dropout 0.5 in every decoder layer but the last, at training
                   and test time: the only noise source (§3.1 — z was ignored by the generator)
    discriminator  PatchGAN (§3.2): a fully convolutional net scoring every patch of a given receptive field as
                   real or fake, the image's score the mean over patches. The paper's receptive fields on 256×256
                   images (1, 16, 70, 286 pixels: "PixelGAN", 16×16, 70×70, "ImageGAN") become 1, 4, 10 and the
                   whole image here (fractions of the side 0.004 / 0.06 / 0.27 / > 1 there, 0.04 / 0.14 / 0.36 / 1
                   at 28 pixels). Conditional (cGAN): it sees the input beside the output; unconditional (GAN): the
                   output alone

Dropout at test time is drawn per image from its own generator (``sample_masks``), so output i depends only on
(input i, seed, i), never on the batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainers.common.seeding import generator

PATCHES = ("1", "4", "10", "image")
NORMS = ("batch", "instance")
DROPOUT = 0.5


def norm_layer(kind: str, channels: int) -> nn.Module:
    # Instance norm without affine parameters, as the reference code's default for it; batch norm with them.
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels)


class UNet(nn.Module):
    def __init__(self, *, in_channels: int, out_channels: int, ngf: int = 32, num_down: int = 2,
                 skips: bool = True, norm: str = "batch"):
        super().__init__()
        self.skips, self.num_down = skips, num_down
        widths = [ngf * min(2**i, 8) for i in range(num_down)]  # C64-C128-C256-C512-... of the paper, ×ngf/64
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            conv = nn.Conv2d(in_channels if i == 0 else widths[i - 1], width, 4, stride=2, padding=1)
            self.down.append(conv if i == 0 else nn.Sequential(conv, norm_layer(norm, width)))
        self.bottleneck = nn.Sequential(nn.Conv2d(widths[-1], widths[-1], 3, padding=1), norm_layer(norm, widths[-1]))
        self.up = nn.ModuleList()
        for i in reversed(range(num_down)):
            incoming = widths[i] * (2 if skips else 1)  # the map from below, plus the encoder's map of this size
            if i == 0:
                self.up.append(nn.ConvTranspose2d(incoming, out_channels, 4, stride=2, padding=1))
            else:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(incoming, widths[i - 1], 4, stride=2, padding=1),
                                             norm_layer(norm, widths[i - 1])))

    def dropout_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """The shapes ``[C, H, W]`` of the maps dropout acts on (every decoder output but the last)."""
        shapes = []
        for i, layer in enumerate(self.up[:-1]):
            size = 2 ** (self.num_down - 1 - i)
            shapes.append((layer[0].out_channels, height // size, width // size))
        return shapes

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """x in [−1, 1] → output in [−1, 1]. ``masks``: test-time dropout masks (``sample_masks``); without them,
        dropout draws from the global RNG (training)."""
        features = []
        h = x
        for i, layer in enumerate(self.down):
            h = layer(h if i == 0 else F.leaky_relu(h, 0.2))
            features.append(h)
        h = self.bottleneck(F.leaky_relu(h, 0.2))
        for i, layer in enumerate(self.up):
            skip = features[self.num_down - 1 - i]
            h = layer(F.relu(torch.cat([h, skip], 1) if self.skips else h))
            if i < len(self.up) - 1:
                h = h * masks[i] if masks is not None else F.dropout(h, DROPOUT, training=True)
        return torch.tanh(h)


def sample_masks(model: UNet, shape: tuple[int, int, int], *, seed: int, first: int, num: int) -> list[torch.Tensor]:
    """Per-image dropout masks (scaled by 1 / (1 − p), as F.dropout): image j's from ``generator(seed, first + j)``."""
    shapes = model.dropout_shapes(shape[1], shape[2])
    per_image = []
    for j in range(num):
        g = generator(seed, first + j)
        per_image.append([(torch.rand(s, generator=g) >= DROPOUT).float() / (1.0 - DROPOUT) for s in shapes])
    return [torch.stack([masks[k] for masks in per_image]) for k in range(len(shapes))]


class PatchGAN(nn.Module):
    """Scores ``[B, 1, h, w]`` (logits), one per patch of the receptive field ``patch``."""

    def __init__(self, *, in_channels: int, ndf: int = 32, patch: str = "10", norm: str = "batch",
                 image_size: tuple[int, int] = (28, 28)):
        super().__init__()
        if patch not in PATCHES:
            raise ValueError(f"patch {patch!r} is not one of {', '.join(PATCHES)}")
        self.patch = patch
        layers: list[nn.Module] = []
        if patch == "1":  # PixelGAN: 1×1 convolutions only (the reference's PixelDiscriminator)
            layers += [nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2),
                       nn.Conv2d(ndf, 2 * ndf, 1), norm_layer(norm, 2 * ndf), nn.LeakyReLU(0.2)]
        else:  # 4×4 stride-2 convolutions: receptive field 4 after one, 10 after two
            layers += [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            if patch in ("10", "image"):
                layers += [nn.Conv2d(ndf, 2 * ndf, 4, stride=2, padding=1), norm_layer(norm, 2 * ndf), nn.LeakyReLU(0.2)]
            else:
                layers += [nn.Conv2d(ndf, 2 * ndf, 1), norm_layer(norm, 2 * ndf), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        if patch == "image":  # ImageGAN: one score from the whole map
            side = (image_size[0] // 4, image_size[1] // 4)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * ndf * side[0] * side[1], 1))
        else:
            self.head = nn.Conv2d(2 * ndf, 1, 1)

    def forward(self, y: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(torch.cat([x, y], 1) if x is not None else y)
        out = self.head(h)
        return out.view(len(y), 1, 1, 1) if self.patch == "image" else out


def receptive_field(model: PatchGAN, shape: tuple[int, int, int], conditional: bool) -> int:
    """The side of the input square that one output score depends on, measured by autograd (for the tests)."""
    c, h, w = shape
    y = torch.zeros(1, c, h, w, requires_grad=True)
    x = torch.zeros(1, (model.body[0].in_channels - c), h, w) if conditional else None
    model.eval()
    out = model(y, x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], y)
    rows = torch.nonzero(grad.abs().sum((0, 1, 3)) > 0).flatten()
    return int(rows.max() - rows.min() + 1)
