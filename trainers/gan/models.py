"""Generators and discriminators: MLP (Goodfellow et al. 2014), DCGAN (Radford et al. 2016) and ResNet
(Miyato et al. 2018's SNGAN CIFAR networks, extended with BigGAN's ingredients).

Every generator maps ``(z [B, z_dim], y [B] or None)`` to images in [-1, 1]; every discriminator maps
``(x, y)`` to ``(score [B], aux_logits [B, K] or None)``. The switches (spectral norm, attention, class
conditioning, shared embedding, skip-z) come from ``GanConfig`` and are independent of the architecture
wherever the papers allow it; ``GanConfig.validate`` rejects the combinations that make no sense.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainers.gan.layers import ConditionalBatchNorm, attention_block, maybe_sn


def ladder(size: int) -> tuple[int, int]:
    """``(bottom, num_up)``: the generator starts at ``bottom × bottom`` and doubles ``num_up`` times.
    28 → (7, 2); 32 → (4, 3); 8 → (4, 1): halve while even and above 4."""
    bottom, num_up = size, 0
    while bottom % 2 == 0 and bottom > 4:
        bottom, num_up = bottom // 2, num_up + 1
    return bottom, num_up


def attention_resolutions(size: int) -> list[int]:
    """Feature-map resolutions that both networks have, so a SAGAN attention block can sit at the same
    resolution in G (after its input layer or a block) and in D (after a down-sampling block)."""
    bottom, num_up = ladder(size)
    return [bottom * 2 ** i for i in range(num_up)]


# ============================================================================================ generators

class Generator(nn.Module):
    """Shared conditioning logic: skip-z chunks, the shared class embedding, concatenated one-hot labels."""

    def __init__(self, cfg, *, shape: tuple[int, int, int], num_classes: int, num_blocks: int):
        super().__init__()
        self.shape, self.num_classes = shape, num_classes
        cond = cfg.conditional
        self.concat = cond and cfg.g_cond == "concat"
        self.cbn_classes = num_classes if cond and cfg.g_cond == "cbn" and not cfg.shared_embedding else 0
        self.shared = nn.Embedding(num_classes, cfg.shared_dim) if cond and cfg.shared_embedding else None
        # Skip-z (BigGAN §3 / appendix B): z is split into one chunk for the input layer and one per block;
        # each block's conditional BN sees its chunk, so the latent reaches every resolution directly.
        self.chunk = cfg.z_dim // (num_blocks + 1) if cfg.skip_z else 0
        self.first_dim = cfg.z_dim - self.chunk * num_blocks
        self.num_blocks = num_blocks
        self.block_cond_dim = self.chunk + (cfg.shared_dim if self.shared is not None else 0)
        self.input_dim = self.first_dim + (num_classes if self.concat else 0)

    def conditions(self, z: torch.Tensor, y: torch.Tensor | None):
        """``(input vector, [per-block condition vectors or None])``."""
        first, chunks = z[:, : self.first_dim], []
        if self.chunk:
            chunks = list(z[:, self.first_dim:].split(self.chunk, dim=1))
        shared = self.shared(y) if self.shared is not None else None
        per_block = []
        for i in range(self.num_blocks):
            parts = ([chunks[i]] if chunks else []) + ([shared] if shared is not None else [])
            per_block.append(torch.cat(parts, 1) if parts else None)
        if self.concat:
            first = torch.cat([first, F.one_hot(y, self.num_classes).to(first.dtype)], 1)
        return first, per_block


class MLPGenerator(Generator):
    """Goodfellow et al. 2014's fully connected generator: two ReLU hidden layers, tanh output."""

    def __init__(self, cfg, *, shape, num_classes):
        super().__init__(cfg, shape=shape, num_classes=num_classes, num_blocks=0)
        hidden = int(cfg.mlp_hidden * cfg.width_mult)
        out = shape[0] * shape[1] * shape[2]
        sn = cfg.sn_g
        self.net = nn.Sequential(
            maybe_sn(nn.Linear(self.input_dim, hidden), sn), nn.ReLU(),
            maybe_sn(nn.Linear(hidden, 2 * hidden), sn), nn.ReLU(),
            maybe_sn(nn.Linear(2 * hidden, out), sn), nn.Tanh(),
        )

    def forward(self, z, y=None):
        first, _ = self.conditions(z, y)
        return self.net(first).view(-1, *self.shape)


