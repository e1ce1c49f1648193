"""The GAN ingredients that are not a whole network: spectral norm, self-attention, conditional batch norm,
BigGAN's orthogonal regularisation, the truncation trick and an EMA of the generator's weights.

Each is a switch of ``GanConfig`` and can be turned on alone; ``models.py`` assembles them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainers.common.ema import debiased_weight
from trainers.common.seeding import generator


# ------------------------------------------------------------------------------------- spectral normalisation

def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for GANs"): the weight is divided by
    an estimate of its largest singular value, refined by one power iteration per training-mode forward (the
    iteration vectors ``u``/``v`` are buffers, so they are checkpointed and a resumed run continues them).
    Conv weights are reshaped to ``[out, in·kh·kw]`` as in the reference implementation (pfnet-research/sngan_projection)."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


# ------------------------------------------------------------------------------------------------ attention

class SelfAttention(nn.Module):
    """SAGAN's self-attention block (Zhang et al. 2019, eq. 1–3): ``y = γ·o + x`` with
    ``o = v(x)·softmax(q(x)ᵀ k(x))`` over all ``H·W`` positions; ``γ`` starts at 0 so the block is the identity
    at initialisation and the network learns how much non-local evidence to use. Query/key use C/8 channels,
    as in the paper."""

    def __init__(self, channels: int, *, sn: bool):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.key = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.value = maybe_sn(nn.Conv2d(channels, channels, 1, bias=False), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)  # [B, C/8, HW]
        k = self.key(x).flatten(2)  # [B, C/8, HW]
        v = self.value(x).flatten(2)  # [B, C, HW]
        attention = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # [B, HW (query), HW (key)]
        o = torch.bmm(v, attention.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * o


class LocalResidual(nn.Module):
    """The control of SAGAN's "attention vs residual" rows (Zhang et al. 2019, Table 1): a residual block with
    the parameter count of ``SelfAttention`` (query C²/8 + key C²/8 + value C² = 1.25·C²) that only sees a 3×3
    neighbourhood: ``y = γ·conv1(relu(conv3(x))) + x`` with a 3×3 conv to C/8 channels (1.125·C²) and a 1×1
    conv back to C (0.125·C²). The same zero-initialised ``γ`` makes it the identity at initialisation, so the
    two rows differ only in non-local versus local evidence."""

    def __init__(self, channels: int, *, sn: bool):
        super().__init__()
        inner = max(1, channels // 8)
        self.reduce = maybe_sn(nn.Conv2d(channels, inner, 3, 1, 1, bias=False), sn)
        self.expand = maybe_sn(nn.Conv2d(inner, channels, 1, bias=False), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.expand(torch.relu(self.reduce(x)))


ATTENTION_BLOCKS = {"self-attention": SelfAttention, "residual": LocalResidual}


def attention_block(kind: str, channels: int, *, sn: bool) -> nn.Module:
    """The block placed at ``attention_res``: SAGAN's self-attention, or its same-size local control."""
    return ATTENTION_BLOCKS[kind](channels, sn=sn)


# --------------------------------------------------------------------------------- conditional batch norm

