"""The invertible layers of NICE, RealNVP and Glow, each ``forward(x) -> (y, log|det J| [B])`` and ``inverse(y)``.

Every layer maps a batch ``[B, ...]`` to a batch of the same number of elements and returns the log-determinant
of its Jacobian per example (nats). The tests check, for every class here, that ``inverse(forward(x)) == x``
(≤ 1e-5) and that the log-determinant equals ``log|det|`` of ``torch.autograd.functional.jacobian`` on a tiny
input (≤ 1e-4).

    Coupling          additive (NICE) or affine (RealNVP: tanh-bounded scale; Glow: sigmoid(h + 2)) coupling with
                      a binary mask: alternating dimensions (NICE), checkerboard or channel halves (RealNVP), or
                      channel halves by splitting (Glow's, ``mask="split"``: the network sees only the kept half)
    Scaling           NICE's diagonal scaling layer: y = x · exp(s)
    ActNorm           Glow's per-channel affine, initialised from the first training batch (zero mean, unit
                      variance per channel); the ``initialized`` buffer makes it part of the checkpoint
    BatchNormFlow     RealNVP's batch normalisation as a flow layer: batch statistics in training, running
                      averages in evaluation (the density evaluated and sampled is the evaluation-mode one)
    InvConv1x1        Glow's invertible 1×1 convolution, plain (a full matrix, slogdet) or LU-decomposed
    Squeeze           [C, H, W] → [4C, H/2, W/2] (log-det 0)
    LogitTransform    RealNVP's pre-processing y = logit(α + (1 − 2α)·x) of x ∈ [0, 1], with its log-det
    Shift             Glow's pre-processing x − 1/2 (log-det 0)
    Flatten           [C, H, W] ↔ [D] for the MLP flows (NICE)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from trainers.common import ddp


def _sum_per_example(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


# --------------------------------------------------------------------------------------------- masks


def checkerboard_mask(shape: tuple[int, int, int], *, parity: int) -> torch.Tensor:
    """``[1, C, H, W]`` 1 where (i + j) % 2 == parity (the kept, conditioning half), same for every channel."""
    c, h, w = shape
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((i + j) % 2 == parity).float().expand(c, h, w).unsqueeze(0).clone()


def channel_mask(shape: tuple[int, int, int], *, parity: int) -> torch.Tensor:
    """``[1, C, H, W]`` 1 on the first half of the channels (parity 0) or the second (parity 1)."""
    c, h, w = shape
    m = torch.zeros(1, c, h, w)
    half = c // 2
    if parity == 0:
        m[:, :half] = 1
    else:
        m[:, half:] = 1
    return m


def alternating_mask(num_dims: int, *, parity: int) -> torch.Tensor:
    """``[1, D]`` 1 on the even (parity 0) or odd (parity 1) dimensions: NICE's partitions."""
    return (torch.arange(num_dims) % 2 == parity).float().unsqueeze(0)


# --------------------------------------------------------------------------------------------- networks


class ConvNet(nn.Module):
    """The coupling network: 3×3 conv → ReLU → (1×1 conv → ReLU) × ``num_hidden`` → zero-initialised 3×3 conv,
    so every coupling starts as the identity (Glow §3.3)."""

    def __init__(self, in_channels: int, out_channels: int, *, hidden: int, num_hidden: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU()]
        for _ in range(num_hidden):
            layers += [nn.Conv2d(hidden, hidden, 1), nn.ReLU()]
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x):
        return self.net(x)


class MLP(nn.Module):
    """NICE's coupling function m: ``num_hidden`` ReLU layers of ``hidden`` units, zero-initialised output."""

    def __init__(self, in_dims: int, out_dims: int, *, hidden: int, num_hidden: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dims
        for _ in range(num_hidden):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        last = nn.Linear(width, out_dims)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x):
        return self.net(x)


# --------------------------------------------------------------------------------------------- coupling


