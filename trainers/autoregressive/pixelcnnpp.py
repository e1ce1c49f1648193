"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017), read top to bottom: the discretised logistic mixture
likelihood, the shifted convolutions, the gated ResNet block, the two-stream down/up-sampling network, and the
samplers: ``sample`` computes every activation once, at its position, as the pixels it reads are drawn
(trainers/autoregressive/fast_sampling_pp.py, after Ramachandran et al. 2017, "Fast PixelCNN++"),
``sample_uncached`` runs a forward pass per pixel (the reference); both draw each pixel from the sample's own
uniforms (``PixelCNNpp.draw_pixel``), so they draw the same values.

Reference implementation: openai/pixel-cnn, ``pixel_cnn_pp/nn.py`` (``discretized_mix_logistic_loss``,
``sample_from_discretized_mix_logistic``, ``down_shifted_conv2d`` …, ``gated_resnet``) and ``pixel_cnn_pp/model.py``
(``model_spec``). Differences, each a simplification, none changing what is modelled: no weight normalisation
with data-dependent initialisation (PyTorch's default initialisation instead), dropout masks drawn from the
training step's own generator (so a resumed run draws the same masks), and ``levels`` other than 256 allowed:
the same bins, of width 2/(levels − 1) on [−1, 1] (binarised MNIST: two bins split at 0).

Channel order within a pixel is R → G → B (paper §2.2): the mixture component k is shared by the channels of
one pixel, and in component k the mean of G is μ_G + α·r and that of B is μ_B + β·r + γ·g, with α, β, γ = tanh
of network outputs (nn.py, ``coeffs``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from trainers.autoregressive.models import Autoregressive, draw, sample_uniforms, value_dtype
from trainers.common import ddp
from trainers.common.runs import module_device

# --------------------------------------------------------------------------------------------- likelihood


def num_params(channels: int, num_mix: int) -> int:
    """Network outputs per pixel: per component one logit, C means, C log-scales and C(C−1)/2 coefficients
    (10 per component for RGB, as nn.py's ``nr_mix = ls[-1] / 10``; 3 for one channel)."""
    return num_mix * (1 + 2 * channels + channels * (channels - 1) // 2)


def split_params(params: torch.Tensor, channels: int, num_mix: int):
    """``[B, P, H, W]`` → mixture logits ``[B, K, H, W]``, means, log-scales ``[B, C, K, H, W]``, coefficients
    ``[B, C(C−1)/2, K, H, W]`` (tanh applied; log-scales floored at −7 as nn.py does)."""
    b, _, h, w = params.shape
    k, c = num_mix, channels
    logits = params[:, :k]
    rest = params[:, k:].reshape(b, -1, k, h, w)
    means, log_scales, coeffs = rest[:, :c], rest[:, c:2 * c].clamp(min=-7.0), torch.tanh(rest[:, 2 * c:])
    return logits, means, log_scales, coeffs


def channel_means(means: torch.Tensor, coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Component means after the linear dependence on the earlier channels of the same pixel: channel c's mean
    is μ_c + Σ_{c'<c} coeff(c, c') x_{c'} (nn.py: m2 = μ_G + α r, m3 = μ_B + β r + γ g). x ``[B, C, H, W]`` in
    [−1, 1]; the coefficients are stored pair by pair in that order: (1,0), (2,0), (2,1), …"""
    out, pair = [means[:, 0]], 0
    for c in range(1, means.shape[1]):
        m = means[:, c]
        for earlier in range(c):
            m = m + coeffs[:, pair] * x[:, earlier, None]
            pair += 1
        out.append(m)
    return torch.stack(out, 1)


def logistic_bin_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, *, levels: int) -> torch.Tensor:
    """log P(bin of x) under a logistic(mean, exp(log_scale)) discretised into ``levels`` bins on [−1, 1]
    (nn.py, ``discretized_mix_logistic_loss``): the lowest bin takes all mass below its upper edge, the highest
    all mass above its lower edge; otherwise the CDF difference, or, where it underflows (< 1e-5), the density
    at the bin's centre times the bin's width (the "extremely low prob" case)."""
    half = 1.0 / (levels - 1)  # half a bin: 1/255 for 8-bit data
    centered = x - mean
    inv_s = torch.exp(-log_scale)
    plus_in, min_in = inv_s * (centered + half), inv_s * (centered - half)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log σ(plus_in): the edge case x = 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # log (1 − σ(min_in)): the edge case x = levels − 1
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in)
    interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid + math.log(2 * half))
    return torch.where(x < -1 + half / 2, log_cdf_plus, torch.where(x > 1 - half / 2, log_one_minus_cdf_min, interior))


def component_log_probs(params: torch.Tensor, x: torch.Tensor, *, num_mix: int, levels: int,
                        context: torch.Tensor | None = None) -> torch.Tensor:
    """log π_k + log p_k(x_c | x_<c) per component and channel, ``[B, C, K, H, W]`` (the π_k term on channel 0
    only), for x scaled to [−1, 1] ``[B, C, H, W]``. ``context``: the pixel values the means depend on (default
    x itself; the causality tests pass a separate tensor so that only the model's inputs are differentiated,
    not the value whose probability is read)."""
    c = x.shape[1]
    logits, means, log_scales, coeffs = split_params(params, c, num_mix)
    means = channel_means(means, coeffs, x if context is None else context)
    lp = logistic_bin_log_prob(x[:, :, None], means, log_scales, levels=levels)
    mix = torch.log_softmax(logits, dim=1)
    return torch.cat([lp[:, :1] + mix[:, None], lp[:, 1:]], 1)


def mixture_log_prob(params: torch.Tensor, x: torch.Tensor, *, num_mix: int, levels: int) -> torch.Tensor:
    """log p(pixel) = log Σ_k π_k Π_c p_k(x_c | x_<c), ``[B, H, W]`` (nn.py: sum over channels, then
    log-sum-exp over components)."""
    return torch.logsumexp(component_log_probs(params, x, num_mix=num_mix, levels=levels).sum(1), dim=1)


def channel_conditional_log_probs(params: torch.Tensor, x: torch.Tensor, *, num_mix: int, levels: int,
                                  context: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x_c | x_<c of the pixel, earlier pixels) ``[B, C, H, W]``: the marginal of channels ≤ c minus that
    of channels < c (component k's channel c depends on channels < c only, so summing out the later channels
    leaves Π_{c'≤c}). Summed over c it is ``mixture_log_prob``; the causality tests differentiate it."""
    lp = component_log_probs(params, x, num_mix=num_mix, levels=levels, context=context)
    cumulative = torch.logsumexp(lp.cumsum(1), dim=2)
    return cumulative - F.pad(cumulative, (0, 0, 0, 0, 1, 0))[:, :-1]


# --------------------------------------------------------------------------------------------- layers


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row down by one (a zero row on top): row i then holds row i − 1 (nn.py ``down_shift``)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 0))[..., :-1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """ELU of [x, −x] (nn.py ``concat_elu``): twice the channels."""
    return F.elu(torch.cat([x, -x], dim=1))


class DownShiftedConv2d(nn.Conv2d):
    """A (kh × kw) convolution padded so that output (i, j) reads rows i−kh+1 … i, columns j−kw//2 … j+kw//2:
    rows at or above i, never below (nn.py ``down_shifted_conv2d``; the u stream: "pixels above")."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(2, 3), stride: int = 1):
        super().__init__(in_channels, out_channels, kernel, stride=stride)

    def forward(self, x):
        kh, kw = self.kernel_size
        return super().forward(F.pad(x, ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)))


class DownRightShiftedConv2d(nn.Conv2d):
    """A (kh × kw) convolution that reads rows ≤ i and columns ≤ j (nn.py ``down_right_shifted_conv2d``; the
    ul stream: "up and to the left")."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(2, 2), stride: int = 1):
        super().__init__(in_channels, out_channels, kernel, stride=stride)

    def forward(self, x):
        kh, kw = self.kernel_size
        return super().forward(F.pad(x, (kw - 1, 0, kh - 1, 0)))


class DownShiftedDeconv2d(nn.ConvTranspose2d):
    """×2 upsampling whose output row i reads input rows ≤ i // 2 (nn.py ``down_shifted_deconv2d``: a VALID
    transposed convolution cropped to the rows at the top and the centred columns)."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(2, 3)):
        super().__init__(in_channels, out_channels, kernel, stride=2, output_padding=1)

    def forward(self, x):
        out = super().forward(x)
        kh, kw = self.kernel_size
        return out[:, :, :out.shape[2] - kh + 1, (kw - 1) // 2:out.shape[3] - (kw - 1) // 2]


class DownRightShiftedDeconv2d(nn.ConvTranspose2d):
    def __init__(self, in_channels: int, out_channels: int, kernel=(2, 2)):
        super().__init__(in_channels, out_channels, kernel, stride=2, output_padding=1)

    def forward(self, x):
        out = super().forward(x)
        kh, kw = self.kernel_size
        return out[:, :, :out.shape[2] - kh + 1, :out.shape[3] - kw + 1]


class GatedResnet(nn.Module):
    """x + a ⊙ σ(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux))))) + class term
    (nn.py ``gated_resnet``): ``aux`` is the short-cut input (the u stream, or u and the up pass's ul), ``conv``
    the stream's shifted convolution, the class term an embedding of the label (the one-hot ``h`` times ``hw``)."""

    def __init__(self, channels: int, conv, *, aux_channels: int = 0, dropout: float = 0.0, num_classes: int = 0):
        super().__init__()
        self.conv1 = conv(2 * channels, channels)
        self.aux = nn.Conv2d(2 * aux_channels, channels, 1) if aux_channels else None  # nin
        self.conv2 = conv(2 * channels, 2 * channels)
        self.dropout = dropout
        self.cond = nn.Embedding(num_classes, 2 * channels) if num_classes else None
        if self.cond is not None:
            nn.init.normal_(self.cond.weight, 0.0, 0.05)

    def forward(self, x, aux=None, labels=None, generator=None):
        c1 = self.conv1(concat_elu(x))
        if self.aux is not None:
            c1 = c1 + self.aux(concat_elu(aux))
        c1 = concat_elu(c1)
        if self.training and self.dropout > 0:  # inverted dropout with the step's generator (tf.nn.dropout)
            # the global batch's mask under torchrun, this rank's rows (ddp.draw); drawn on the CPU
            keep = ddp.draw(lambda n: torch.rand((n, *c1.shape[1:]), generator=generator), len(c1)).to(c1.device) \
                >= self.dropout
            c1 = c1 * keep / (1.0 - self.dropout)
        c2 = self.conv2(c1)
        if self.cond is not None:
            c2 = c2 + self.cond(labels)[:, :, None, None]
        a, b = c2.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


# --------------------------------------------------------------------------------------------- network


class PixelCNNpp(Autoregressive):
    """model.py ``model_spec``: an up pass of three resolutions (H, H/2, H/4) with ``nr_resnet`` gated ResNet
    blocks each in two streams, u (rows above) and ul (above and to the left), then a down pass back up to H
    with ``nr_resnet`` (+1 at the two upsampled resolutions) blocks that take every up-pass activation as a
    short-cut, and a 1×1 convolution of ELU(ul) to the mixture's parameters. The first layers read the input
    with a channel of ones appended ("to distinguish image from padding") and are shifted by one row (u) or
    by one row / one column (ul), so output (i, j) sees exactly the pixels before (i, j) in raster order; the
    channels of pixel (i, j) are then ordered by the likelihood's coefficients. Height and width must be
    divisible by 4 (28 → 14 → 7, 32 → 16 → 8)."""

    sampling_note = ("cached: every activation computed once, at its position, when the pixels it reads are drawn "
                     "(fast_sampling_pp.py, after Fast PixelCNN++), then the pixel's channels from one mixture "
                     "component (inverse CDF)")

    def __init__(self, *, shape, levels: int, filters: int = 160, nr_resnet: int = 5, num_mix: int = 10,
                 dropout: float = 0.5, num_classes: int = 0):
        super().__init__(shape=shape, levels=levels)
        c, h, w = shape
        if h % 4 or w % 4:
            raise ValueError(f"PixelCNN++ halves the image twice; height and width must be divisible by 4, got {shape}")
        self.conditional = num_classes > 0
        self.num_mix, self.nr_resnet = num_mix, nr_resnet
        f = filters

        def block(conv, aux):
            return GatedResnet(f, conv, aux_channels=aux, dropout=dropout, num_classes=num_classes)

        self.u_init = DownShiftedConv2d(c + 1, f, (2, 3))
        self.ul_init_above = DownShiftedConv2d(c + 1, f, (1, 3))
        self.ul_init_left = DownRightShiftedConv2d(c + 1, f, (2, 1))
        # up pass: per resolution nr_resnet blocks; u's blocks have no short-cut, ul's read u
        self.up_u = nn.ModuleList(nn.ModuleList(block(DownShiftedConv2d, 0) for _ in range(nr_resnet)) for _ in range(3))
        self.up_ul = nn.ModuleList(nn.ModuleList(block(DownRightShiftedConv2d, f) for _ in range(nr_resnet))
                                   for _ in range(3))
        self.down_u_stride = nn.ModuleList(DownShiftedConv2d(f, f, (2, 3), stride=2) for _ in range(2))
        self.down_ul_stride = nn.ModuleList(DownRightShiftedConv2d(f, f, (2, 2), stride=2) for _ in range(2))
        # down pass: nr_resnet, then nr_resnet + 1 at each upsampled resolution; u reads the up pass's u,
        # ul reads [u, the up pass's ul]
        sizes = (nr_resnet, nr_resnet + 1, nr_resnet + 1)
        self.dn_u = nn.ModuleList(nn.ModuleList(block(DownShiftedConv2d, f) for _ in range(n)) for n in sizes)
        self.dn_ul = nn.ModuleList(nn.ModuleList(block(DownRightShiftedConv2d, 2 * f) for _ in range(n)) for n in sizes)
        self.up_u_deconv = nn.ModuleList(DownShiftedDeconv2d(f, f) for _ in range(2))
        self.up_ul_deconv = nn.ModuleList(DownRightShiftedDeconv2d(f, f) for _ in range(2))
        self.out = nn.Conv2d(f, num_params(c, num_mix), 1)  # nin(elu(ul), 10 · nr_mix)

    def params(self, xs: torch.Tensor, labels=None, generator=None) -> torch.Tensor:
        """The mixture's parameters ``[B, P, H, W]`` from the scaled image ``xs`` in [−1, 1] ``[B, C, H, W]``."""
        if self.conditional and labels is None:
            raise ValueError("a class-conditional PixelCNN++ needs labels")
        kw = dict(labels=labels, generator=generator)
        x_pad = torch.cat([xs, torch.ones_like(xs[:, :1])], 1)
        u_list = [down_shift(self.u_init(x_pad))]
        ul_list = [down_shift(self.ul_init_above(x_pad)) + right_shift(self.ul_init_left(x_pad))]
        for level in range(3):
            if level:
                u_list.append(self.down_u_stride[level - 1](u_list[-1]))
                ul_list.append(self.down_ul_stride[level - 1](ul_list[-1]))
            for bu, bul in zip(self.up_u[level], self.up_ul[level]):
                u_list.append(bu(u_list[-1], **kw))
                ul_list.append(bul(ul_list[-1], u_list[-1], **kw))
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(3):
            if level:
                u = self.up_u_deconv[level - 1](u)
                ul = self.up_ul_deconv[level - 1](ul)
            for bu, bul in zip(self.dn_u[level], self.dn_ul[level]):
                u = bu(u, u_list.pop(), **kw)
                ul = bul(ul, torch.cat([u, ul_list.pop()], 1), **kw)
        assert not u_list and not ul_list
        return self.out(F.elu(ul))

    def nll(self, x, labels=None, generator=None):
        xs = self.scaled(x)
        logp = mixture_log_prob(self.params(xs, labels, generator), xs, num_mix=self.num_mix, levels=self.levels)
        return -logp.flatten(1).sum(1)

    def loss(self, x, labels=None, *, generator=None):
        return self.nll(x, labels, generator).mean()

    def log_prob(self, x, labels=None):
        return -self.nll(x, labels).double()

    def conditional_log_probs(self, xs: torch.Tensor, x: torch.Tensor, labels=None) -> torch.Tensor:
        """log p(x_{i,c} | everything before it) ``[B, C, H, W]`` of the values ``x`` (uint8) with the network and
        the channel coefficients reading the scaled image ``xs`` (differentiable: the causality tests; the
        likelihood is this at ``xs = scaled(x)``)."""
        return channel_conditional_log_probs(self.params(xs, labels), self.scaled(x), num_mix=self.num_mix,
                                             levels=self.levels, context=xs)

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """Cached (trainers/autoregressive/fast_sampling_pp.py): every activation computed once, at its position,
        when the pixels it reads are drawn; the same values as ``sample_uncached`` for the same seed."""
        from trainers.autoregressive.fast_sampling_pp import sample_pixelcnnpp

        if self.conditional and labels is None:
            raise ValueError("a class-conditional PixelCNN++ needs labels")
        return sample_pixelcnnpp(self, num, seed=seed, first=first, labels=labels)

    @torch.inference_mode()
    def sample_uncached(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """The reference sampler, pixel by pixel: one full forward pass (over rows 0 … i rounded up to a multiple
        of 4: no layer reads a row below its output row, so the cropped image gives row i the same parameters, up
        to float32 rounding of convolutions summed in another order), then ``draw_pixel``."""
        c, h, w = self.shape
        if self.conditional and labels is None:
            raise ValueError("a class-conditional PixelCNN++ needs labels")
        device = module_device(self)
        labels = None if labels is None else torch.as_tensor(labels).to(device)
        u = sample_uniforms(num, (c + 1) * h * w, seed=seed, first=first, device=device).view(num, c + 1, h, w)
        x = torch.zeros(num, c, h, w, dtype=value_dtype(self.levels), device=device)
        if num == 0:
            return x.cpu()
        for i in range(h):
            rows = min(h, 4 * (i // 4 + 1))  # output row i reads rows ≤ i only: run on the rows above, to a multiple of 4
            for j in range(w):
                params = self.params(self.scaled(x[:, :, :rows]), labels)
                x[:, :, i, j] = self.draw_pixel(params[:, :, i, j], u[:, :, i, j])
        return x.cpu()

    def draw_pixel(self, params: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One pixel's values ``[B, C]`` from its mixture parameters ``[B, P]`` and its own C + 1 uniforms
        ``[B, C + 1]``: the mixture component (inverse CDF of π with u[:, 0]; nn.py draws it with Gumbel noise),
        then each channel c in order from that component's discretised logistic over the ``levels`` values
        (inverse CDF with u[:, 1 + c]), its mean moved by the channels drawn before it. Shared by both samplers,
        so they draw alike."""
        num, c = len(params), self.shape[0]
        device = params.device
        values = torch.linspace(-1.0, 1.0, self.levels, device=device)  # the bins' centres, scaled
        index = torch.arange(num, device=device)
        logits, means, log_scales, coeffs = split_params(params[:, :, None, None], c, self.num_mix)
        k = draw(logits[:, :, 0, 0], u[:, 0]).long() if self.num_mix > 1 else \
            torch.zeros(num, dtype=torch.long, device=device)
        out = torch.zeros(num, c, dtype=value_dtype(self.levels), device=device)
        pixel = torch.zeros(num, c, 1, 1, device=device)  # the drawn channels, scaled: what the later means read
        for ch in range(c):
            mean = channel_means(means, coeffs, pixel)[index, ch, k, 0, 0]  # [B]
            log_scale = log_scales[index, ch, k, 0, 0]
            lp = logistic_bin_log_prob(values[None], mean[:, None], log_scale[:, None], levels=self.levels)
            out[:, ch] = draw(lp, u[:, ch + 1]).to(out.dtype)
            pixel[:, ch] = self.scaled(out[:, ch:ch + 1])[:, :, None]
        return out
