"""Autoregressive image models: p(x) = Π_d p(x_d | x_<d), each conditional a Bernoulli (binarised data) or a
256-way softmax (8-bit data), so log p(x) is exact and sampling is one pixel at a time.

    FVSBN           fully visible sigmoid belief net: a logistic regression per pixel (Frey 1998)
    NADE            one hidden layer with weights shared across the conditionals (Larochelle & Murray 2011)
    MADE            a masked MLP; order/connectivity resampling optional (Germain et al. 2015)
    PixelCNN        masked convolutions A/B with residual blocks (van den Oord et al. 2016a, §3.4-3.5)
    GatedPixelCNN   gated vertical/horizontal stacks without a blind spot, optionally class-conditional
                    (van den Oord et al. 2016b)

Colour images (C > 1) are generated pixel by pixel and, within a pixel, R → G → B: the convolutional models split
their features into C groups and mask what a group reads at its own position (``MaskedConv``; PixelRNN paper
§3.4, Fig. 4), so the logits of channel c read the pixel's channels < c; the MLP models order the sub-pixels
channel-major (every R, then every G, then every B).

The reference implementation for sizes and the published binarised-MNIST numbers is pytorch-generative
(EugenHotaj/pytorch-generative, README table). All models take uint8 ``[B, C, H, W]`` with values
``0..levels-1`` and return logits ``[B, K, C, H, W]`` (K = 1 for Bernoulli, 256 for the softmax).

For 8-bit data the MLP models read out each pixel's 256 logits from a rank-R feature of that pixel
(``logits_d = b_d + f_d U_d``, f_d ∈ R^R) rather than from a full D×256 output layer, which would need 784·256
outputs per hidden unit (160M weights for FVSBN); with R = 1 and K = 1 this is the binary model exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from trainers.common.runs import module_device
from trainers.common.seeding import generator

# --------------------------------------------------------------------------------------------- shared


def nll_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per example, nats ``[B]``; logits ``[B, K, C, H, W]``, x uint8 values."""
    if logits.shape[1] == 1:
        per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0], x.float(), reduction="none")
    else:
        per_pixel = F.cross_entropy(logits, x.long(), reduction="none")
    return per_pixel.flatten(1).sum(1)


def value_dtype(levels: int) -> torch.dtype:
    """The integer dtype that holds ``levels`` values: uint8 for pixels, int64 for larger alphabets (codebooks)."""
    return torch.uint8 if levels <= 256 else torch.int64


