"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016a, §3 and Table 1), read top to bottom: channel
masks, the two spatial LSTM layers — Row LSTM and Diagonal BiLSTM — inside residual blocks, between a 7×7 mask-A
convolution and two 1×1 mask-B output layers, with a 256-way softmax per channel (or a Bernoulli for binarised
data).

    first layer     7×7 convolution, mask A (never the pixel itself)
    h residual      2h features in; the LSTM's input-to-state makes 4h gate pre-activations (h per gate), its
    blocks          output (h) goes through a 1×1 convolution back to 2h and the block's input is added (Fig. 5)
    Row LSTM        input-to-state: a 1×k convolution along the row, masked (mask B: columns ≤ j); state-to-
                    state: a 1-D k convolution of the previous row's hidden state, unmasked; rows are computed
                    top to bottom, a whole row at once, so the receptive field is a triangle above the pixel
    Diagonal        input-to-state: 1×1; the feature map is skewed (row i shifted right by i) so that the
    BiLSTM          diagonals become columns; state-to-state: a 2×1 convolution of the previous column, which
                    in the unskewed map reads the pixel to the left and the one above. The right-to-left
                    direction is the same on the mirrored map, and its output is shifted down one row before
                    it is added to the left-to-right one, so that it never sees the current row (§3.2)
    output          ReLU → 1×1 → ReLU → 1×1 to the logits

Colour images (§3.4, Fig. 4): every layer's features are split into C groups, one per colour channel, and the
convolutions that read the current pixel are masked so that group c reads input groups < c (mask A, the first
layer: R sees no channel of its pixel, G sees R, B sees R and G) or ≤ c (mask B, every later layer); positions
strictly before the pixel are read in full. The state-to-state convolutions read only earlier pixels (the row
above; the pixels to the left and above) and stay unmasked, and the LSTM's elementwise updates keep each unit in
its group. Sampling then draws channel by channel; ``PixelRNN.sample`` computes each state once, at its position,
as soon as the pixels it reads are drawn (trainers/autoregressive/fast_sampling_rnn.py), ``sample_uncached`` runs
a forward pass per channel (the reference). Gates follow the paper's eq. 3: [o, f, i, g] = [σ, σ, σ, tanh](K^ss ⊛ h_{i−1} + K^is ⊛ x_i), c_i = f ⊙ c_{i−1} +
i ⊙ g, h_i = o ⊙ tanh(c_i).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainers.autoregressive.models import (Autoregressive, MaskedConv, draw, groups, output_layers, sample_uniforms,
                                              value_dtype)
from trainers.common.runs import module_device


def lstm_update(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step on pre-activations ``[B, 4h, ...]`` (eq. 3): returns (hidden, cell)."""
    o, f, i, g = gates.chunk(4, dim=1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


class RowLSTM(nn.Module):
    """A residual Row LSTM block (§3.1): row i's state reads row i − 1's hidden state at columns j − k//2 …
    j + k//2 and the block input's row i at columns ≤ j."""

    def __init__(self, hidden: int, kernel: int = 3, *, channels: int = 1):
        super().__init__()
        self.hidden = hidden
        block, gates, units = groups(2 * hidden, channels), groups(hidden, channels).repeat(4), groups(hidden, channels)
        self.input_to_state = MaskedConv(2 * hidden, 4 * hidden, (1, kernel), kind="B", in_groups=block,
                                         out_groups=gates)  # along the row: columns ≤ j
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2)
        self.up = MaskedConv(hidden, 2 * hidden, 1, kind="B", in_groups=units, out_groups=block)

    def forward(self, x):
        b, _, rows, cols = x.shape
        gates_x = self.input_to_state(x)  # all rows at once: it reads only its own row
        h = c = x.new_zeros(b, self.hidden, cols)
        out = []
        for i in range(rows):
            h, c = lstm_update(gates_x[:, :, i] + self.state_to_state(h), c)
            out.append(h)
        return x + self.up(torch.stack(out, dim=2))


def skew(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, C, H, W + H − 1]`` with row i moved right by i (Fig. 3): column j of the result
    is the diagonal i + j' = j of the image."""
    b, c, rows, cols = x.shape
    out = x.new_zeros(b, c, rows, cols + rows - 1)
    for i in range(rows):
        out[:, :, i, i:i + cols] = x[:, :, i]
    return out


def unskew(y: torch.Tensor, cols: int) -> torch.Tensor:
    return torch.stack([y[:, :, i, i:i + cols] for i in range(y.shape[2])], dim=2)