class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias depend on the condition (de Vries et al. 2017; Miyato & Koyama 2018 for
    class-conditional GANs; Brock et al. 2019 for BigGAN's shared embedding and skip-z).

    ``gain = 1 + Σ`` and ``bias = Σ`` of the present terms: a linear map of a condition vector ``c`` (the
    shared class embedding and/or this block's chunk of z) and a per-layer class embedding of ``y`` (when the
    model is class-conditional without a shared embedding). With neither, it is plain batch norm."""

    def __init__(self, channels: int, *, cond_dim: int = 0, num_classes: int = 0):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=not (cond_dim or num_classes))
        self.cond_dim, self.num_classes = cond_dim, num_classes
        if cond_dim:
            # BigGAN's linear gains/biases (bias=False: the "1 +" and the zero bias are the starting point)
            self.gain_linear = nn.Linear(cond_dim, channels, bias=False)
            self.bias_linear = nn.Linear(cond_dim, channels, bias=False)
        if num_classes:
            self.gain_embed = nn.Embedding(num_classes, channels)
            self.bias_embed = nn.Embedding(num_classes, channels)
            nn.init.zeros_(self.gain_embed.weight)
            nn.init.zeros_(self.bias_embed.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, y: torch.Tensor | None = None):
        out = self.bn(x)
        if not (self.cond_dim or self.num_classes):
            return out
        gain = torch.ones(x.shape[0], x.shape[1], dtype=x.dtype)
        bias = torch.zeros(x.shape[0], x.shape[1], dtype=x.dtype)
        if self.cond_dim:
            gain = gain + self.gain_linear(cond)
            bias = bias + self.bias_linear(cond)
        if self.num_classes:
            gain = gain + self.gain_embed(y)
            bias = bias + self.bias_embed(y)
        return out * gain[:, :, None, None] + bias[:, :, None, None]


# ------------------------------------------------------------------------------ orthogonal regularisation

def orthogonal_penalty(weights: list[torch.Tensor], *, beta: float) -> torch.Tensor:
    """BigGAN's off-diagonal orthogonal regularisation (Brock et al. 2019, eq. 3):
    ``R_β(W) = β·‖WWᵀ ⊙ (1 − I)‖²_F`` summed over weights, each reshaped to ``[out, -1]``. Unlike the full
    ``‖WᵀW − I‖²`` of Brock et al. 2017 it leaves the filters' norms free and only pushes them apart."""
    total = torch.zeros((), dtype=torch.float64)
    for w in weights:
        w = w.reshape(w.shape[0], -1).double()  # float64: the identity below subtracts two large sums
        # ‖WWᵀ ⊙ (1 − I)‖²_F = ‖WWᵀ‖²_F − Σᵢ‖wᵢ‖⁴ and ‖WWᵀ‖_F = ‖WᵀW‖_F: use the smaller Gram matrix (a
        # linear layer z → 7·7·C has 6272 rows: its 6272² Gram made a CPU step 5× slower).
        gram = w.t() @ w if w.shape[0] > w.shape[1] else w @ w.t()
        total = total + gram.pow(2).sum() - w.pow(2).sum(1).pow(2).sum()
    return (beta * total).float()


def regularised_weights(module: nn.Module) -> list[torch.Tensor]:
    """The weights orthogonal regularisation acts on: every ≥2-D trainable weight except class embeddings
    (BigGAN's reference code excludes the shared embedding). Spectrally normalised layers contribute their
    unnormalised parameter (``parametrizations.weight.original``), as in BigGAN-PyTorch."""
    out = []
    embeddings = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    for name, p in module.named_parameters():
        if p.ndim >= 2 and id(p) not in embeddings and p.requires_grad:
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------------ sampling

def truncated_latents(num: int, dim: int, *, seed: int, threshold: float | None, stream: int = 0) -> torch.Tensor:
    """Latents for ``num`` samples, ``[num, dim]``; row ``i`` comes from its own generator ``(seed, stream, i)``
    so it does not depend on the batch. With ``threshold`` (BigGAN's truncation trick, Brock et al. 2019 §3.1):
    every coordinate with ``|z| > threshold`` is redrawn from the same generator until it falls inside."""
    if threshold is not None and threshold <= 0:
        raise ValueError(f"truncation threshold must be > 0, got {threshold}")
    rows = []
    for i in range(num):
        g = generator(seed, stream, i)
        z = torch.randn(dim, generator=g)
        if threshold is not None:
            outside = z.abs() > threshold
            while outside.any():
                z[outside] = torch.randn(int(outside.sum()), generator=g)
                outside = z.abs() > threshold
        rows.append(z)
    return torch.stack(rows) if rows else torch.zeros((0, dim))


def balanced_labels(num: int, num_classes: int) -> torch.Tensor:
    """Class of sample ``i`` when none is given: ``i mod num_classes`` (balanced, and a function of ``i`` only)."""
    return torch.arange(num) % num_classes


# ------------------------------------------------------------------------------------------------------ EMA

class WeightEMA:
    """An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019), used
    for sampling. Before ``start_step`` the average is a plain copy. Buffers (spectral-norm vectors, batch-norm
    statistics) are copied from the live generator at every update; since the live generator's batch-norm
    statistics do not fit the averaged weights, ``standing_stats`` recomputes them before the average is used
    (BigGAN's "standing statistics", Brock et al. 2019 appendix C). ``debias``: from ``start_step`` on, average
    only the weights seen since then (``trainers.common.ema``), not the copy made there."""

    def __init__(self, model: nn.Module, *, decay: float, start_step: int, debias: bool = False):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.start_step, self.debias = decay, start_step, debias

    @torch.no_grad()
    def update(self, model: nn.Module, *, step: int) -> None:
        if step < self.start_step:
            weight = 1.0
        elif self.debias:
            weight = debiased_weight(self.decay, step - self.start_step + 1)
        else:
            weight = 1.0 - self.decay
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p, weight)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    @torch.no_grad()
    def standing_stats(self, latents: torch.Tensor, labels: torch.Tensor | None, *, batch_size: int) -> None:
        """Batch-norm running statistics of the averaged generator = the exact mean over ``latents`` (fixed,
        seeded inputs, so the result is a function of the weights only). Only batch-norm layers run in training
        mode: spectral-norm vectors are left as they are."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
            m.train()
        for start in range(0, len(latents), batch_size):
            y = labels[start:start + batch_size] if labels is not None else None
            self.model(latents[start:start + batch_size], y)
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
            m.eval()