def draw(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One value per row from logits ``[B, K]`` and uniforms ``u [B]`` (inverse CDF, float64), so the value
    depends only on that sample's own uniform; dtype ``value_dtype(K)``."""
    if logits.shape[1] == 1:
        return (u < torch.sigmoid(logits[:, 0].double())).to(torch.uint8)
    cdf = torch.softmax(logits.double(), dim=1).cumsum(1)
    return (cdf < u[:, None]).sum(1).clamp(max=logits.shape[1] - 1).to(value_dtype(logits.shape[1]))


def sample_uniforms(num: int, num_dims: int, *, seed: int, first: int, device=None) -> torch.Tensor:
    """float64 ``[num, D]``: sample ``j``'s uniforms come from ``generator(seed, first + j)`` alone (drawn on the
    CPU, returned on ``device``: where the model samples)."""
    if num == 0:
        return torch.zeros(0, num_dims, dtype=torch.float64, device=device)
    return torch.stack([torch.rand(num_dims, generator=generator(seed, first + j), dtype=torch.float64)
                        for j in range(num)]).to(device)


class Autoregressive(nn.Module):
    conditional = False
    sampling_note = ""

    def __init__(self, *, shape: tuple[int, int, int], levels: int):
        super().__init__()
        self.shape, self.levels = tuple(shape), levels
        self.num_dims = math.prod(shape)
        self.num_logits = 1 if levels == 2 else levels

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Values → the network's input: floats in [-1, 1] ``[B, C, ...]``, or, for categorical inputs
        (``embed``), each value's embedding ``[B, E, ...]``."""
        embed = getattr(self, "embed", None)
        if embed is not None:
            return embed(x[:, 0].long()).movedim(-1, 1)
        return x.float() * (2.0 / (self.levels - 1)) - 1.0

    def nll(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return nll_from_logits(self.logits(x, labels), x)

    def loss(self, x, labels=None, *, generator=None) -> torch.Tensor:
        return self.nll(x, labels).mean()

    def log_prob(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return -self.nll(x, labels).double()

    def sample_uncached(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """Raster-order sampling with a full forward pass per pixel (the reference for the cached samplers)."""
        c, h, w = self.shape
        device = module_device(self)
        u = sample_uniforms(num, self.num_dims, seed=seed, first=first, device=device).view(num, c, h, w)
        x = torch.zeros(num, c, h, w, dtype=value_dtype(self.levels), device=device)
        labels = None if labels is None else torch.as_tensor(labels).to(device)
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    x[:, k, i, j] = draw(self.logits(x, labels)[:, :, k, i, j], u[:, k, i, j])
        return x.cpu()


class PixelReadout(nn.Module):
    """Per-pixel features ``[B, D, R]`` → logits ``[B, D, K]``: identity for Bernoulli (R = K = 1), else
    ``b_d + f_d U_d`` with U_d ∈ R^{R×256}."""

    def __init__(self, num_dims: int, rank: int, num_logits: int):
        super().__init__()
        self.rank = 1 if num_logits == 1 else rank
        self.bias = nn.Parameter(torch.zeros(num_dims, num_logits))
        self.weight = None if num_logits == 1 else nn.Parameter(torch.randn(num_dims, self.rank, num_logits) / math.sqrt(self.rank))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            return f + self.bias
        return self.bias + torch.einsum("bdr,drk->bdk", f, self.weight)

    def at(self, f_d: torch.Tensor, d: int) -> torch.Tensor:
        """Logits ``[B, K]`` of pixel d from its features ``[B, R]``."""
        if self.weight is None:
            return f_d + self.bias[d]
        return self.bias[d] + f_d @ self.weight[d]


def to_image_logits(logits_bdk: torch.Tensor, shape) -> torch.Tensor:
    """``[B, D, K]`` → ``[B, K, C, H, W]``."""
    return logits_bdk.permute(0, 2, 1).reshape(len(logits_bdk), logits_bdk.shape[2], *shape)


# --------------------------------------------------------------------------------------------- FVSBN


class FVSBN(Autoregressive):
    """p(x_d | x_<d) = σ(b_d + Σ_{j<d} W_dj x_j): one logistic regression per pixel (multinomial, rank R, for
    8-bit data). pytorch-generative: 96.58 nats on dynamically binarised MNIST."""

    sampling_note = "per pixel one product of the drawn pixels with that pixel's row of W (O(D²) per image)"

    def __init__(self, *, shape, levels: int, rank: int = 8):
        super().__init__(shape=shape, levels=levels)
        d = self.num_dims
        self.readout = PixelReadout(d, rank, self.num_logits)
        r = self.readout.rank
        self.weight = nn.Parameter(torch.zeros(d * r, d))  # row d·R + r reads pixels j < d
        self.register_buffer("mask", torch.tril(torch.ones(d, d), diagonal=-1).repeat_interleave(r, 0), persistent=False)

    def logits(self, x, labels=None):
        b = len(x)
        f = F.linear(self.scaled(x).view(b, -1), self.weight * self.mask).view(b, self.num_dims, self.readout.rank)
        return to_image_logits(self.readout(f), self.shape)

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        device = module_device(self)
        u = sample_uniforms(num, self.num_dims, seed=seed, first=first, device=device)
        r = self.readout.rank
        xs = torch.zeros(num, self.num_dims, device=device)  # the drawn pixels, scaled; pixel d reads columns < d only
        x = torch.zeros(num, self.num_dims, dtype=torch.uint8, device=device)
        for d in range(self.num_dims):
            f = xs[:, :d] @ self.weight[d * r:(d + 1) * r, :d].T  # Σ_{j<d} W_dj x_j: [B, R]
            x[:, d] = draw(self.readout.at(f, d), u[:, d])
            xs[:, d] = self.scaled(x[:, d])
        return x.view(num, *self.shape).cpu()


# --------------------------------------------------------------------------------------------- NADE


class NADE(Autoregressive):
    """h_d = σ(c + W_{:,<d} x_<d), p(x_d | x_<d) = σ(b_d + V_d·h_d). The hidden pre-activation of pixel d+1
    is that of pixel d plus one column, which makes training O(DH) per image and sampling cacheable.
    pytorch-generative: 85.65 nats (500 hidden units)."""

    sampling_note = "cached: hidden pre-activation a_{d+1} = a_d + W[:, d] x_d"

    def __init__(self, *, shape, levels: int, hidden: int = 500, rank: int = 8):
        super().__init__(shape=shape, levels=levels)
        d = self.num_dims
        self.readout = PixelReadout(d, rank, self.num_logits)
        self.w = nn.Parameter(torch.randn(d, hidden) / math.sqrt(d))  # row j: what pixel j adds to a
        self.c = nn.Parameter(torch.zeros(hidden))
        self.v = nn.Parameter(torch.randn(d, hidden, self.readout.rank) / math.sqrt(hidden))

    def logits(self, x, labels=None):
        b = len(x)
        xs = self.scaled(x).view(b, -1)
        contributions = xs[:, :, None] * self.w[None]  # [B, D, H]
        a = self.c + F.pad(contributions.cumsum(1)[:, :-1], (0, 0, 1, 0))  # exclusive prefix sums: pixels j < d
        f = torch.einsum("bdh,dhr->bdr", torch.sigmoid(a), self.v)
        return to_image_logits(self.readout(f), self.shape)

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        device = module_device(self)
        u = sample_uniforms(num, self.num_dims, seed=seed, first=first, device=device)
        a = self.c.expand(num, -1).clone()
        x = torch.zeros(num, self.num_dims, dtype=torch.uint8, device=device)
        for d in range(self.num_dims):
            x[:, d] = draw(self.readout.at(torch.sigmoid(a) @ self.v[d], d), u[:, d])
            a += self.scaled(x[:, d])[:, None] * self.w[d]
        return x.view(num, *self.shape).cpu()


# --------------------------------------------------------------------------------------------- MADE


def made_masks(num_dims: int, hidden: tuple[int, ...], rank: int, *, order: torch.Tensor,
               g: torch.Generator) -> list[torch.Tensor]:
    """MADE connectivity (Germain et al. 2015, eq. 12-13): input d has degree order[d] ∈ 1..D, hidden unit k
    of layer l a degree m_l(k) ∈ [min m_{l−1}, D−1]; a weight exists iff m_l(k) ≥ m_{l−1}(j), and output
    d reads hidden k iff order[d] > m_L(k), so output d sees exactly the inputs earlier in the order."""
    degrees = [order]
    for size in hidden:
        low = int(degrees[-1].min())
        degrees.append(torch.randint(low, num_dims, (size,), generator=g))  # values low..D-1
    masks = [(degrees[l + 1][:, None] >= degrees[l][None, :]).float() for l in range(len(hidden))]
    out = (order[:, None] > degrees[-1][None, :]).float().repeat_interleave(rank, 0)  # [D·R, H_L]
    return masks + [out]


class MADE(Autoregressive):
    """A masked MLP D → H → … → D·R. With ``num_masks`` > 1 each training step uses one of ``num_masks``
    (order, connectivity) sets, and the model evaluated is their uniform mixture, log p(x) =
    log mean_m p_m(x) (the paper's ensemble, exact for the mixture). pytorch-generative: 84.87 nats."""

    sampling_note = "cached: the first layer's pre-activation is updated one input at a time"

    def __init__(self, *, shape, levels: int, hidden: tuple[int, ...] = (500,), rank: int = 8, num_masks: int = 1,
                 resample_order: bool = False, mask_seed: int = 0):
        super().__init__(shape=shape, levels=levels)
        d = self.num_dims
        self.readout = PixelReadout(d, rank, self.num_logits)
        r = self.readout.rank
        sizes = (d, *hidden, d * r)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.num_masks = num_masks
        orders, masks = [], [[] for _ in sizes[1:]]
        for m in range(num_masks):
            g = generator(mask_seed, m)
            order = torch.randperm(d, generator=g) + 1 if (resample_order and m > 0) else torch.arange(1, d + 1)
            orders.append(order)
            for l, mask in enumerate(made_masks(d, tuple(hidden), r, order=order, g=g)):
                masks[l].append(mask)
        self.register_buffer("orders", torch.stack(orders), persistent=False)  # [M, D]
        for l, stack in enumerate(masks):
            self.register_buffer(f"mask{l}", torch.stack(stack), persistent=False)  # [M, out, in]

    def _mask(self, l: int, m: int) -> torch.Tensor:
        return getattr(self, f"mask{l}")[m]

    def logits_with(self, x, m: int) -> torch.Tensor:
        h = self.scaled(x).view(len(x), -1)
        for l, layer in enumerate(self.layers):
            h = F.linear(h, layer.weight * self._mask(l, m), layer.bias)
            if l < len(self.layers) - 1:
                h = F.relu(h)
        f = h.view(len(x), self.num_dims, self.readout.rank)
        return to_image_logits(self.readout(f), self.shape)

    def logits(self, x, labels=None):
        return self.logits_with(x, 0)

    def loss(self, x, labels=None, *, generator=None):
        m = int(torch.randint(self.num_masks, (1,), generator=generator)) if self.num_masks > 1 else 0
        return nll_from_logits(self.logits_with(x, m), x).mean()

    def log_prob(self, x, labels=None):
        per_mask = torch.stack([-nll_from_logits(self.logits_with(x, m), x).double() for m in range(self.num_masks)])
        return torch.logsumexp(per_mask, 0) - math.log(self.num_masks)

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """Sample j picks its mask set from its own uniforms, then fills pixels in that set's order."""
        device = module_device(self)
        u = sample_uniforms(num, self.num_dims + 1, seed=seed, first=first, device=device)
        which = (u[:, -1] * self.num_masks).long().clamp(max=self.num_masks - 1)
        x = torch.zeros(num, self.num_dims, dtype=torch.uint8, device=device)
        for m in range(self.num_masks):
            rows = (which == m).nonzero().flatten()
            if len(rows):
                x[rows] = self._sample_order(len(rows), u[rows, :-1], m)
        return x.view(num, *self.shape).cpu()

    def _sample_order(self, num: int, u: torch.Tensor, m: int) -> torch.Tensor:
        first, rest = self.layers[0], self.layers[1:]
        w0 = first.weight * self._mask(0, m)
        a = first.bias.expand(num, -1).clone()  # first-layer pre-activation, grown one input at a time
        x = torch.zeros(num, self.num_dims, dtype=torch.uint8, device=u.device)
        r = self.readout.rank
        for d in torch.argsort(self.orders[m]).tolist():
            h = F.relu(a)
            for l, layer in enumerate(rest, start=1):
                h = F.linear(h, layer.weight * self._mask(l, m), layer.bias)
                if l < len(self.layers) - 1:
                    h = F.relu(h)
            x[:, d] = draw(self.readout.at(h[:, d * r:(d + 1) * r], d), u[:, d])
            a += self.scaled(x[:, d])[:, None] * w0[:, d]
        return x


# --------------------------------------------------------------------------------------------- PixelCNN


def groups(num_features: int, channels: int) -> torch.Tensor:
    """The colour channel each of ``num_features`` features belongs to: feature u → u·C // n (C equal groups;
    PixelRNN paper §3.4, Fig. 4). One channel: every feature in group 0."""
    return torch.arange(num_features) * channels // num_features


def centre_mask(kind: str, in_groups: torch.Tensor, out_groups: torch.Tensor) -> torch.Tensor:
    """``[O, I]``: which input feature an output feature may read at the position it predicts — input group g
    into output group c only if g < c (mask A: the first layer, which reads the image) or g ≤ c (mask B)."""
    return (out_groups[:, None] > in_groups[None]) if kind == "A" else (out_groups[:, None] >= in_groups[None])


class MaskedConv(nn.Conv2d):
    """A (kh × kw) convolution, zero-padded to keep the size, that reads the positions before the centre in full
    and, at the centre, input group g into output group c only if g < c (mask A) or g ≤ c (mask B); nothing
    after the centre (van den Oord et al. 2016a, §3.4). With one channel, mask A hides the centre and mask B
    keeps it; a 1×1 mask-B convolution is then a plain 1×1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel, *, kind: str, in_groups: torch.Tensor,
                 out_groups: torch.Tensor):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2))
        mask = torch.zeros(out_channels, in_channels, kh, kw)
        mask[:, :, :kh // 2] = 1  # rows above the centre
        mask[:, :, kh // 2, :kw // 2] = 1  # the centre row, left of the centre
        mask[:, :, kh // 2, kw // 2] = centre_mask(kind, in_groups, out_groups).float()
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x):
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)


def output_layers(features: int, out_channels: int, num_logits: int, colours: int) -> tuple[MaskedConv, MaskedConv]:
    """The two 1×1 mask-B output layers: features → ``out_channels`` → ``num_logits · colours`` logits, where
    logit k·C + c belongs to channel c (viewed as ``[B, K, C, H, W]``)."""
    hidden = groups(out_channels, colours)
    return (MaskedConv(features, out_channels, 1, kind="B", in_groups=groups(features, colours), out_groups=hidden),
            MaskedConv(out_channels, num_logits * colours, 1, kind="B", in_groups=hidden,
                       out_groups=torch.arange(num_logits * colours) % colours))


class ResidualBlock(nn.Module):
    """ReLU → 1×1 (2h → h) → ReLU → masked 3×3 B → ReLU → 1×1 (h → 2h), plus the input (PixelRNN Fig. 5); for
    colour images every convolution is mask B over the features' colour groups."""

    def __init__(self, channels: int, colours: int = 1):
        super().__init__()
        wide, narrow = groups(2 * channels, colours), groups(channels, colours)
        self.reduce = MaskedConv(2 * channels, channels, 1, kind="B", in_groups=wide, out_groups=narrow)
        self.conv = MaskedConv(channels, channels, 3, kind="B", in_groups=narrow, out_groups=narrow)
        self.expand = MaskedConv(channels, 2 * channels, 1, kind="B", in_groups=narrow, out_groups=wide)

    def forward(self, x):
        return x + self.expand(F.relu(self.conv(F.relu(self.reduce(F.relu(x))))))


class ConvAutoregressive(Autoregressive):
    """Convolutional models sample with every activation computed once (trainers/autoregressive/fast_sampling.py):
    one forward pass per image in all, instead of one per pixel (``sample_uncached``, the reference)."""

    sampling_note = "cached: every activation computed once, at its position (fast_sampling.py)"


class PixelCNN(ConvAutoregressive):
    """7×7 mask-A convolution, residual blocks with 3×3 mask-B convolutions, two 1×1 output layers
    (van den Oord et al. 2016a, Table 1 / §3.5); colour channels R → G → B within a pixel through the masks'
    feature groups (§3.4). pytorch-generative: 81.45 nats."""

    def __init__(self, *, shape, levels: int, channels: int = 64, num_blocks: int = 7, out_channels: int = 256):
        super().__init__(shape=shape, levels=levels)
        c = shape[0]
        if min(channels, out_channels) < c:
            raise ValueError(f"channels and out_channels must be ≥ the {c} colour channels (one feature group each)")
        self.first = MaskedConv(c, 2 * channels, 7, kind="A", in_groups=torch.arange(c),
                                out_groups=groups(2 * channels, c))
        self.blocks = nn.Sequential(*(ResidualBlock(channels, c) for _ in range(num_blocks)))
        self.out1, self.out2 = output_layers(2 * channels, out_channels, self.num_logits, c)

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        from trainers.autoregressive.fast_sampling import sample_pixelcnn

        return sample_pixelcnn(self, num, seed=seed, first=first)

    def logits(self, x, labels=None):
        h = self.blocks(self.first(self.scaled(x)))
        out = self.out2(F.relu(self.out1(F.relu(h))))
        b, _, rows, cols = out.shape
        return out.view(b, self.num_logits, self.shape[0], rows, cols)


class GatedLayer(nn.Module):
    """One gated layer (van den Oord et al. 2016b, Fig. 2). The vertical stack at row i sees input rows ≤ i
    (kernel (k//2 + 1) × k, padded on top only) and reaches the horizontal stack shifted down one row, so
    the horizontal stack at (i, j) sees every row above, whole; the horizontal stack sees its row's columns
    ≤ j (shifted right by one in the first layer, so never the pixel itself). Together: no blind spot.

    Colour (``colours`` C > 1; §2 of the paper, as PixelRNN §3.4): the horizontal stack's features are split
    into C groups and, at its own position, group c reads input groups ≤ c (the last column of ``h_conv`` and
    ``h_out``: mask B); the first layer, which reads the image shifted right, also reads the current pixel's
    channels < c through ``h_centre`` (1×1, mask A). The vertical stack reads only rows above the pixel it
    feeds, so it needs no mask."""

    def __init__(self, in_channels: int, channels: int, kernel: int, *, first: bool, num_classes: int,
                 colours: int = 1):
        super().__init__()
        self.k, self.first = kernel, first
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (kernel // 2 + 1, kernel))
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, kernel // 2 + 1))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        features = groups(channels, colours)
        self.h_out = MaskedConv(channels, channels, 1, kind="B", in_groups=features, out_groups=features)
        self.cond = nn.Embedding(num_classes, 4 * channels) if num_classes else None
        pre = features.repeat(2)  # the gate's two halves: feature u and u + channels share a group
        h_mask = torch.ones(2 * channels, in_channels, 1, kernel // 2 + 1)
        if not first:  # the last column is the current position
            h_mask[:, :, 0, -1] = centre_mask("B", groups(in_channels, colours), pre).float()
        self.register_buffer("h_mask", h_mask, persistent=False)
        self.h_centre = (MaskedConv(in_channels, 2 * channels, 1, kind="A", in_groups=torch.arange(colours),
                                    out_groups=pre) if first and colours > 1 else None)

    def forward(self, v, h, labels=None):
        p = self.k // 2
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))  # rows i−p … i of the vertical input
        h_in = F.pad(h, (1, 0))[..., :-1] if self.first else h  # first layer: columns < j only
        h_pre = (F.conv2d(F.pad(h_in, (p, 0, 0, 0)), self.h_conv.weight * self.h_mask, self.h_conv.bias)
                 + self.v_to_h(F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]))
        if self.h_centre is not None:  # the current pixel's earlier channels
            h_pre = h_pre + self.h_centre(h)
        if self.cond is not None:
            cv, ch = self.cond(labels)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        v_out = gate(v_pre)
        h_out = self.h_out(gate(h_pre))
        return v_out, (h_out if self.first else h + h_out)


def gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedPixelCNN(ConvAutoregressive):
    """A 7×7 first gated layer, then 3×3 gated layers with residual horizontal stacks, then two 1×1 output
    layers; with ``num_classes`` > 0, p(x | y) with a class embedding added to every gate (conditional
    likelihoods are not comparable with unconditional ones). pytorch-generative: 81.50 nats.

    ``embedding`` > 0: the values are categories, not intensities (a VQ-VAE's code indices, van den Oord et al.
    2017 §4): each is read through a learned ``embedding``-dimensional vector instead of being scaled to
    [−1, 1]; ``levels`` may then exceed 256 (values int64). Single-channel inputs only."""

    def __init__(self, *, shape, levels: int, channels: int = 64, num_layers: int = 7, out_channels: int = 256,
                 num_classes: int = 0, embedding: int = 0):
        super().__init__(shape=shape, levels=levels)
        c = shape[0]
        if embedding and c != 1:
            raise ValueError(f"embedded (categorical) inputs need one channel, got shape {tuple(shape)}")
        if levels > 256 and not embedding:
            raise ValueError(f"{levels} levels do not fit uint8 pixels; categorical inputs need embedding > 0")
        self.conditional = num_classes > 0
        self.embed = nn.Embedding(levels, embedding) if embedding else None
        if min(channels, out_channels) < c:
            raise ValueError(f"channels and out_channels must be ≥ the {c} colour channels (one feature group each)")
        first_in = embedding or c
        self.layers = nn.ModuleList(
            GatedLayer(first_in if l == 0 else channels, channels, 7 if l == 0 else 3, first=l == 0,
                       num_classes=num_classes, colours=c)
            for l in range(num_layers)
        )
        self.out1, self.out2 = output_layers(channels, out_channels, self.num_logits, c)

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        from trainers.autoregressive.fast_sampling import sample_gated

        return sample_gated(self, num, seed=seed, first=first, labels=labels)

    def logits(self, x, labels=None):
        if self.conditional and labels is None:
            raise ValueError("a class-conditional Gated PixelCNN needs labels")
        v = h = self.scaled(x)
        for layer in self.layers:
            v, h = layer(v, h, labels)
        out = self.out2(F.relu(self.out1(F.relu(h))))
        b, _, rows, cols = out.shape
        return out.view(b, self.num_logits, self.shape[0], rows, cols)
