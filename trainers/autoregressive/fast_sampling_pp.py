"""Cached sampling for PixelCNN++: every activation is computed once, at its position, when the pixels it reads
are drawn — the per-activation caching of Ramachandran et al. 2017, "Fast Generation for Convolutional
Autoregressive Models" (Fast PixelCNN++, github.com/PrajitR/fast-pixel-cnn), written for this package's network
(trainers/autoregressive/pixelcnnpp.py, ``PixelCNNpp.params``) instead of a forward pass per pixel
(``PixelCNNpp.sample_uncached``).

Why it is exact: every convolution of the network is shifted so that output row r reads input rows r − 1 and r
only (kernel height 2, or 1) — never a row below — and the ul stream's also reads columns ≤ c only. Tracking
which pixels each activation depends on, at resolution level s (rows and columns 2^s times smaller):

    u stream (down-shifted)           row a depends on pixels of rows < 2^s·a only: the whole row a of every u
                                      map is final when image row 2^s·a begins, and is computed then, at once
    ul stream (down-right-shifted)    (a, b) depends on pixels before (2^s·a, 2^s·b) in raster order (and on u
                                      at (a, b)): it is final when that pixel is about to be drawn, and computed
                                      then — one position per layer, at the lower levels only at the pixels whose
                                      row and column are multiples of 2^s
    up-/down-sampling                 the stride-2 convolutions read rows 2a − 1, 2a (columns 2b − 1 … 2b for
                                      ul) of the level above; the ×2 transposed convolutions give full-resolution
                                      row r from row r // 2 only (kernel height 2 = stride), and ul's (r, c) from
                                      (r // 2, c // 2) with kernel tap (r % 2, c % 2)
    first layers                      u = down_shift(conv(rows r − 1, r)): row i from image rows i − 2, i − 1,
                                      computed when row i − 1 is drawn; ul = down_shift(1×3 conv of row i − 1)
                                      + right_shift(2×1 conv at (i − 1 … i, j − 1)), the latter when pixel
                                      (i, j − 1) is drawn

So when pixel (i, j) is drawn, everything it reads is final, and nothing computed ever changes: sampling costs
one forward pass per image in all. Since no kernel is taller than two rows, each cached map keeps only its rows
r − 1 and r (``TwoRows``). The mixture parameters of (i, j) are the network's up to the float32 rounding of
sums taken in another order (~1e-7 of the parameters' size in the tests; float64 ~1e-14:
tests/test_fast_sampling.py), and the pixel is drawn by ``PixelCNNpp.draw_pixel`` from the same uniforms as the
naive sampler, so the drawn values are equal unless a uniform falls within that rounding of a CDF step.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from trainers.autoregressive.fast_sampling import _batched, _zeros_like_params, conv_at
from trainers.autoregressive.models import value_dtype
from trainers.autoregressive.pixelcnnpp import DownRightShiftedConv2d, GatedResnet, PixelCNNpp, concat_elu


@torch.inference_mode()
def sample_pixelcnnpp(model: PixelCNNpp, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
    return _batched(_sample_batch, model, num, seed=seed, first=first, labels=labels, depth=model.shape[0] + 1)


@torch.inference_mode()
def cached_params(model: PixelCNNpp, x: torch.Tensor, labels=None) -> torch.Tensor:
    """The mixture parameters ``[B, P, H, W]`` the cached sampler computes when the pixels it draws are ``x``'s
    (teacher forcing): equal to ``model.params(model.scaled(x), labels)`` up to float rounding (the tests)."""
    b, (_, h, w) = len(x), model.shape
    out = _zeros_like_params(model)(b, model.out.out_channels, h, w)

    def given(i, j, params):
        out[:, :, i, j] = params
        return x[:, :, i, j]

    _run(model, b, labels, given)
    return out


def _sample_batch(model: PixelCNNpp, u: torch.Tensor, labels) -> torch.Tensor:
    x = torch.zeros(len(u), *model.shape, dtype=value_dtype(model.levels), device=u.device)

    def drawn(i, j, params):
        x[:, :, i, j] = model.draw_pixel(params, u[:, :, i, j])
        return x[:, :, i, j]

    _run(model, len(u), labels, drawn)
    return x


def _run(model: PixelCNNpp, b: int, labels, pick) -> None:
    """Raster order: ``pick(i, j, params [B, P])`` returns pixel (i, j)'s values ``[B, C]``."""
    if model.conditional and labels is None:
        raise ValueError("a class-conditional PixelCNN++ needs labels")
    net = CachedNetwork(model, b, labels)
    for i in range(model.shape[1]):
        net.start_row(i)
        for j in range(model.shape[2]):
            net.put_pixel(i, j, pick(i, j, net.params_at(i, j)))
        net.end_row(i)