class DCGANBlock(nn.Module):
    """×2 upsampling, conv, (conditional) BN, ReLU. ``transposed``: a 4×4 stride-2 transposed conv (DCGAN as
    published); ``nearest``: nearest-neighbour upsampling then a 3×3 conv (Odena et al. 2016: no checkerboard
    artefacts, but 9/4 the multiply-adds of the 4×4 transposed conv at the same output size)."""

    def __init__(self, c_in, c_out, *, upsample: str, sn: bool, cond_dim: int, num_classes: int):
        super().__init__()
        if upsample == "transposed":
            self.up = nn.Identity()
            self.conv = maybe_sn(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), sn)
        else:
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.conv = maybe_sn(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), sn)
        self.bn = ConditionalBatchNorm(c_out, cond_dim=cond_dim, num_classes=num_classes)

    def forward(self, x, cond=None, y=None):
        return F.relu(self.bn(self.conv(self.up(x)), cond, y))


class DCGANGenerator(Generator):
    """Radford et al. 2016: project z to ``bottom×bottom`` feature maps, then double the resolution while
    halving the channels, batch norm and ReLU throughout, tanh output."""

    def __init__(self, cfg, *, shape, num_classes):
        bottom, num_up = ladder(shape[1])
        super().__init__(cfg, shape=shape, num_classes=num_classes, num_blocks=num_up)
        ch = int(cfg.g_ch * cfg.width_mult)
        self.bottom, self.c0 = bottom, ch * 2 ** num_up
        self.fc = maybe_sn(nn.Linear(self.input_dim, self.c0 * bottom * bottom, bias=False), cfg.sn_g)
        shared_dim = cfg.shared_dim if self.shared is not None else 0
        self.bn0 = ConditionalBatchNorm(self.c0, cond_dim=shared_dim, num_classes=self.cbn_classes)
        self.blocks, self.attention = nn.ModuleList(), nn.ModuleDict()
        c, res = self.c0, bottom
        if res == cfg.attention_res:
            self.attention["input"] = attention_block(cfg.attention_block, c, sn=cfg.sn_g)
        for i in range(num_up):
            self.blocks.append(DCGANBlock(c, c // 2, upsample=cfg.g_upsample, sn=cfg.sn_g,
                                          cond_dim=self.block_cond_dim, num_classes=self.cbn_classes))
            c, res = c // 2, res * 2
            if res == cfg.attention_res:
                self.attention[str(i)] = attention_block(cfg.attention_block, c, sn=cfg.sn_g)
        self.out = maybe_sn(nn.Conv2d(c, shape[0], 3, 1, 1), cfg.sn_g)

    def forward(self, z, y=None):
        first, per_block = self.conditions(z, y)
        h = self.fc(first).view(-1, self.c0, self.bottom, self.bottom)
        shared = self.shared(y) if self.shared is not None else None
        h = F.relu(self.bn0(h, shared, y))
        if "input" in self.attention:
            h = self.attention["input"](h)
        for i, block in enumerate(self.blocks):
            h = block(h, per_block[i], y)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out(h))