class Coupling(nn.Module):
    """y_kept = x_kept; y_rest = x_rest · exp(s(x_kept)) + t(x_kept) (affine) or x_rest + t(x_kept) (additive).

    ``mask``: a ``[1, ...]`` 0/1 tensor (1 = kept, conditioning part), or ``"split"`` for Glow's channel halves
    (the network gets the first half only and transforms the second). ``scale``: ``"tanh"`` (RealNVP: s =
    a · tanh(h), a a learned per-channel factor), ``"sigmoid"`` (Glow: exp(s) = sigmoid(h + 2)) or None
    (additive, log-det 0). ``net(in)`` → ``[B, k · C, ...]`` with k = 2 for affine, 1 for additive.
    """

    def __init__(self, net: nn.Module, *, mask, scale: str | None, channels: int):
        super().__init__()
        if scale not in (None, "tanh", "sigmoid"):
            raise ValueError(f"scale {scale!r} is not one of None, 'tanh', 'sigmoid'")
        self.net, self.scale_kind = net, scale
        self.split = isinstance(mask, str)
        if self.split:
            if mask != "split":
                raise ValueError(f"mask {mask!r}: expected a tensor or 'split'")
        else:
            self.register_buffer("mask", mask)
        if scale == "tanh":
            out_c = channels - channels // 2 if self.split else channels
            self.tanh_scale = nn.Parameter(torch.ones(1, out_c, *([1] * (2 if net_is_conv(net) else 0))))

    def _params(self, h: torch.Tensor):
        if self.scale_kind is None:
            return h, None
        raw_s, t = h.chunk(2, dim=1)
        if self.scale_kind == "tanh":
            log_s = self.tanh_scale * torch.tanh(raw_s)
        else:
            log_s = F.logsigmoid(raw_s + 2.0)
        return t, log_s

    def forward(self, x):
        if self.split:
            x1, x2 = x.chunk(2, dim=1)
            t, log_s = self._params(self.net(x1))
            y2 = x2 * torch.exp(log_s) + t if log_s is not None else x2 + t
            logdet = _sum_per_example(log_s) if log_s is not None else x.new_zeros(x.shape[0])
            return torch.cat([x1, y2], 1), logdet
        m = self.mask
        t, log_s = self._params(self.net(x * m))
        if log_s is None:
            return x + (1 - m) * t, x.new_zeros(x.shape[0])
        log_s = (1 - m) * log_s
        return x * m + (1 - m) * (x * torch.exp(log_s) + t), _sum_per_example(log_s)

    def inverse(self, y):
        if self.split:
            y1, y2 = y.chunk(2, dim=1)
            t, log_s = self._params(self.net(y1))
            x2 = (y2 - t) * torch.exp(-log_s) if log_s is not None else y2 - t
            return torch.cat([y1, x2], 1)
        m = self.mask
        t, log_s = self._params(self.net(y * m))
        if log_s is None:
            return y - (1 - m) * t
        log_s = (1 - m) * log_s
        return y * m + (1 - m) * ((y - t) * torch.exp(-log_s))


def net_is_conv(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


# --------------------------------------------------------------------------------------------- scaling and norms


class Scaling(nn.Module):
    """NICE's diagonal scaling: y = x · exp(s), one learned s per dimension (log-det Σ s).

    ``data_init``: s starts at −log std of each dimension over the first training batch (as act-norm does), not
    at 0 — a deviation from the paper that only shortens the start: with 1/256-wide dequantised pixels the
    optimum of s is ≈ 5 per dimension, which Adam at lr 1e-3 needs thousands of steps to reach from 0."""

    def __init__(self, shape: tuple[int, ...], *, data_init: bool = False, eps: float = 1e-6):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, *shape))
        self.register_buffer("initialized", torch.tensor(0 if data_init else 1, dtype=torch.uint8))
        self.eps = eps

    def forward(self, x):
        if self.training and not bool(self.initialized):
            with torch.no_grad():  # the global batch's std under torchrun (ddp.batch_moments)
                _, std = ddp.batch_moments(x, (0,), keepdim=True, std=True)
                self.log_scale.copy_(-torch.log(std + self.eps))
                self.initialized.fill_(1)
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(-self.log_scale)