class TwoRows:
    """Rows r − 1 and r of a feature map, zero-padded by ``left`` and ``right`` columns: all that a shifted
    convolution of height ≤ 2 reads for its output row r. ``advance`` moves on to row r + 1 (row r becomes the
    row above; the new row starts as zeros: above row 0 that is the convolutions' zero padding)."""

    def __init__(self, zeros, b: int, channels: int, width: int, left: int, right: int):
        self.data = zeros(b, channels, 2, left + width + right)
        self.left, self.width = left, width

    def advance(self) -> None:
        self.data[:, :, 0] = self.data[:, :, 1]
        self.data[:, :, 1] = 0

    def put(self, j: int, value: torch.Tensor) -> None:
        """Column j of row r: ``[B, channels]``."""
        self.data[:, :, 1, self.left + j] = value

    def put_row(self, value: torch.Tensor) -> None:
        """All of row r: ``[B, channels, 1, width]``."""
        self.data[:, :, 1:, self.left:self.left + self.width] = value


def padded_rows(conv: torch.nn.Conv2d, zeros, b: int, width: int) -> TwoRows:
    """The input rows of ``conv`` (a down-shifted or down-right-shifted convolution), padded as its forward pads."""
    kw = conv.kernel_size[1]
    left, right = (kw - 1, 0) if isinstance(conv, DownRightShiftedConv2d) else ((kw - 1) // 2, (kw - 1) // 2)
    return TwoRows(zeros, b, conv.in_channels, width, left, right)


def rows_conv(conv: torch.nn.Conv2d, rows: TwoRows, stride: int = 1) -> torch.Tensor:
    """A down-shifted convolution's output row r ``[B, O, 1, W / stride]`` from its input rows r − 1, r."""
    kh = conv.kernel_size[0]
    return F.conv2d(rows.data[:, :, 2 - kh:], conv.weight, conv.bias, stride=(1, stride))


def position_conv(conv: torch.nn.Conv2d, rows: TwoRows, column: int) -> torch.Tensor:
    """A down-right-shifted convolution's output ``[B, O]`` at (r, ``column``) of its own (strided) grid: the
    kernel's window ends at input column ``column`` · stride."""
    kh = conv.kernel_size[0]
    return conv_at(rows.data[:, :, 2 - kh:], conv.weight, conv.bias, 0, column * conv.stride[1])


class BlockCache:
    """A gated ResNet block (``GatedResnet.forward``) during sampling, with its two convolutions' inputs,
    concat_elu(x) and concat_elu(c1), cached as ``TwoRows`` (dropout is off: the model samples in eval mode)."""

    def __init__(self, block: GatedResnet, zeros, b: int, width: int, labels):
        self.block = block
        self.x, self.c1 = (padded_rows(conv, zeros, b, width) for conv in (block.conv1, block.conv2))
        self.cond = None if block.cond is None else block.cond(labels)  # [B, 2f]: the class term of c2

    def advance(self) -> None:
        self.x.advance()
        self.c1.advance()

    def _out(self, x: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        a, b = c2.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)

    def row(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """The u stream: output row r ``[B, f, 1, W]`` from input row r (and the short-cut's row r)."""
        block = self.block
        self.x.put_row(concat_elu(x))
        c1 = rows_conv(block.conv1, self.x)
        if block.aux is not None:
            c1 = c1 + block.aux(concat_elu(aux))
        self.c1.put_row(concat_elu(c1))
        c2 = rows_conv(block.conv2, self.c1)
        if self.cond is not None:
            c2 = c2 + self.cond[:, :, None, None]
        return self._out(x, c2)

    def at(self, j: int, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """The ul stream: output (r, j) ``[B, f]`` from input (r, j) (and the short-cut's (r, j))."""
        block = self.block
        self.x.put(j, concat_elu(x))
        c1 = position_conv(block.conv1, self.x, j)
        if block.aux is not None:
            c1 = c1 + F.linear(concat_elu(aux), block.aux.weight[:, :, 0, 0], block.aux.bias)
        self.c1.put(j, concat_elu(c1))
        c2 = position_conv(block.conv2, self.c1, j)
        if self.cond is not None:
            c2 = c2 + self.cond
        return self._out(x, c2)


class CachedNetwork:
    """``PixelCNNpp.params`` computed incrementally. Levels s = 0, 1, 2 are the resolutions H, H/2, H/4; at
    image row i, level s is at its row i >> s, and its buffers advance when i is a multiple of 2^s. The lists
    of activations per level mirror ``params``'s ``u_list`` / ``ul_list``, which the down pass pops from the end:
    ``up_u[s]`` holds level s's u rows (the level's first map, then each up-pass block's output), ``up_ul[s]``
    the ul values at the level's current position; ``down_u[s]`` the down pass's u rows after each block, and
    ``down_ul[s]`` the down pass's final ul along the level's current row (what the ×2 upsampling reads)."""

    def __init__(self, model: PixelCNNpp, b: int, labels):
        self.model = model
        c, h, w = model.shape
        zeros = _zeros_like_params(model)
        f = model.out.in_channels
        widths = [w >> s for s in range(3)]
        if labels is not None:
            labels = torch.as_tensor(labels).to(model.out.weight.device)

        def blocks(module_list, s):
            return [BlockCache(blk, zeros, b, widths[s], labels) for blk in module_list]

        self.up_u_blocks = [blocks(model.up_u[s], s) for s in range(3)]
        self.up_ul_blocks = [blocks(model.up_ul[s], s) for s in range(3)]
        # the down pass's level index runs from the lowest resolution up: its level d is resolution level 2 − d
        self.down_u_blocks = [blocks(model.dn_u[2 - s], s) for s in range(3)]
        self.down_ul_blocks = [blocks(model.dn_ul[2 - s], s) for s in range(3)]
        # the inputs of the stride-2 convolutions into level s (s = 1, 2): level s − 1's last up-pass u and ul
        self.stride_u_in = [None] + [padded_rows(model.down_u_stride[s - 1], zeros, b, widths[s - 1]) for s in (1, 2)]
        self.stride_ul_in = [None] + [padded_rows(model.down_ul_stride[s - 1], zeros, b, widths[s - 1])
                                      for s in (1, 2)]
        # the image with its channel of ones, padded one column each side (u_init and ul_init_above pad 1 and 1;
        # ul_init_left, 2×1, pads none, so its window at column j − 1 starts at padded column j)
        self.image = TwoRows(zeros, b, c + 1, w, 1, 1)
        self.u_first = zeros(b, f, 1, w)  # u0 = down_shift(u_init): row i (zeros for row 0)
        self.ul_above = zeros(b, f, 1, w)  # down_shift(ul_init_above): row i (zeros for row 0)
        self.up_u, self.down_u = [None] * 3, [None] * 3
        self.up_ul = [None] * 3
        self.down_ul = [zeros(b, f, widths[s]) for s in range(3)]

    @staticmethod
    def levels_at(i: int) -> list[int]:
        """The levels whose row begins at image row (or column) i: those s for which 2^s divides i."""
        return [s for s in range(3) if i % (1 << s) == 0]

    def start_row(self, i: int) -> None:
        """Image row i begins: advance the buffers of the levels whose row begins here, and compute the whole
        rows of the u stream (final now: they read rows above only)."""
        model, starting = self.model, self.levels_at(i)
        self.image.advance()
        self.image.data[:, -1, 1, 1:-1] = 1.0  # the channel of ones over the image, zeros in the padding
        for s in starting:
            for cache in (*self.up_u_blocks[s], *self.up_ul_blocks[s], *self.down_u_blocks[s],
                          *self.down_ul_blocks[s]):
                cache.advance()
            if s < 2:
                self.stride_u_in[s + 1].advance()
                self.stride_ul_in[s + 1].advance()
        for s in starting:  # up pass, from the full resolution down
            u = self.u_first if s == 0 else rows_conv(model.down_u_stride[s - 1], self.stride_u_in[s], stride=2)
            self.up_u[s] = [u]
            for cache in self.up_u_blocks[s]:
                u = cache.row(u)
                self.up_u[s].append(u)
            if s < 2:
                self.stride_u_in[s + 1].put_row(u)
        for s in reversed(starting):  # down pass, from the lowest resolution that begins a row here up
            short_cuts = list(self.up_u[s])
            if s == 2:
                u = short_cuts.pop()
            else:  # ×2 upsampling: row r of level s is row r // 2 of level s + 1 through kernel row r % 2
                u = self._upsample_row(model.up_u_deconv[1 - s], self.down_u[s + 1][-1], (i >> s) % 2)
            self.down_u[s] = []
            for cache in self.down_u_blocks[s]:
                u = cache.row(u, short_cuts.pop())
                self.down_u[s].append(u)

    @staticmethod
    def _upsample_row(deconv, row: torch.Tensor, tap: int) -> torch.Tensor:
        """DownShiftedDeconv2d's output row 2a + tap ``[B, f, 1, 2W]`` from its input row a ``[B, f, 1, W]``: with
        kernel height 2 = stride, each output row reads one input row (the transposed convolution of that row
        alone gives the same sums), cropped to the centred columns as the module crops."""
        out = F.conv_transpose2d(row, deconv.weight, deconv.bias, stride=2)
        crop = (deconv.kernel_size[1] - 1) // 2
        return out[:, :, tap:tap + 1, crop:crop + 2 * row.shape[3]]

    @staticmethod
    def _upsample_at(deconv, value: torch.Tensor, tap_row: int, tap_col: int) -> torch.Tensor:
        """DownRightShiftedDeconv2d at output (2a + tap_row, 2b + tap_col) ``[B, f]`` from input (a, b): one tap."""
        return F.linear(value, deconv.weight[:, :, tap_row, tap_col].T, deconv.bias)

    def params_at(self, i: int, j: int) -> torch.Tensor:
        """The ul stream at (i, j) (and at (i >> s, j >> s) of the levels s for which both are multiples of 2^s),
        then the mixture parameters of pixel (i, j) ``[B, P]``."""
        model = self.model
        levels = [s for s in self.levels_at(i) if s in self.levels_at(j)]
        for s in levels:  # up pass
            col = j >> s
            if s == 0:
                ul = self.ul_above[:, :, 0, j]
                if j:  # right_shift(ul_init_left): the 2×1 convolution at (i − 1 … i, j − 1)
                    ul = ul + conv_at(self.image.data, model.ul_init_left.weight, model.ul_init_left.bias, 0, j)
            else:
                ul = position_conv(model.down_ul_stride[s - 1], self.stride_ul_in[s], col)
            self.up_ul[s] = [ul]
            for k, cache in enumerate(self.up_ul_blocks[s]):
                ul = cache.at(col, ul, self.up_u[s][k + 1][:, :, 0, col])
                self.up_ul[s].append(ul)
            if s < 2:
                self.stride_ul_in[s + 1].put(col, ul)
        for s in reversed(levels):  # down pass
            col = j >> s
            short_cuts = list(self.up_ul[s])
            if s == 2:
                ul = short_cuts.pop()
            else:
                ul = self._upsample_at(model.up_ul_deconv[1 - s], self.down_ul[s + 1][:, :, col // 2],
                                       (i >> s) % 2, col % 2)
            for k, cache in enumerate(self.down_ul_blocks[s]):
                ul = cache.at(col, ul, torch.cat([self.down_u[s][k][:, :, 0, col], short_cuts.pop()], 1))
            self.down_ul[s][:, :, col] = ul
        return F.linear(F.elu(self.down_ul[0][:, :, j]), model.out.weight[:, :, 0, 0], model.out.bias)

    def put_pixel(self, i: int, j: int, values: torch.Tensor) -> None:
        self.image.data[:, :-1, 1, self.image.left + j] = self.model.scaled(values)  # [B, C]; the ones stay

    def end_row(self, i: int) -> None:
        """Row i is drawn: the first layers' rows that read it, for row i + 1 (the down shift)."""
        model = self.model
        self.u_first = rows_conv(model.u_init, self.image)  # rows i − 1, i
        self.ul_above = rows_conv(model.ul_init_above, self.image)  # row i (kernel height 1)
