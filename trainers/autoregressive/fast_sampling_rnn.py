"""Cached sampling for PixelRNN (Row LSTM, Diagonal BiLSTM): every LSTM state is computed once, when the pixels
it depends on are drawn, instead of a forward pass over rows 0 … i for every pixel (``PixelRNN.sample_uncached``).

The network (trainers/autoregressive/pixelrnn.py) is a 7×7 mask-A convolution, residual LSTM blocks and two 1×1
mask-B output layers. Which states pixel (i, j) needs, and when each becomes final (van den Oord et al. 2016a,
§3.1–3.2):

    Row LSTM        state (i, j) = LSTM(K^is ⊛ block input of row i at columns j−k//2 … j (mask B: none to
                    the right), K^ss ⊛ h of row i−1 at columns j−k//2 … j+k//2, cell of (i−1, j)). Row i−1's
                    states are final once row i−1 is drawn, so K^ss ⊛ h_{i−1} is computed once per row, whole;
                    per pixel only position (i, j) of each layer is computed.
    Diagonal        left-to-right direction: the skewed map's column s = i + j reads column s−1 at rows i and
    BiLSTM          i−1 (DiagonalLSTM.forward: a 2-tap convolution of the previous column padded one row on
                    top), i.e. the hidden state of (i, j−1) and of (i−1, j), and the cell of (i, j−1): one LSTM
                    step per layer per pixel. To the left of column 0 the skewed map holds positions outside
                    the image, where the input term is zero but the recurrence still runs; their states depend
                    on the parameters only (each reads states further outside), so they are computed once
                    (``edge_states``) and stand in for (i, −1). The right-to-left direction enters row i only
                    through its row i−1 (the output is shifted down a row), so it is run along row i−1, right
                    to left, once that row is drawn.

Colour (§3.4): channel k of pixel (i, j) is drawn from a pass that reads channels < k of the pixel; the masks
make feature group g read only input channels < g of its own pixel, so one position-(i, j) pass per channel
gives the logits the full network gives, and the last pass leaves every group's state at (i, j) final. The
uniforms and the per-channel inverse-CDF draw are the naive sampler's, so the drawn values are equal; only the
float32 summation order differs (logits equal to ~1e-6, tests/test_fast_sampling.py). The same caching idea for
convolutional nets: Ramachandran et al. 2017, "Fast PixelCNN++" (trainers/autoregressive/fast_sampling.py).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from trainers.autoregressive.fast_sampling import _batched, _zeros_like_params, conv_at
from trainers.autoregressive.models import MaskedConv, draw, value_dtype
from trainers.autoregressive.pixelrnn import DiagonalBiLSTM, DiagonalLSTM, PixelRNN, RowLSTM, lstm_update


@torch.inference_mode()
def sample_pixelrnn(model: PixelRNN, num: int, *, seed: int, first: int = 0) -> torch.Tensor:
    return _batched(_sample_batch, model, num, seed=seed, first=first, labels=None)


@torch.inference_mode()
def cached_logits(model: PixelRNN, x: torch.Tensor) -> torch.Tensor:
    """The logits ``[B, K, C, H, W]`` the cached sampler computes when the values it draws are ``x``'s (teacher
    forcing): equal to ``model.logits(x)`` up to float rounding — what the tests compare."""
    b, (c, h, w) = len(x), model.shape
    out = torch.zeros(b, model.num_logits, c, h, w, dtype=next(model.parameters()).dtype, device=x.device)

    def given(i, j, k, logits):
        out[:, :, k, i, j] = logits
        return x[:, k, i, j]

    _run(model, b, given)
    return out


def _sample_batch(model: PixelRNN, u: torch.Tensor, labels) -> torch.Tensor:
    x = torch.zeros(len(u), *model.shape, dtype=value_dtype(model.levels), device=u.device)

    def drawn(i, j, k, logits):
        x[:, k, i, j] = draw(logits, u[:, k, i, j])
        return x[:, k, i, j]

    _run(model, len(u), drawn)
    return x


def _masked_1x1(conv: MaskedConv) -> torch.Tensor:
    return conv.masked_weight()[:, :, 0, 0]


def _run(model: PixelRNN, b: int, pick) -> None:
    """Raster order, channel by channel: ``pick(i, j, k, logits [B, K])`` returns channel k's values ``[B]``."""
    c, h, w = model.shape
    zeros = _zeros_like_params(model)
    p = model.first.kernel_size[0] // 2
    inputs = zeros(b, c, h + 2 * p, w + 2 * p)  # the scaled image, zero-padded like the first convolution
    first_w = model.first.masked_weight()
    out1_w, out2_w = _masked_1x1(model.out1), _masked_1x1(model.out2)
    caches = [RowCache(blk, b, w, zeros) if isinstance(blk, RowLSTM) else DiagonalCache(blk, b, h, w, zeros)
              for blk in model.blocks]
    for i in range(h):
        for cache in caches:
            cache.start_row(i)
        for j in range(w):
            for k in range(c):  # one pass per channel: group k reads channels < k of this pixel
                a = conv_at(inputs, first_w, model.first.bias, i, j)
                for cache in caches:
                    a = cache.step(a, i, j)
                logits = F.linear(F.relu(F.linear(F.relu(a), out1_w, model.out1.bias)), out2_w, model.out2.bias)
                value = pick(i, j, k, logits.view(b, model.num_logits, c)[:, :, k])  # logit o = K-index·C + channel
                inputs[:, k, i + p, j + p] = model.scaled(value[:, None])[:, 0]
        for cache in caches:
            cache.end_row(i)


