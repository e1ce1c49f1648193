"""ProGAN's growing generator and discriminator (Karras et al. 2018) and StyleGAN's style-based generator
(Karras et al. 2019), one code path with a switch per row of StyleGAN's Table 1:

    A  ProGAN: z (pixel-normed) → dense → 7×7 → [up, conv, conv] × levels, pixel norm after every conv
    B  + "bilinear" resampling (binomial blur after every upsampling / before every downsampling)
    C  + mapping network z → w (``mapping_layers`` dense layers, 100× smaller learning rate) and AdaIN styles
    D  + learned constant 7×7 input instead of dense(w)
    E  + per-layer noise inputs with learned per-channel scales
    F  + style-mixing regularisation (a training-time choice of the styles, in ``train.py``)

Resolutions: ``start`` × 2^level for level = 0 … levels − 1: 7 → 14 → 28 for 28×28 data, 8 → 16 → 32 for
32×32.
Each level has two convolutions, so the generator has ``2 · levels`` style inputs ("layers", coarse to fine).

Growing (ProGAN §3, Fig. 2): at level k with fade-in ``alpha`` the generator's image is
``(1 − α) · up_nearest(toRGB_{k−1}(h_{k−1})) + α · toRGB_k(block_k(h_{k−1}))`` and the discriminator reads
``(1 − α) · fromRGB_{k−1}(avgpool(x)) + α · block_k(fromRGB_k(x))``. Every block exists from the start (the
unused ones get no gradient), so parameter names and the optimisers never change shape.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainers.stylegan.layers import (EqualizedConv2d, EqualizedLinear, LayerEpilogue, downsample, lrelu,
                                      minibatch_stddev, pixel_norm, upsample)


class MappingNetwork(nn.Module):
    """StyleGAN's mapping network f: Z → W (§2, ``G_mapping``): pixel-normed z through ``depth`` equalised dense
    layers with leaky ReLU, each at ``lr_mul`` (0.01) of the synthesis network's learning rate."""

    def __init__(self, z_dim: int, w_dim: int, *, depth: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * depth
        self.layers = nn.ModuleList(EqualizedLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims, dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class SynthesisBlock(nn.Module):
    """One resolution of the generator: (upsample →) conv 3×3 → epilogue → conv 3×3 → epilogue."""

    def __init__(self, in_ch: int, out_ch: int, *, w_dim: int, noise: bool, styles: bool, resample: str):
        super().__init__()
        self.resample = resample
        self.conv0 = EqualizedConv2d(in_ch, out_ch, 3, bias=False)
        self.epi0 = LayerEpilogue(out_ch, w_dim=w_dim, noise=noise, styles=styles)
        self.conv1 = EqualizedConv2d(out_ch, out_ch, 3, bias=False)
        self.epi1 = LayerEpilogue(out_ch, w_dim=w_dim, noise=noise, styles=styles)

    def forward(self, x: torch.Tensor, ws: torch.Tensor, noise: list) -> torch.Tensor:
        x = upsample(x, self.resample)
        x = self.epi0(self.conv0(x), ws[:, 0], noise[0])
        return self.epi1(self.conv1(x), ws[:, 1], noise[1])


class Generator(nn.Module):
    """``forward(ws, level=, alpha=, noise=)``: images in [-1, 1] (not clamped) at ``start · 2^level`` pixels.

    ``ws`` is ``[N, num_layers, w_dim]``, one style per layer (``styles(z)`` broadcasts one w; style mixing and
    truncation edit it per layer). Without a mapping network (A, B) w is the pixel-normed z and only layer 0
    reads it, through the dense input layer. ``noise``: one ``[N, 1, H, W]`` tensor per layer (``noise_shapes``),
    or None for no noise. ``w_avg`` is the tracked mean of w (truncation's centre, StyleGAN §3.3, ``dlatent_avg``)."""

    def __init__(self, *, channels: int, out_channels: int, start: int, levels: int, z_dim: int,
                 mapping_layers: int, mapping_lr_mul: float, const_input: bool, noise_inputs: bool, resample: str):
        super().__init__()
        self.start, self.levels, self.z_dim, self.w_dim = start, levels, z_dim, z_dim
        self.num_layers, self.channels = 2 * levels, channels
        self.noise_inputs, self.const_input = noise_inputs, const_input
        styles = mapping_layers > 0
        self.mapping = MappingNetwork(z_dim, z_dim, depth=mapping_layers, lr_mul=mapping_lr_mul) if styles else None
        self.register_buffer("w_avg", torch.zeros(z_dim))
        if const_input:  # StyleGAN config D: a learned 7×7 tensor starts the synthesis (initialised to ones)
            self.const = nn.Parameter(torch.ones(1, channels, start, start))
        else:  # ProGAN: a dense layer (gain √2/4, "to match the official ProGAN") from the latent to 7×7 maps
            self.dense = EqualizedLinear(z_dim, channels * start * start, gain=2 ** 0.5 / 4, bias=False)
        self.epi_in = LayerEpilogue(channels, w_dim=z_dim, noise=noise_inputs, styles=styles)
        self.conv_in = EqualizedConv2d(channels, channels, 3, bias=False)
        self.epi_conv = LayerEpilogue(channels, w_dim=z_dim, noise=noise_inputs, styles=styles)
        self.blocks = nn.ModuleList(SynthesisBlock(channels, channels, w_dim=z_dim, noise=noise_inputs, styles=styles,
                                                   resample=resample) for _ in range(1, levels))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(channels, out_channels, 1, gain=1.0) for _ in range(levels))

    # ----------------------------------------------------------------------------------------------- latents
    def styles(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, num_layers, w_dim]``: w = mapping(z) (or the pixel-normed z) for every layer."""
        w = self.mapping(z) if self.mapping is not None else pixel_norm(z)
        return w.unsqueeze(1).repeat(1, self.num_layers, 1)

    def truncate(self, ws: torch.Tensor, psi: float | None, cutoff: int | None = None) -> torch.Tensor:
        """The truncation trick in W (StyleGAN §3.3, eq. 2): ``w' = w̄ + ψ (w − w̄)`` on layers < ``cutoff``
        (all layers when None; the paper's coarse-only variant uses the first few, ``truncation_cutoff``)."""
        if psi is None or psi == 1.0:
            return ws
        layers = torch.arange(self.num_layers) < (self.num_layers if cutoff is None else cutoff)
        coefs = torch.where(layers, torch.tensor(float(psi)), torch.tensor(1.0)).view(1, -1, 1)
        return self.w_avg + coefs * (ws - self.w_avg)

    def resolution(self, level: int) -> int:
        return self.start * 2 ** level

    def noise_shapes(self, level: int) -> list[tuple[int, int, int]]:
        """The noise image shape of every layer up to ``level`` (two per level)."""
        return [(1, self.resolution(k), self.resolution(k)) for k in range(level + 1) for _ in range(2)]

    # ----------------------------------------------------------------------------------------------- synthesis
    def features(self, ws: torch.Tensor, *, level: int, noise: list | None = None, lower: bool = False):
        """Feature maps after block ``level`` (and, with ``lower``, those after block ``level − 1`` too)."""
        noise = noise if noise is not None else [None] * (2 * (level + 1))
        if self.const_input:
            x = self.const.expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.dense(ws[:, 0]).view(ws.shape[0], self.channels, self.start, self.start)
        x = self.epi_in(x, ws[:, 0], noise[0])
        x = self.epi_conv(self.conv_in(x), ws[:, 1], noise[1])
        previous = None
        for k in range(1, level + 1):
            previous = x
            x = self.blocks[k - 1](x, ws[:, 2 * k:2 * k + 2], noise[2 * k:2 * k + 2])
        return (x, previous) if lower else x

    def forward(self, ws: torch.Tensor, *, level: int, alpha: float = 1.0, noise: list | None = None) -> torch.Tensor:
        x, previous = self.features(ws, level=level, noise=noise, lower=True)
        image = self.to_rgb[level](x)
        if level > 0 and alpha < 1.0:  # fade-in (ProGAN Fig. 2): the new block's image blended over the old one
            old = F.interpolate(self.to_rgb[level - 1](previous), scale_factor=2, mode="nearest")
            image = torch.lerp(old, image, alpha)
        return image


class Discriminator(nn.Module):
    """ProGAN's discriminator (Table 2): fromRGB (1×1) at the current resolution, [conv 3×3, conv 3×3,
    downsample] per level, then minibatch stddev → conv 3×3 → dense → dense to one score at the start
    resolution."""

    def __init__(self, *, channels: int, in_channels: int, start: int, levels: int, resample: str,
                 mbstd_group: int):
        super().__init__()
        self.resample, self.mbstd_group = resample, mbstd_group
        self.from_rgb = nn.ModuleList(EqualizedConv2d(in_channels, channels, 1) for _ in range(levels))
        self.blocks = nn.ModuleList(nn.ModuleList([EqualizedConv2d(channels, channels, 3),
                                                   EqualizedConv2d(channels, channels, 3)]) for _ in range(1, levels))
        self.final_conv = EqualizedConv2d(channels + 1, channels, 3)
        self.final_dense = EqualizedLinear(channels * start * start, channels)
        self.out = EqualizedLinear(channels, 1, gain=1.0)

    def block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        conv0, conv1 = self.blocks[k - 1]
        return downsample(lrelu(conv1(lrelu(conv0(x)))), self.resample)

    def forward(self, images: torch.Tensor, *, level: int, alpha: float = 1.0) -> torch.Tensor:
        x = lrelu(self.from_rgb[level](images))
        if level > 0:
            x = self.block(level, x)
            if alpha < 1.0:  # fade-in: the old fromRGB reads the image at half resolution
                old = lrelu(self.from_rgb[level - 1](F.avg_pool2d(images, 2)))
                x = torch.lerp(old, x, alpha)
        for k in range(level - 1, 0, -1):
            x = self.block(k, x)
        x = lrelu(self.final_conv(minibatch_stddev(x, group_size=self.mbstd_group)))
        return self.out(lrelu(self.final_dense(x.flatten(1)))).squeeze(1)


def build_models(cfg) -> tuple[Generator, Discriminator]:
    c = cfg.shape[0]
    G = Generator(channels=cfg.channels, out_channels=c, start=cfg.start, levels=cfg.levels, z_dim=cfg.z_dim,
                  mapping_layers=cfg.mapping_layers, mapping_lr_mul=cfg.mapping_lr_mul, const_input=cfg.const_input,
                  noise_inputs=cfg.noise_inputs, resample=cfg.resample)
    D = Discriminator(channels=cfg.channels, in_channels=c, start=cfg.start, levels=cfg.levels, resample=cfg.resample,
                      mbstd_group=cfg.mbstd_group)
    return G, D
