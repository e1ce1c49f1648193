"""NICE, RealNVP and Glow: a stack of ``trainers.flows.layers`` on dequantised 8-bit images, read top to bottom.

A flow maps y ∈ [0, 1]^D (the dequantised image, (x + u)/256 with u ~ U[0, 1)^D) to latents z, one tensor per
scale (the factored-out halves and the last), and its log-density is the change of variables

    log p(y) = Σ_scales log p_base(z) + Σ_layers log|det ∂layer|

(the pre-processing — logit for RealNVP, x − ½ for Glow — is a layer like the others, its Jacobian included).
The loop (``trainers.common.likelihood_training``) needs ``loss(x_uint8, labels, generator)``,
``log_prob(x_uint8, labels)`` and ``sample(num, seed=, first=, labels=, temperature=)``; all three are here:

    loss      −mean[log p(y) − D·log 256] with u drawn from the step's generator (fresh noise every step)
    log_prob  geneval.likelihood.discrete_log_prob(log p(y)): log p(y) − D·log 256, one u per example drawn
              from a generator seeded by the example's bytes (``eval_noise``), so an image scores the same in
              any batch, order or process. −log_prob is the uniform-dequantisation bound on −log P(x): an ELBO
              with q(u | x) = U[0, 1)^D (Theis et al. 2016; Ho et al. 2019, Flow++ §3.1), estimated with one u
              (``dequantization_samples = K``: the importance-weighted bound over K draws of u, a tighter one)
    sample    z ~ base distribution at temperature T (Gaussian: N(0, T²); logistic: scale T), sample i from its
              own generator, then the inverse; pixel = floor(256·y) clipped to 0..255
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from geneval.likelihood import dequantize, discrete_log_prob
from trainers.common import ddp
from trainers.common.runs import module_device
from trainers.common.seeding import derived_seed
from trainers.flows.layers import (MLP, ActNorm, BatchNormFlow, ConvNet, Coupling, Flatten, InvConv1x1,
                                   LogitTransform, Scaling, Shift, Split, Squeeze, alternating_mask,
                                   channel_mask, checkerboard_mask)

EVAL_NOISE_SEED = 7  # the evaluation dequantisation's seed (mixed with each image's sha256)
PRIORS = ("gaussian", "logistic")
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def eval_noise(x_uint8: torch.Tensor, draw: int = 0) -> torch.Tensor:
    """float64 u ∈ [0, 1) of each example, from a generator seeded by (EVAL_NOISE_SEED, sha256 of its bytes) and,
    for the importance-weighted bound's further draws, the draw's index (draw 0 is the single-draw bound's u);
    drawn on the CPU, returned on ``x_uint8``'s device."""
    out = torch.empty(x_uint8.shape, dtype=torch.float64)
    flat = x_uint8.contiguous().cpu().numpy().reshape(len(x_uint8), -1)
    for b in range(len(x_uint8)):
        digest = int.from_bytes(hashlib.sha256(flat[b].tobytes()).digest()[:8], "little")
        seed = derived_seed(EVAL_NOISE_SEED, digest >> 1)
        g = torch.Generator().manual_seed(seed if draw == 0 else derived_seed(seed, draw))
        out[b] = torch.rand(x_uint8.shape[1:], generator=g, dtype=torch.float64)
    return out.to(x_uint8.device)


def base_log_prob(z: torch.Tensor, prior: str) -> torch.Tensor:
    """Σ log p_base(z) per example: standard Gaussian or standard logistic (NICE)."""
    if prior == "gaussian":
        per = -0.5 * z * z - HALF_LOG_2PI
    else:
        per = -(nn.functional.softplus(z) + nn.functional.softplus(-z))
    return per.reshape(z.shape[0], -1).sum(1)


def base_sample(num_dims: int, *, prior: str, generator: torch.Generator, temperature: float) -> torch.Tensor:
    if prior == "gaussian":
        return temperature * torch.randn(num_dims, generator=generator)
    u = torch.rand(num_dims, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return (temperature * (torch.log(u) - torch.log1p(-u))).float()


class Flow(nn.Module):
    """A list of invertible layers and ``Split``s on [0, 1]^D, with a factorised base distribution."""

    def __init__(self, *, shape: tuple[int, int, int], layers: list[nn.Module], prior: str = "gaussian",
                 levels: int = 256):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior {prior!r} is not one of {PRIORS}")
        if levels != 256:
            raise ValueError("flows model 8-bit data (256 levels); binarised data have no dequantised density")
        self.shape, self.prior = tuple(shape), prior
        self.num_dims = math.prod(shape)
        self.layers = nn.ModuleList(layers)
        was = self.training
        self.eval()
        with torch.no_grad():  # the latents' shapes (no statistic is updated in evaluation mode)
            zs, _ = self.forward(torch.full((1, *shape), 0.5))
        self.train(was)
        self.z_shapes = [tuple(z.shape[1:]) for z in zs]
        self.sampling_note = "one inverse pass per batch of samples"

    # ------------------------------------------------------------------ the bijection
    def forward(self, y: torch.Tensor):
        """y [B, C, H, W] in [0, 1] → (latents, Σ log|det| [B])."""
        h, logdet, zs = y, y.new_zeros(y.shape[0]), []
        for layer in self.layers:
            if isinstance(layer, Split):
                h, z = layer(h)
                zs.append(z)
            else:
                h, ld = layer(h)
                logdet = logdet + ld
        zs.append(h)
        return zs, logdet

    def inverse(self, zs: list[torch.Tensor]) -> torch.Tensor:
        zs = list(zs)
        h = zs.pop()
        for layer in reversed(self.layers):
            h = layer.inverse(h, zs.pop()) if isinstance(layer, Split) else layer.inverse(h)
        return h

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) [B] of the continuous density on [0, 1]^D, nats."""
        zs, logdet = self.forward(y)
        return sum(base_log_prob(z, self.prior) for z in zs) + logdet

    # ------------------------------------------------------------------ what the loop calls
    def loss(self, x_uint8, labels=None, *, generator: torch.Generator):
        u = ddp.draw(lambda n: torch.rand((n, *x_uint8.shape[1:]), generator=generator, dtype=torch.float64),
                     len(x_uint8))  # the global batch's noise under torchrun, this rank's rows
        y = dequantize(x_uint8, noise=u.to(x_uint8.device)).float()
        return -discrete_log_prob(self.log_density(y), num_dims=self.num_dims).mean()

    def log_prob(self, x_uint8, labels=None, *, dequantization_samples: int = 1) -> torch.Tensor:
        """The dequantisation bound on log P(x) [B]; with K = ``dequantization_samples`` > 1 the importance-weighted
        one, log (1/K) Σ_k p((x + u_k)/256)·256^−D with q(u | x) uniform (Burda et al. 2016's bound with this q;
        Ho et al. 2019, Flow++ §3.1 and its evaluation): never below the K = 1 bound of draw 0 on average, and
        tighter as K grows."""
        if dequantization_samples < 1:
            raise ValueError(f"dequantization_samples must be ≥ 1, got {dequantization_samples}")
        draws = [discrete_log_prob(self.log_density(dequantize(x_uint8, noise=eval_noise(x_uint8, k)).float()),
                                   num_dims=self.num_dims) for k in range(dequantization_samples)]
        if dequantization_samples == 1:
            return draws[0]
        return torch.logsumexp(torch.stack([d.double() for d in draws]), dim=0) - math.log(dequantization_samples)

    def latents(self, num: int, *, seed: int, first: int = 0, temperature: float | None = None):
        t = 1.0 if temperature is None else float(temperature)
        flat = torch.stack([base_sample(self.num_dims, prior=self.prior, temperature=t,
                                        generator=torch.Generator().manual_seed(derived_seed(seed, first + i)))
                            for i in range(num)]) if num else torch.zeros(0, self.num_dims)
        flat = flat.to(module_device(self))  # drawn on the CPU (per-sample generators), used where the flow runs
        sizes = [math.prod(s) for s in self.z_shapes]
        return [part.reshape(num, *s) for part, s in zip(flat.split(sizes, dim=1), self.z_shapes)]

    @torch.no_grad()
    def sample(self, num: int, *, seed: int, first: int = 0, labels=None, temperature: float | None = None,
               batch_size: int = 500) -> torch.Tensor:
        """uint8 [num, C, H, W]; sample i (of the stream starting at ``first``) depends on (seed, first + i) only."""
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        out = []
        for start in range(0, num, batch_size):
            count = min(batch_size, num - start)
            y = self.inverse(self.latents(count, seed=seed, first=first + start, temperature=temperature))
            y = torch.nan_to_num(y, nan=0.0)
            out.append(torch.clamp(torch.floor(y * 256), 0, 255).to(torch.uint8).cpu())
        return torch.cat(out) if out else torch.zeros(0, *self.shape, dtype=torch.uint8)


# --------------------------------------------------------------------------------------------- the three models


def nice(*, shape, hidden: int, num_hidden: int, num_couplings: int = 4, prior: str = "logistic") -> Flow:
    """NICE (Dinh et al. 2014, §5): ``num_couplings`` additive couplings of MLPs on alternating halves of the
    flattened image (paper: 4 couplings, 5 hidden layers of 1000 units, logistic prior), then the diagonal
    scaling layer (initialised from the first batch: ``layers.Scaling``)."""
    num_dims = math.prod(shape)
    layers: list[nn.Module] = [Flatten(shape)]
    for i in range(num_couplings):
        layers.append(Coupling(MLP(num_dims, num_dims, hidden=hidden, num_hidden=num_hidden),
                               mask=alternating_mask(num_dims, parity=i % 2), scale=None, channels=num_dims))
    layers.append(Scaling((num_dims,), data_init=True))
    return Flow(shape=shape, layers=layers, prior=prior)


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batchnorm":
        return [BatchNormFlow(channels)]
    if kind == "actnorm":
        return [ActNorm(channels)]
    return []


def realnvp(*, shape, hidden: int, num_hidden: int, num_scales: int, num_couplings: int = 3,
            norm: str = "batchnorm", logit_alpha: float = 0.05) -> Flow:
    """RealNVP (Dinh et al. 2017, §3.6, §4.1): logit pre-processing; per scale ``num_couplings`` affine
    checkerboard couplings, squeeze, ``num_couplings`` channel couplings, factor out half; the last scale
    ``num_couplings + 1`` checkerboard couplings. Scales tanh-bounded; a batch-norm (or act-norm) layer after
    every coupling. Masks alternate so every dimension is transformed."""
    c, h, w = shape
    layers: list[nn.Module] = [LogitTransform(logit_alpha)]

    def coupling(mask, channels):
        return Coupling(ConvNet(channels, 2 * channels, hidden=hidden, num_hidden=num_hidden), mask=mask,
                        scale="tanh", channels=channels)

    for scale in range(num_scales):
        last = scale == num_scales - 1
        for i in range(num_couplings + (1 if last else 0)):
            layers += [coupling(checkerboard_mask((c, h, w), parity=i % 2), c), *_norm(norm, c)]
        if last:
            break
        layers.append(Squeeze())
        c, h, w = 4 * c, h // 2, w // 2
        for i in range(num_couplings):
            layers += [coupling(channel_mask((c, h, w), parity=i % 2), c), *_norm(norm, c)]
        layers.append(Split())
        c = c // 2
    return Flow(shape=shape, layers=layers, prior="gaussian")


def glow(*, shape, hidden: int, num_hidden: int, num_levels: int, depth: int, lu: bool = True) -> Flow:
    """Glow (Kingma & Dhariwal 2018, Fig. 2): x − ½; per level a squeeze, ``depth`` steps of flow (act-norm with
    data-dependent init, invertible 1×1 convolution (LU or plain), affine coupling on channel halves with
    exp(s) = sigmoid(h + 2)), then a split except after the last level. Base distribution N(0, I) for every
    latent (the paper's learned conditional prior at the splits is not used)."""
    c, h, w = shape
    layers: list[nn.Module] = [Shift()]
    for level in range(num_levels):
        layers.append(Squeeze())
        c, h, w = 4 * c, h // 2, w // 2
        for _ in range(depth):
            layers += [ActNorm(c), InvConv1x1(c, lu=lu),
                       Coupling(ConvNet(c // 2, 2 * (c - c // 2), hidden=hidden, num_hidden=num_hidden),
                                mask="split", scale="sigmoid", channels=c)]
        if level < num_levels - 1:
            layers.append(Split())
            c = c // 2
    return Flow(shape=shape, layers=layers, prior="gaussian")


def check_shape(shape, *, squeezes: int, what: str) -> None:
    _, h, w = shape
    if h % (2 ** squeezes) or w % (2 ** squeezes):
        raise ValueError(f"{what}: {squeezes} squeezes need H and W divisible by {2 ** squeezes}, got {h}×{w}")


__all__ = ["Flow", "nice", "realnvp", "glow", "eval_noise", "base_log_prob"]