class DiagonalLSTM(nn.Module):
    """One direction of the Diagonal BiLSTM (§3.2), left to right: on the skewed map, column j's state reads
    column j − 1's hidden state at rows i − 1 and i (a 2×1 convolution), i.e. the pixels above and to the
    left in the image."""

    def __init__(self, hidden: int, *, channels: int = 1):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv(2 * hidden, 4 * hidden, 1, kind="B", in_groups=groups(2 * hidden, channels),
                                         out_groups=groups(hidden, channels).repeat(4))
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2)  # padded one row on top: rows i − 1, i

    def forward(self, x):
        b, _, rows, cols = x.shape
        gates_x = skew(self.input_to_state(x))
        h = c = x.new_zeros(b, self.hidden, rows)
        out = []
        for j in range(gates_x.shape[3]):
            h, c = lstm_update(gates_x[..., j] + self.state_to_state(F.pad(h, (1, 0))), c)
            out.append(h)
        return unskew(torch.stack(out, dim=3), cols)


class DiagonalBiLSTM(nn.Module):
    """A residual Diagonal BiLSTM block: left-to-right plus the right-to-left direction (the same layer on the
    mirrored map) shifted down one row, 1×1 back to 2h, plus the input."""

    def __init__(self, hidden: int, *, channels: int = 1):
        super().__init__()
        self.left, self.right = DiagonalLSTM(hidden, channels=channels), DiagonalLSTM(hidden, channels=channels)
        self.up = MaskedConv(hidden, 2 * hidden, 1, kind="B", in_groups=groups(hidden, channels),
                             out_groups=groups(2 * hidden, channels))

    def forward(self, x):
        right = self.right(x.flip(3)).flip(3)  # sees the pixels above and to the right, and the pixel itself
        right = F.pad(right, (0, 0, 1, 0))[:, :, :-1]  # … so shift it down a row: row i − 1 and above only
        return x + self.up(self.left(x) + right)


class PixelRNN(Autoregressive):
    """``layer`` = "row" (Row LSTM) or "diagonal" (Diagonal BiLSTM); ``num_layers`` residual LSTM blocks of h =
    ``hidden`` units. The paper's binarised-MNIST model: 7 Diagonal BiLSTM layers, h = 16 (CIFAR-10: 12 layers,
    h = 128)."""

    sampling_note = ("cached: per pixel (per channel for colour) one LSTM step per layer at that position, reading the "
                     "states of earlier pixels, each computed once (fast_sampling_rnn.py)")

    def __init__(self, *, shape, levels: int, layer: str = "diagonal", hidden: int = 16, num_layers: int = 7,
                 out_channels: int = 256, kernel: int = 3):
        super().__init__(shape=shape, levels=levels)
        c = shape[0]
        if layer not in ("row", "diagonal"):
            raise ValueError(f"layer must be 'row' or 'diagonal', got {layer!r}")
        if min(hidden, out_channels) < c:
            raise ValueError(f"hidden and out_channels must be ≥ the {c} channels (one feature group each)")
        block = groups(2 * hidden, c)
        self.first = MaskedConv(c, 2 * hidden, 7, kind="A", in_groups=torch.arange(c), out_groups=block)
        self.blocks = nn.Sequential(*(RowLSTM(hidden, kernel, channels=c) if layer == "row"
                                      else DiagonalBiLSTM(hidden, channels=c) for _ in range(num_layers)))
        self.out1, self.out2 = output_layers(2 * hidden, out_channels, self.num_logits, c)

    def network(self, xs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, C, H, W]`` from the scaled image ``xs`` ``[B, C, H, W]`` (differentiable in ``xs``)."""
        out = self.out2(F.relu(self.out1(F.relu(self.blocks(self.first(xs))))))
        b, _, rows, cols = out.shape
        return out.view(b, self.num_logits, self.shape[0], rows, cols)

    def logits(self, x, labels=None):
        return self.network(self.scaled(x))

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """Cached (trainers/autoregressive/fast_sampling_rnn.py): each LSTM state computed once, at its position,
        when the pixels it reads are drawn; the same values as ``sample_uncached`` for the same seed."""
        from trainers.autoregressive.fast_sampling_rnn import sample_pixelrnn

        return sample_pixelrnn(self, num, seed=seed, first=first)

    @torch.inference_mode()
    def sample_uncached(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """The reference sampler: raster order, a forward pass per channel of every pixel; row i's logits are
        computed from rows 0 … i only (every layer reads rows at or above its output row), half the work of the
        whole-image pass (``Autoregressive.sample_uncached``) for the same values."""
        c, h, w = self.shape
        device = module_device(self)
        u = sample_uniforms(num, self.num_dims, seed=seed, first=first, device=device).view(num, c, h, w)
        x = torch.zeros(num, c, h, w, dtype=value_dtype(self.levels), device=device)
        if num == 0:
            return x.cpu()
        for i in range(h):
            for j in range(w):
                for k in range(c):  # channel k's logits read channels < k of this pixel: one pass per channel
                    x[:, k, i, j] = draw(self.logits(x[:, :, :i + 1])[:, :, k, i, j], u[:, k, i, j])
        return x.cpu()
