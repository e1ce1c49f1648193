"""Cached sampling for PixelCNN and Gated PixelCNN: every activation is computed once, at one position per step.

The naive sampler (``Autoregressive.sample_uncached``) runs the whole network on the whole image for every pixel:
H·W full forward passes per image. But in a masked-convolution network the activation of layer l at position p
depends only on layer l−1 at positions ≤ p in raster order (mask B; mask A on the input: < p). So when pixel p is
about to be drawn, every layer's activation at p can be computed from activations already cached, and nothing
computed earlier ever changes. Sampling then costs one forward pass per image in total, done one position at a
time with the whole batch in each small matrix product — the idea of "Fast PixelCNN++" (Ramachandran et al.
2017, github.com/PrajitR/fast-pixel-cnn), written here for two of this package's architectures (the others:
Row LSTM / Diagonal BiLSTM in fast_sampling_rnn.py, PixelCNN++ in fast_sampling_pp.py):

    PixelCNN        per pixel p: first (mask A 7×7) at p → per block: m_b(p) = relu(reduce(relu(h(p)))),
                    h(p) += expand(relu(conv3×3_B(m_b) at p)) → the 1×1 output layers → draw x(p).
                    Colour: once per channel c of p, each pass with p's channels < c drawn (the masks keep
                    the rest out of the logits of c); the last pass leaves every activation at p final, as no
                    activation at p reads p's last channel.
    GatedPixelCNN   the vertical stack at row i reads input row i in full (columns j + k//2 included) and feeds
                    the horizontal stack only from row i + 1, so it is computed a whole row at a time, once row
                    i is drawn; the horizontal stack runs per pixel (per channel, for colour) from its own
                    row's columns ≤ j.

A convolution at one position is the dot product of its (masked) kernel with the window of the cached,
zero-padded input map there (padding gives the same bias-only values as the network's own padding). The
products are in float32 like the network's own convolutions but summed in a different order, so logits agree to
float32 rounding and the drawn values equal the naive sampler's (tests/test_fast_sampling.py) except when a
uniform falls within rounding of a CDF step.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from trainers.autoregressive.models import (GatedPixelCNN, MaskedConv, PixelCNN, draw, gate, sample_uniforms,
                                           value_dtype)
from trainers.common.runs import module_device

BATCH = 500  # samples at once: the cached maps are ~15 × B × 2C × (H + 6) × (W + 6) floats


def conv_at(x_padded: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, top: int, left: int) -> torch.Tensor:
    """One output position of a convolution: the kernel ``weight [O, I, kh, kw]`` against the window of
    ``x_padded [B, I, ·, ·]`` whose top-left corner is (top, left). Returns ``[B, O]``."""
    kh, kw = weight.shape[2:]
    window = x_padded[:, :, top:top + kh, left:left + kw].reshape(len(x_padded), -1)
    return F.linear(window, weight.reshape(len(weight), -1), bias)


def pointwise(conv: torch.nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """A 1×1 convolution at one position, with its colour mask if it has one: ``[B, I] → [B, O]``."""
    weight = conv.masked_weight() if isinstance(conv, MaskedConv) else conv.weight
    return F.linear(h, weight[:, :, 0, 0], conv.bias)


@torch.inference_mode()
def sample_pixelcnn(model: PixelCNN, num: int, *, seed: int, first: int = 0) -> torch.Tensor:
    return _batched(_pixelcnn_batch, model, num, seed=seed, first=first, labels=None)


@torch.inference_mode()
def sample_gated(model: GatedPixelCNN, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
    if model.conditional and labels is None:
        raise ValueError("a class-conditional Gated PixelCNN needs labels")
    return _batched(_gated_batch, model, num, seed=seed, first=first, labels=labels)


def _batched(fn, model, num: int, *, seed: int, first: int, labels, depth: int | None = None) -> torch.Tensor:
    """Batches of at most BATCH samples on the model's device; uint8 (or int64) on the CPU. ``fn`` gets the
    batch's uniforms ``[B, depth, H, W]``: ``depth`` per pixel (default C, one per channel; PixelCNN++ draws C + 1),
    sample k's from ``(seed, first + k)`` as ``sample_uniforms`` makes them for the whole count at once."""
    c, h, w = model.shape
    depth = c if depth is None else depth
    device = module_device(model)
    out = [torch.zeros(0, c, h, w, dtype=value_dtype(model.levels))]
    for start in range(0, num, BATCH):
        stop = min(num, start + BATCH)
        u = sample_uniforms(stop - start, depth * h * w, seed=seed, first=first + start, device=device)
        batch_labels = None if labels is None else torch.as_tensor(labels)[start:stop].to(device)
        out.append(fn(model, u.view(-1, depth, h, w), batch_labels).cpu())
    return torch.cat(out)


def _zeros_like_params(model):
    """A ``torch.zeros`` for the cached maps, in the network's dtype (float32, or float64 in the tests) and on
    its device."""
    param = next(model.parameters())
    return lambda *shape: torch.zeros(*shape, dtype=param.dtype, device=param.device)


def _draw_channel(model, logits: torch.Tensor, u: torch.Tensor, x: torch.Tensor, i: int, j: int, k: int) -> None:
    """Write channel k of pixel (i, j) from the output layer's ``[B, K·C]`` logits (logit n·C + k is channel k's)."""
    x[:, k, i, j] = draw(logits.view(len(x), model.num_logits, model.shape[0])[:, :, k], u[:, k, i, j])