class ActNorm(nn.Module):
    """y = (x + b) · exp(log_s) per channel; b, log_s set from the first batch seen in training mode so that y has
    zero mean and unit variance per channel (Glow §3.1). Log-det H·W·Σ log_s."""

    def __init__(self, channels: int, *, eps: float = 1e-6):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))
        self.eps = eps

    @torch.no_grad()
    def initialize(self, x):
        mean, std = ddp.batch_moments(x, (0, 2, 3), keepdim=True, std=True)  # the global batch's, under torchrun
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(1)

    def forward(self, x):
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        return y, (x.shape[2] * x.shape[3] * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(-self.log_scale) - self.bias


class BatchNormFlow(nn.Module):
    """RealNVP's batch normalisation as an invertible layer (Dinh et al. 2017, §3.7): y = (x − μ)/√(σ² + ε)·e^γ + β,
    per channel (or per dimension for vectors), with the batch's μ, σ² in training (and running averages
    updated, momentum ``momentum``) and the running averages in evaluation. Log-det Σ (γ − ½ log(σ² + ε)) per
    position."""

    def __init__(self, channels: int, *, momentum: float = 0.05, eps: float = 1e-4):
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def _view(self, v, x):
        return v.view(1, -1, *([1] * (x.dim() - 2)))

    def _stats(self, x):
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            mean, var = ddp.batch_moments(x, dims)  # the global batch's under torchrun, as one process has them
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
            return mean, var
        return self.running_mean, self.running_var

    def forward(self, x):
        mean, var = self._stats(x)
        y = (x - self._view(mean, x)) / torch.sqrt(self._view(var, x) + self.eps)
        y = y * torch.exp(self._view(self.log_gamma, x)) + self._view(self.beta, x)
        per_position = (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum()
        positions = x[0, 0].numel()
        return y, (positions * per_position).expand(x.shape[0])

    def inverse(self, y):
        mean, var = self.running_mean, self.running_var  # sampling is always in evaluation mode
        x = (y - self._view(self.beta, y)) * torch.exp(-self._view(self.log_gamma, y))
        return x * torch.sqrt(self._view(var, y) + self.eps) + self._view(mean, y)


# --------------------------------------------------------------------------------------------- 1×1 convolutions


class InvConv1x1(nn.Module):
    """Glow's invertible 1×1 convolution, initialised to a random rotation. ``lu=True``: W = P·L·(U + diag(s))
    with P fixed, L unit lower-triangular, U strictly upper, s = sign·exp(log|s|): log-det H·W·Σ log|s| in O(C)
    instead of slogdet's O(C³) (Glow §3.2)."""

    def __init__(self, channels: int, *, lu: bool):
        super().__init__()
        self.lu = lu
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        if not lu:
            self.weight = nn.Parameter(w)
            return
        p, l, u = torch.linalg.lu(w)
        s = torch.diagonal(u)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.l = nn.Parameter(l)
        self.u = nn.Parameter(torch.triu(u, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def matrix(self) -> torch.Tensor:
        if not self.lu:
            return self.weight
        lower = self.l * self.lower_mask + self.eye
        upper = self.u * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def log_abs_det(self) -> torch.Tensor:
        return self.log_s.sum() if self.lu else torch.linalg.slogdet(self.weight)[1]

    def forward(self, x):
        w = self.matrix()
        y = F.conv2d(x, w.view(*w.shape, 1, 1))
        return y, (x.shape[2] * x.shape[3] * self.log_abs_det()).expand(x.shape[0])

    def inverse(self, y):
        w_inv = torch.linalg.inv(self.matrix().double()).to(y.dtype)
        return F.conv2d(y, w_inv.view(*w_inv.shape, 1, 1))


# --------------------------------------------------------------------------------------------- reshapes and pre-processing


class Squeeze(nn.Module):
    """[B, C, H, W] → [B, 4C, H/2, W/2]: each 2×2 block becomes 4 channels (RealNVP §3.6)."""

    def forward(self, x):
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(b)

    def inverse(self, y):
        b, c4, h, w = y.shape
        c = c4 // 4
        return y.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 2 * h, 2 * w)


class Flatten(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.new_zeros(x.shape[0])

    def inverse(self, y):
        return y.reshape(y.shape[0], *self.shape)


class LogitTransform(nn.Module):
    """x ∈ [0, 1] → logit(α + (1 − 2α)x) (RealNVP §4.1, α = 0.05): log-det Σ log(1 − 2α) − log p − log(1 − p)."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        p = self.alpha + (1 - 2 * self.alpha) * x
        y = torch.log(p) - torch.log1p(-p)
        logdet = _sum_per_example(math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p))
        return y, logdet

    def inverse(self, y):
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)


class Shift(nn.Module):
    """x ∈ [0, 1] → x − ½ (Glow's [−½, ½] inputs)."""

    def forward(self, x):
        return x - 0.5, x.new_zeros(x.shape[0])

    def inverse(self, y):
        return y + 0.5


class Split(nn.Module):
    """Multi-scale factor-out (RealNVP §3.6): the second half of the channels leaves the flow as latent z (its
    prior is the flow's base distribution); the first half goes on. ``forward`` → (kept, z); ``inverse(kept, z)``."""

    def forward(self, x):
        return x.chunk(2, dim=1)

    def inverse(self, kept, z):
        return torch.cat([kept, z], 1)