class ResGBlock(nn.Module):
    """SNGAN/BigGAN generator block: BN-ReLU-up-conv3-BN-ReLU-conv3, plus an up-conv1 shortcut."""

    def __init__(self, c_in, c_out, *, sn: bool, cond_dim: int, num_classes: int):
        super().__init__()
        self.bn1 = ConditionalBatchNorm(c_in, cond_dim=cond_dim, num_classes=num_classes)
        self.conv1 = maybe_sn(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.bn2 = ConditionalBatchNorm(c_out, cond_dim=cond_dim, num_classes=num_classes)
        self.conv2 = maybe_sn(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.shortcut = maybe_sn(nn.Conv2d(c_in, c_out, 1), sn)

    def forward(self, x, cond=None, y=None):
        h = F.interpolate(F.relu(self.bn1(x, cond, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond, y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResNetGenerator(Generator):
    """Miyato et al. 2018 (CIFAR-10 ResNet generator, constant width): linear → ``bottom×bottom``, one
    upsampling residual block per doubling, BN-ReLU-conv3-tanh."""

    def __init__(self, cfg, *, shape, num_classes):
        bottom, num_up = ladder(shape[1])
        super().__init__(cfg, shape=shape, num_classes=num_classes, num_blocks=num_up)
        ch = int(cfg.g_ch * cfg.width_mult)
        self.bottom, self.ch = bottom, ch
        self.fc = maybe_sn(nn.Linear(self.input_dim, ch * bottom * bottom), cfg.sn_g)
        self.blocks, self.attention = nn.ModuleList(), nn.ModuleDict()
        res = bottom
        if res == cfg.attention_res:
            self.attention["input"] = attention_block(cfg.attention_block, ch, sn=cfg.sn_g)
        for i in range(num_up):
            self.blocks.append(ResGBlock(ch, ch, sn=cfg.sn_g, cond_dim=self.block_cond_dim,
                                         num_classes=self.cbn_classes))
            res *= 2
            if res == cfg.attention_res:
                self.attention[str(i)] = attention_block(cfg.attention_block, ch, sn=cfg.sn_g)
        self.bn = nn.BatchNorm2d(ch)
        self.out = maybe_sn(nn.Conv2d(ch, shape[0], 3, 1, 1), cfg.sn_g)

    def forward(self, z, y=None):
        first, per_block = self.conditions(z, y)
        h = self.fc(first).view(-1, self.ch, self.bottom, self.bottom)
        if "input" in self.attention:
            h = self.attention["input"](h)
        for i, block in enumerate(self.blocks):
            h = block(h, per_block[i], y)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out(F.relu(self.bn(h))))


# ======================================================================================== discriminators

class Discriminator(nn.Module):
    """Shared head: ``ψ(h)`` plus, for a projection discriminator (Miyato & Koyama 2018, eq. 3),
    ``⟨embed(y), h⟩``; an auxiliary classifier (Odena et al. 2017, AC-GAN) returns class logits beside."""

    def __init__(self, cfg, *, feature_dim: int, num_classes: int):
        super().__init__()
        cond = cfg.conditional
        self.num_classes = num_classes
        self.concat = cond and cfg.d_cond == "concat"
        self.linear = maybe_sn(nn.Linear(feature_dim, 1), cfg.sn_d)
        self.embed = None
        if cond and cfg.d_cond == "projection":
            # Glorot-uniform, as the reference implementation (pfnet-research/sngan_projection): PyTorch's default
            # N(0, 1) makes ⟨embed(y), h⟩ ~√feature_dim times larger than ψ(h) and, without SN, blows D up.
            embed = nn.Embedding(num_classes, feature_dim)
            nn.init.xavier_uniform_(embed.weight)
            self.embed = maybe_sn(embed, cfg.sn_d)
        self.aux = maybe_sn(nn.Linear(feature_dim, num_classes), cfg.sn_d) if cond and cfg.d_cond == "acgan" else None

    def head(self, h: torch.Tensor, y: torch.Tensor | None):
        score = self.linear(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(y) * h).sum(1)
        return score, (self.aux(h) if self.aux is not None else None)

    def with_label_maps(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.concat:
            return x
        maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return torch.cat([x, maps], 1)


def d_norm_layer(kind: str, channels: int) -> nn.Module:
    # "layer" = normalise over (C, H, W) per sample: WGAN-GP's replacement for batch norm, whose cross-sample
    # coupling invalidates a per-sample gradient penalty (Gulrajani et al. 2017, §4).
    return {"none": nn.Identity, "batch": lambda c: nn.BatchNorm2d(c), "layer": lambda c: nn.GroupNorm(1, c)}[kind](channels)


class MLPDiscriminator(Discriminator):
    def __init__(self, cfg, *, shape, num_classes):
        hidden = int(cfg.mlp_hidden * cfg.width_mult)
        super().__init__(cfg, feature_dim=hidden, num_classes=num_classes)
        size = shape[0] * shape[1] * shape[2] + (num_classes if self.concat else 0)
        sn = cfg.sn_d
        self.net = nn.Sequential(maybe_sn(nn.Linear(size, 2 * hidden), sn), nn.LeakyReLU(0.2),
                                 maybe_sn(nn.Linear(2 * hidden, hidden), sn), nn.LeakyReLU(0.2))

    def forward(self, x, y=None):
        h = x.flatten(1)
        if self.concat:
            h = torch.cat([h, F.one_hot(y, self.num_classes).to(h.dtype)], 1)
        return self.head(self.net(h), y)


class DCGANDiscriminator(Discriminator):
    """Radford et al. 2016: stride-2 4×4 convs doubling the channels, LeakyReLU(0.2), no norm on the first
    layer, then a linear layer on the flattened features."""

    def __init__(self, cfg, *, shape, num_classes):
        bottom, num_down = ladder(shape[1])
        ch = int(cfg.d_ch * cfg.width_mult)
        super().__init__(cfg, feature_dim=ch * 2 ** (num_down - 1) * bottom * bottom, num_classes=num_classes)
        c_in = shape[0] + (num_classes if self.concat else 0)
        layers, res, c = [], shape[1], ch
        for i in range(num_down):
            layers += [maybe_sn(nn.Conv2d(c_in, c, 4, 2, 1), cfg.sn_d)]
            layers += [d_norm_layer(cfg.d_norm, c)] if i else []
            layers += [nn.LeakyReLU(0.2)]
            res //= 2
            if res == cfg.attention_res:
                layers.append(attention_block(cfg.attention_block, c, sn=cfg.sn_d))
            c_in, c = c, c * 2
        self.net = nn.Sequential(*layers)

    def forward(self, x, y=None):
        return self.head(self.net(self.with_label_maps(x, y)).flatten(1), y)


class ResDBlock(nn.Module):
    """SNGAN discriminator block: ReLU-conv3-ReLU-conv3(-avgpool), shortcut conv1(-avgpool). The first block
    (``first``) skips the leading ReLU and pools before its shortcut conv (the "optimized block")."""

    def __init__(self, c_in, c_out, *, sn: bool, down: bool, first: bool):
        super().__init__()
        self.conv1 = maybe_sn(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.shortcut = maybe_sn(nn.Conv2d(c_in, c_out, 1), sn) if (down or c_in != c_out) else None
        self.down, self.first = down, first

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:
            s = self.shortcut(F.avg_pool2d(s, 2))
        elif self.shortcut is not None:
            s = self.shortcut(s)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetDiscriminator(Discriminator):
    """Miyato et al. 2018 CIFAR-10 ResNet discriminator: one down-sampling block per generator doubling, then
    two blocks at the bottom resolution, ReLU, global sum pooling, linear (+ projection)."""

    def __init__(self, cfg, *, shape, num_classes):
        bottom, num_down = ladder(shape[1])
        ch = int(cfg.d_ch * cfg.width_mult)
        super().__init__(cfg, feature_dim=ch, num_classes=num_classes)
        c_in = shape[0] + (num_classes if self.concat else 0)
        blocks, res = [], shape[1]
        for i in range(num_down + 2):
            down = i < num_down
            blocks.append(ResDBlock(c_in if i == 0 else ch, ch, sn=cfg.sn_d, down=down, first=i == 0))
            res = res // 2 if down else res
            if down and res == cfg.attention_res:
                blocks.append(attention_block(cfg.attention_block, ch, sn=cfg.sn_d))
        self.net = nn.Sequential(*blocks)

    def forward(self, x, y=None):
        h = F.relu(self.net(self.with_label_maps(x, y))).sum((2, 3))
        return self.head(h, y)


ARCHITECTURES = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "resnet": (ResNetGenerator, ResNetDiscriminator),
}


def build_models(cfg, *, shape: tuple[int, int, int], num_classes: int) -> tuple[nn.Module, nn.Module]:
    g_cls, d_cls = ARCHITECTURES[cfg.arch]
    return g_cls(cfg, shape=shape, num_classes=num_classes), d_cls(cfg, shape=shape, num_classes=num_classes)