def _scaled_pixel(model, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return model.scaled(x[:, :, i, j])


def _pixelcnn_batch(model: PixelCNN, u: torch.Tensor, labels) -> torch.Tensor:
    b, (c, h, w) = len(u), model.shape
    x = torch.zeros(b, c, h, w, dtype=torch.uint8, device=u.device)
    zeros = _zeros_like_params(model)
    k0 = model.first.kernel_size[0]
    p0 = k0 // 2
    inputs = zeros(b, c, h + 2 * p0, w + 2 * p0)  # scaled x, zero-padded like the first conv's padding
    first_w = model.first.masked_weight()
    blocks = [(blk, blk.conv.masked_weight()) for blk in model.blocks]
    mids = [zeros(b, blk.conv.in_channels, h + 2, w + 2) for blk, _ in blocks]  # m_b maps, padded by 1
    for i in range(h):
        for j in range(w):
            for k in range(c):  # colour: channel k's logits read this pixel's channels < k, so one pass each
                a = conv_at(inputs, first_w, model.first.bias, i, j)  # mask A: inputs before (i, j, k)
                for (blk, wb), mid in zip(blocks, mids):
                    mid[:, :, i + 1, j + 1] = F.relu(pointwise(blk.reduce, F.relu(a)))
                    a = a + pointwise(blk.expand, F.relu(conv_at(mid, wb, blk.conv.bias, i, j)))
                logits = pointwise(model.out2, F.relu(pointwise(model.out1, F.relu(a))))
                _draw_channel(model, logits, u, x, i, j, k)
                inputs[:, :, i + p0, j + p0] = _scaled_pixel(model, x, i, j)
    return x


def _gated_batch(model: GatedPixelCNN, u: torch.Tensor, labels) -> torch.Tensor:
    b, (c, h, w) = len(u), model.shape
    x = torch.zeros(b, c, h, w, dtype=value_dtype(model.levels), device=u.device)
    zeros = _zeros_like_params(model)
    layers = list(model.layers)
    pads = [layer.k // 2 for layer in layers]
    conds = [None if layer.cond is None else layer.cond(labels).chunk(2, dim=1) for layer in layers]
    # Vertical stack: v_in[l] is layer l's vertical input (scaled x for l = 0), padded p on top, left and right.
    v_in = [zeros(b, layer.v_conv.in_channels, h + p, w + 2 * p) for layer, p in zip(layers, pads)]
    v_pre_prev = [None] * len(layers)  # each layer's v_pre of the row above: what reaches its horizontal stack
    # Horizontal stack: h_in[l] is one row of layer l's horizontal input, padded p on the left (+1 for the
    # first layer's shift right by one column).
    h_weights = [layer.h_conv.weight * layer.h_mask for layer in layers]
    for i in range(h):
        h_in = [zeros(b, layer.h_conv.in_channels, 1, w + p + (1 if layer.first else 0))
                for layer, p in zip(layers, pads)]
        for j in range(w):
            for k in range(c):  # colour: channel k's logits read this pixel's channels < k, so one pass each
                pixel = _scaled_pixel(model, x, i, j)  # channels ≥ k not drawn yet: masked out where read
                a = None
                for l, (layer, p) in enumerate(zip(layers, pads)):
                    h_pre = conv_at(h_in[l], h_weights[l], layer.h_conv.bias, 0, j)
                    above = (v_pre_prev[l][:, :, j] if v_pre_prev[l] is not None
                             else zeros(b, layer.v_to_h.in_channels))
                    h_pre = h_pre + pointwise(layer.v_to_h, above)
                    if layer.h_centre is not None:
                        h_pre = h_pre + pointwise(layer.h_centre, pixel)
                    if conds[l] is not None:
                        h_pre = h_pre + conds[l][1]
                    h_out = pointwise(layer.h_out, gate(h_pre))
                    a = h_out if layer.first else a + h_out
                    if l + 1 < len(layers):
                        h_in[l + 1][:, :, 0, j + pads[l + 1]] = a
                logits = pointwise(model.out2, F.relu(pointwise(model.out1, F.relu(a))))
                _draw_channel(model, logits, u, x, i, j, k)
            pixel = _scaled_pixel(model, x, i, j)
            h_in[0][:, :, 0, j + pads[0] + 1] = pixel  # first layer: columns < j + 1 for the next pixel
            v_in[0][:, :, i + pads[0], j + pads[0]] = pixel
        # Row i is drawn: run the vertical stack of every layer on it, a whole row at once.
        for l, (layer, p) in enumerate(zip(layers, pads)):
            band = v_in[l][:, :, i:i + p + 1]  # input rows i − p … i (padded rows are zeros)
            v_pre = F.conv2d(band, layer.v_conv.weight, layer.v_conv.bias)[:, :, 0]  # [B, 2C, W]
            v_pre_prev[l] = v_pre  # what v_to_h reads: before the class term (GatedLayer.forward)
            if conds[l] is not None:
                v_pre = v_pre + conds[l][0][:, :, None]
            if l + 1 < len(layers):
                q = pads[l + 1]
                v_in[l + 1][:, :, i + q, q:q + w] = gate(v_pre.unsqueeze(2))[:, :, 0]
    return x
