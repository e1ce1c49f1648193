"""The DDPM U-Net and the one config dataclass of a diffusion run, read top to bottom.

The network is Ho et al. 2020's (Appendix B; reference hojonathanho/diffusion ``models/unet.py``), which is a
PixelCNN++-style U-Net: a sinusoidal timestep embedding (the Transformer's) through two dense layers; at each
resolution ``num_res_blocks`` residual blocks (GroupNorm → swish → 3×3 conv, + the projected timestep embedding,
GroupNorm → swish → dropout → 3×3 conv), self-attention after the blocks at the resolutions in
``attn_resolutions`` (16×16 on CIFAR-10; 14×14 at 28×28), a stride-2 conv to go down; a middle of
res-attention-res; the upward path concatenates the skip of every downward block (``num_res_blocks + 1``
blocks per level) and upsamples by nearest neighbour + 3×3 conv. Class conditioning, optional, adds a learned
class embedding to the timestep embedding (as improved-diffusion does). The output has C channels (ε̂), or 2C
when the variance is learned (Nichol & Dhariwal §3.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from trainers.common import ddp

SCHEDULES = ("linear", "cosine")
LOSSES = ("simple", "hybrid", "vlb")
MODEL_VARS = ("fixedlarge", "fixedsmall", "learned_range")
SAMPLERS = ("ddpm", "ddim")


@dataclass(frozen=True)
class DiffusionConfig:
    """Everything a diffusion run is: the recipe (``preset``), the budget, network, process, training, protocol."""

    preset: str = "ddpm"
    budget: str = "small"
    dataset: str = "fashion-mnist"
    seed: int = 0
    # ---- U-Net (Ho et al. CIFAR-10: ch 128, mult 1,2,2,2, 2 blocks, attention at 16, dropout 0.1)
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (14,)
    dropout: float = 0.1
    norm_groups: int = 32  # GroupNorm groups, capped by gcd with the channel count at narrow widths
    conditional: bool = False
    # ---- the process
    timesteps: int = 1000
    schedule: str = "linear"
    model_var: str = "fixedlarge"
    loss: str = "simple"  # simple (L_simple, eq. 14), hybrid (L_simple + λ L_vlb), vlb
    hybrid_lambda: float = 0.001  # Nichol & Dhariwal §3.1
    # ---- training (reference: Adam 2e-4, warm-up 5000 steps, clip 1.0, EMA 0.9999, batch 128)
    steps: int = 4000
    batch_size: int = 64
    lr: float = 2e-4
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # short runs: 0.9999 averages over ~10k steps, longer than the run
    train_num: int | None = None
    log_every: int = 50
    checkpoint_every: int = 250
    # ---- the run's own end-of-run evaluation (re-scoring with other options: the family's eval options)
    eval_samples: int = 1000
    eval_sampler: str = "ddim"
    eval_sampling_steps: int = 50
    eval_eta: float = 0.0
    eval_features: str | None = None  # None: the dataset's domain extractor
    eval_metrics: tuple[str, ...] = ("fid", "is", "kid", "precision", "recall")
    eval_num_ref: int | None = None  # reference images (None: the whole test split)
    sample_seed: int = 12345
    sample_batch_size: int = 250
    bound_num: int | None = None  # test images the bound is estimated on (None: the whole split)
    bound_strata: int = 0  # 0: all T terms; K > 0: one t per stratum of K (stratified Monte Carlo)
    bound_seed: int = 0
    bound_batch_size: int = 250

    def validate(self) -> None:
        from geneval.datasets import DATASETS

        if self.dataset not in DATASETS:
            raise GenevalInputError(f"dataset {self.dataset!r} is unknown; known: {', '.join(sorted(DATASETS))}")
        for name, allowed in (("schedule", SCHEDULES), ("loss", LOSSES), ("model_var", MODEL_VARS),
                              ("eval_sampler", SAMPLERS)):
            if getattr(self, name) not in allowed:
                raise GenevalInputError(f"{name} = {getattr(self, name)!r}; expected one of {', '.join(allowed)}")
        if self.loss == "hybrid" and self.model_var != "learned_range":
            raise GenevalInputError("loss = hybrid trains the variance: it needs model_var = learned_range")
        for name in ("ch", "num_res_blocks", "timesteps", "steps", "batch_size", "log_every", "checkpoint_every",
                     "eval_samples", "sample_batch_size", "bound_batch_size"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 1 <= self.eval_sampling_steps <= self.timesteps:
            raise GenevalInputError(f"eval_sampling_steps must be in [1, timesteps = {self.timesteps}]")
        if not 0 <= self.bound_strata <= self.timesteps - 1:
            raise GenevalInputError(f"bound_strata must be in [0, {self.timesteps - 1}], got {self.bound_strata}")
        height = self.shape[1]
        for _ in self.ch_mult[1:]:
            if height % 2:
                raise GenevalInputError(f"ch_mult {self.ch_mult}: {self.shape[1]}×{self.shape[2]} images cannot be "
                                        f"halved {len(self.ch_mult) - 1} times")
            height //= 2

    @property
    def shape(self) -> tuple[int, int, int]:
        from geneval.datasets import DATASETS

        return tuple(DATASETS.get(self.dataset).shape)

    @property
    def num_classes(self) -> int:
        from geneval.datasets import DATASETS

        return len(DATASETS.get(self.dataset).classes)

    @property
    def out_channels(self) -> int:
        return self.shape[0] * (2 if self.model_var == "learned_range" else 1)


# --------------------------------------------------------------------------------------------- layers


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (reference ``get_timestep_embedding``; Vaswani et al. §3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, temb: int, dropout: float, groups: int):
        super().__init__()
        self.norm1, self.conv1 = norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.conv2 = norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = ddp.Dropout(dropout)  # nn.Dropout; the global batch's mask under torchrun
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # reference: the last conv of a block starts at zero (init_scale=0)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions (reference ``attn_block``), residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(1)  # [B, HW, C] each
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # softmax(q kᵀ/√C) v
        return x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))


class Level(nn.Module):
    """The blocks of one resolution: residual blocks, each followed by attention where asked."""

    def __init__(self, cins: list[int], cout: int, *, attention: bool, temb: int, dropout: float, groups: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c, cout, temb=temb, dropout=dropout, groups=groups) for c in cins)
        self.attns = nn.ModuleList(AttnBlock(cout, groups) if attention else nn.Identity() for _ in cins)


# --------------------------------------------------------------------------------------------- the U-Net


class UNet(nn.Module):
    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        channels, height, _ = cfg.shape
        ch, groups, temb = cfg.ch, cfg.norm_groups, 4 * cfg.ch
        self.ch, self.conditional = ch, cfg.conditional
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.class_emb = nn.Embedding(cfg.num_classes, temb) if cfg.conditional else None
        self.conv_in = nn.Conv2d(channels, ch, 3, padding=1)
        kw = dict(temb=temb, dropout=cfg.dropout, groups=groups)

        # downward path: remember every block's output channels (the skips the upward path concatenates)
        skips, cur, res = [ch], ch, height
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for level, mult in enumerate(cfg.ch_mult):
            cins = [cur] + [ch * mult] * (cfg.num_res_blocks - 1)
            self.down.append(Level(cins, ch * mult, attention=res in cfg.attn_resolutions, **kw))
            cur = ch * mult
            skips += [cur] * cfg.num_res_blocks
            if level != len(cfg.ch_mult) - 1:
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
                res //= 2
        self.mid1, self.mid_attn = ResBlock(cur, cur, **kw), AttnBlock(cur, groups)
        self.mid2 = ResBlock(cur, cur, **kw)

        # upward path: num_res_blocks + 1 blocks per level, each eating one skip
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            cins = []
            for _ in range(cfg.num_res_blocks + 1):
                cins.append(cur + skips.pop())
                cur = ch * mult
            self.up.append(Level(cins, cur, attention=res in cfg.attn_resolutions, **kw))
            if level != 0:
                self.upsample.append(nn.Conv2d(cur, cur, 3, padding=1))
                res *= 2
        self.norm_out = norm(cur, groups)
        self.conv_out = nn.Conv2d(cur, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.temb(timestep_embedding(t, self.ch))
        if self.class_emb is not None:
            if labels is None:
                raise GenevalInputError("this model is class-conditional: labels are required")
            emb = emb + self.class_emb(labels)
        hs = [self.conv_in(x)]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attns):
                hs.append(attn(block(hs[-1], emb)))
            if i < len(self.downsample):
                hs.append(self.downsample[i](hs[-1]))
        h = self.mid2(self.mid_attn(self.mid1(hs[-1], emb)), emb)
        for i, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), emb))
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
