"""The ProGAN / StyleGAN ingredients that are single layers, each citing the paper and the official NVlabs code
(``tkarras/progressive_growing_of_gans``: ``networks.py``; ``NVlabs/stylegan``: ``training/networks_stylegan.py``).

``model.py`` assembles them into the generator, its mapping network and the discriminator.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

SQRT2 = math.sqrt(2.0)  # He's gain for leaky ReLU (the papers use it for lrelu(0.2) too)
LRELU_SLOPE = 0.2


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


# --------------------------------------------------------------------------------- equalised learning rate

class EqualizedLinear(nn.Module):
    """A dense layer with ProGAN's equalised learning rate (Karras et al. 2018, §4.1): the stored weight is
    N(0, 1/lr_mul²) and is multiplied at runtime by ``c = gain / sqrt(fan_in) · lr_mul`` (He's constant), so Adam's
    scale-invariant updates move every layer at the same speed. ``lr_mul`` is StyleGAN's trick for the mapping
    network's 100× smaller learning rate (Karras et al. 2019, §C; ``mapping_lrmul = 0.01`` in ``G_mapping``):
    the runtime scale and the bias both carry it (``dense`` / ``apply_bias`` with ``lrmul``)."""

    def __init__(self, in_features: int, out_features: int, *, gain: float = SQRT2, lr_mul: float = 1.0,
                 bias: bool = True, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.scale = gain / math.sqrt(in_features) * lr_mul
        self.lr_mul = lr_mul

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.effective_weight(), bias)


class EqualizedConv2d(nn.Module):
    """A convolution with the equalised learning rate (ProGAN §4.1, ``conv2d(..., use_wscale=True)``): weight
    N(0, 1), scaled at runtime by ``gain / sqrt(in · k · k)``; "same" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, gain: float = SQRT2,
                 bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, padding=self.padding)


# ------------------------------------------------------------------------------------------ normalisations

def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """ProGAN's pixel-wise feature vector normalisation (§4.2): ``b = a / sqrt(mean_c a² + ε)`` at every pixel
    (and on z, ``normalize_latents``); along dim 1, so it applies to ``[N, C]`` and ``[N, C, H, W]`` alike."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, *, group_size: int = 4, eps: float = 1e-8) -> torch.Tensor:
    """ProGAN's minibatch standard deviation (§3; ``minibatch_stddev_layer``): split the batch into groups of
    ``group_size`` (sample i in group i mod N/G, as the official reshape ``[G, -1, C, H, W]`` does), take the
    standard deviation of every feature at every pixel over the group, average it over features and pixels, and
    append that scalar as one constant feature map. The group size falls to the largest divisor of N ≤ it."""
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.reshape(g, n // g, c, h, w)
    y = (y - y.mean(dim=0, keepdim=True)).pow(2).mean(dim=0)  # population variance over the group
    y = (y + eps).sqrt().mean(dim=(1, 2, 3))  # [N/G]
    y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)  # row j of the batch gets its group's j mod N/G
    return torch.cat([x, y], dim=1)


# ------------------------------------------------------------------------------------------------ sampling

_BINOMIAL = torch.tensor([1.0, 2.0, 1.0])


def blur(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN's low-pass filter (Karras et al. 2019, §2, after Zhang 2019): the separable 2nd-order binomial
    ``[1, 2, 1] ⊗ [1, 2, 1] / 16`` per channel (``blur2d``), zero padding."""
    k = torch.outer(_BINOMIAL, _BINOMIAL).to(x.dtype)
    k = (k / k.sum()).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(x, k, padding=1, groups=x.shape[1])


def upsample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """×2: nearest neighbour (ProGAN, ``upscale2d``), or StyleGAN's "bilinear": nearest then the binomial blur
    (config B of Table 1: "filtering the activations ... after each upsampling layer")."""
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    return blur(x) if mode == "bilinear" else x


def downsample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """÷2: 2×2 average pooling (ProGAN, ``downscale2d``), with the binomial blur before it for "bilinear"."""
    return F.avg_pool2d(blur(x) if mode == "bilinear" else x, 2)


# ------------------------------------------------------------------------------------------ StyleGAN layers

class NoiseInput(nn.Module):
    """StyleGAN's per-layer noise (§3.2): a single-channel image of N(0, 1) noise per sample, broadcast to every
    feature map with a learned per-channel scale (``apply_noise``; the scales start at 0). ``noise=None`` adds
    nothing (the generator is then a deterministic function of its styles)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if noise is None:
            return x
        return x + self.weight.view(1, -1, 1, 1) * noise


class AdaIN(nn.Module):
    """Adaptive instance normalisation with a learned affine style (StyleGAN §2, eq. 1; ``instance_norm`` then
    ``style_mod``): every feature map is normalised per sample, then scaled by ``1 + y_s`` and shifted by ``y_b``,
    ``(y_s, y_b) = A(w)`` with A an equalised dense layer of gain 1."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, 2 * channels, gain=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x * torch.rsqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-8)
        scale, shift = self.affine(w).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1.0 + scale) + shift


class LayerEpilogue(nn.Module):
    """What follows every convolution of the generator (``layer_epilogue`` of ``networks_stylegan.py``): noise
    (config E) → bias → leaky ReLU → pixel norm (ProGAN, configs A and B) or AdaIN with this layer's style
    (config C on)."""

    def __init__(self, channels: int, *, w_dim: int, noise: bool, styles: bool):
        super().__init__()
        self.noise = NoiseInput(channels) if noise else None
        self.bias = nn.Parameter(torch.zeros(channels))
        self.style = AdaIN(channels, w_dim) if styles else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.noise is not None:
            x = self.noise(x, noise)
        x = lrelu(x + self.bias.view(1, -1, 1, 1))
        return self.style(x, w) if self.style is not None else pixel_norm(x)