class RowCache:
    """One Row LSTM block during sampling: row i−1's states (final) and row i's block inputs at columns ≤ j."""

    def __init__(self, block: RowLSTM, b: int, w: int, zeros):
        self.block, hidden = block, block.hidden
        self.pad = block.input_to_state.kernel_size[1] // 2
        self.w_in = block.input_to_state.masked_weight()  # [4h, 2h, 1, k]
        self.w_up = _masked_1x1(block.up)
        self.inputs = zeros(b, 2 * hidden, 1, w + 2 * self.pad)  # row i of the block input, padded like the conv
        # states of row i − 1 (zeros above row 0, as RowLSTM.forward starts) and of row i (filled column by
        # column; kept apart because the colour passes at (i, j) all read the cell of (i − 1, j))
        self.h_above, self.c_above = zeros(b, hidden, w), zeros(b, hidden, w)
        self.h_row, self.c_row = zeros(b, hidden, w), zeros(b, hidden, w)

    def start_row(self, i: int) -> None:
        self.from_above = self.block.state_to_state(self.h_above)  # K^ss ⊛ h_{i−1}: [B, 4h, W], whole row at once
        self.inputs.zero_()

    def step(self, a: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Block input at (i, j) ``[B, 2h]`` → block output there."""
        self.inputs[:, :, 0, self.pad + j] = a
        gates = conv_at(self.inputs, self.w_in, self.block.input_to_state.bias, 0, j) + self.from_above[:, :, j]
        hidden, cell = lstm_update(gates, self.c_above[:, :, j])
        self.h_row[:, :, j], self.c_row[:, :, j] = hidden, cell
        return a + F.linear(hidden, self.w_up, self.block.up.bias)

    def end_row(self, i: int) -> None:
        self.h_above, self.h_row = self.h_row, self.h_above
        self.c_above, self.c_row = self.c_row, self.c_above


def edge_states(lstm: DiagonalLSTM, rows: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (hidden, cell) states ``[rows, h]`` that DiagonalLSTM.forward carries into column 0 of each row: the
    skewed map's column i − 1 of row i, left of where the row begins. There the input term is zero and the
    recurrence reads the same row's and the row above's states one column further left — also outside the
    image, back to the zero initial state — so these depend on the parameters only. Row 0 starts from zeros."""
    h = c = like.new_zeros(1, lstm.hidden, rows)
    hs, cs = [like.new_zeros(lstm.hidden)], [like.new_zeros(lstm.hidden)]
    for s in range(rows - 1):  # the skewed columns 0 … rows − 2, with a zero input term (rows ≤ s are unused)
        h, c = lstm_update(lstm.state_to_state(F.pad(h, (1, 0))), c)
        hs.append(h[0, :, s + 1])
        cs.append(c[0, :, s + 1])
    return torch.stack(hs), torch.stack(cs)


def _state_to_state(conv: torch.nn.Conv1d, above: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """The 2-tap state-to-state convolution at one position: tap 0 reads the row above, tap 1 the same row."""
    window = torch.stack([above, left], dim=2).flatten(1)  # [B, h·2], as the kernel [4h, h, 2] flattens
    return F.linear(window, conv.weight.flatten(1), conv.bias)


class DiagonalCache:
    """One Diagonal BiLSTM block during sampling: the left-to-right states of rows i−1 and i, the right-to-left
    states of row i−1 (what row i adds), and row i's block inputs (for the right-to-left pass at its end)."""

    def __init__(self, block: DiagonalBiLSTM, b: int, h: int, w: int, zeros):
        self.block, hidden = block, block.left.hidden
        self.w_left, self.w_right = _masked_1x1(block.left.input_to_state), _masked_1x1(block.right.input_to_state)
        self.w_up = _masked_1x1(block.up)
        like = block.up.weight
        self.edge_left, self.edge_right = edge_states(block.left, h, like), edge_states(block.right, h, like)
        self.h_above = zeros(b, hidden, w)  # left-to-right, row i − 1 (zeros above row 0: the 2-tap conv's padding)
        self.h_row, self.c_row = zeros(b, hidden, w), zeros(b, hidden, w)  # left-to-right, row i
        self.right_above = zeros(b, hidden, w)  # right-to-left, row i − 1 (zeros for row 0: the shift's padding)
        self.inputs = zeros(b, w, 2 * hidden)  # row i of the block input

    def start_row(self, i: int) -> None:
        pass

    def step(self, a: torch.Tensor, i: int, j: int) -> torch.Tensor:
        lstm = self.block.left
        self.inputs[:, j] = a
        if j:
            left_h, left_c = self.h_row[:, :, j - 1], self.c_row[:, :, j - 1]
        else:
            left_h, left_c = (s[i].expand(len(a), -1) for s in self.edge_left)
        gates = F.linear(a, self.w_left, lstm.input_to_state.bias) + \
            _state_to_state(lstm.state_to_state, self.h_above[:, :, j], left_h)
        hidden, cell = lstm_update(gates, left_c)
        self.h_row[:, :, j], self.c_row[:, :, j] = hidden, cell
        return a + F.linear(hidden + self.right_above[:, :, j], self.w_up, self.block.up.bias)

    def end_row(self, i: int) -> None:
        """Row i is drawn: run the right-to-left direction along it (its left neighbour is the pixel to the
        right; above, its own row i − 1); row i + 1 reads the result."""
        lstm = self.block.right
        gates_x = F.linear(self.inputs, self.w_right, lstm.input_to_state.bias)  # [B, W, 4h]
        right_row = torch.zeros_like(self.right_above)
        hidden, cell = (s[i].expand(len(gates_x), -1) for s in self.edge_right)
        for j in reversed(range(gates_x.shape[1])):
            gates = gates_x[:, j] + _state_to_state(lstm.state_to_state, self.right_above[:, :, j], hidden)
            hidden, cell = lstm_update(gates, cell)
            right_row[:, :, j] = hidden
        self.right_above = right_row
        self.h_above, self.h_row = self.h_row, self.h_above
