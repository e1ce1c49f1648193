"""A variational autoencoder (Kingma & Welling 2014) with the importance-weighted bound (Burda et al. 2016).

    q(z | x) = N(μ(x), diag σ²(x))     encoder: MLP D → H → H → 2·latent
    p(z)     = N(0, I)
    p(x | z)                           decoder: MLP latent → H → H → D·P, with
             Bernoulli(logits)                     for binarised data (P = 1)
             discretised logistic(μ, s) per pixel  for 8-bit data (P = 2; Salimans et al. 2017, PixelCNN++ §2.1,
                                                   one logistic per pixel, bins of width 2/255 on [−1, 1], the
                                                   edge bins taking the tails)

Training maximises the ELBO with the analytic KL and one reparameterised sample (z = μ + σ·ε). The test
likelihood is bounded two ways, both upper bounds on the NLL: the ELBO (``kind = "elbo"``) and the IWAE bound
log (1/K) Σ_k p(x, z_k)/q(z_k | x), z_k ~ q (``kind = "iwae-K"``), which tightens as K grows. The K draws of
an example come from a generator seeded by its bytes, so its bound does not depend on the batch it is in.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn
from torch.nn import functional as F

from trainers.common import ddp
from trainers.common.distributions import discretized_logistic_log_prob  # noqa: F401 (re-exported)
from trainers.common.runs import module_device
from trainers.common.seeding import derived_seed, generator

LOG_2PI = math.log(2 * math.pi)


def example_seed(x_example: torch.Tensor, seed: int) -> int:
    """A seed from an example's bytes and the run's seed: the example's noise whatever its batch."""
    digest = hashlib.sha256(x_example.contiguous().cpu().numpy().tobytes()).digest()
    return derived_seed(seed, int.from_bytes(digest[:7], "little"))


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, *, shape: tuple[int, int, int], levels: int, latent_dim: int = 32, hidden: int = 512,
                 iwae_k: int = 100, elbo_k: int = 10, eval_seed: int = 0):
        super().__init__()
        self.shape, self.levels = tuple(shape), levels
        self.num_dims = math.prod(shape)
        self.latent_dim = latent_dim
        self.per_pixel = 1 if levels == 2 else 2
        self.encoder = mlp([self.num_dims, hidden, hidden, 2 * latent_dim])
        self.decoder = mlp([latent_dim, hidden, hidden, self.num_dims * self.per_pixel])
        self.iwae_k, self.elbo_k, self.eval_seed = iwae_k, elbo_k, eval_seed

    # ---- the pieces ---------------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance ``[B, latent]`` of uint8 images."""
        h = self.encoder(x.float().view(len(x), -1) * (2.0 / (self.levels - 1)) - 1.0)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder parameters ``[N, P, D]``: logits (P = 1) or (mean, log-scale) (P = 2)."""
        out = self.decoder(z).view(len(z), self.per_pixel, self.num_dims)
        if self.per_pixel == 2:
            out = torch.stack([torch.tanh(out[:, 0]), out[:, 1].clamp(min=-7.0)], dim=1)
        return out

    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x | z) ``[N]`` of uint8 images x ``[N, C, H, W]`` given decoder parameters ``[N, P, D]``."""
        flat = x.view(len(x), -1)
        if self.per_pixel == 1:
            return -F.binary_cross_entropy_with_logits(params[:, 0], flat.float(), reduction="none").sum(1)
        return discretized_logistic_log_prob(flat, params[:, 0], params[:, 1]).sum(1)

    # ---- training: the negative ELBO, analytic KL, one reparameterised sample --------------------------

    def loss(self, x, labels=None, *, generator=None) -> torch.Tensor:
        mu, logvar = self.encode(x)
        eps = ddp.draw(lambda n: torch.randn(n, mu.shape[1], generator=generator), len(mu)).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return (kl - self.log_likelihood(x, self.decode(z))).mean()

    # ---- evaluation: log importance weights, ELBO and IWAE bounds -------------------------------------

    def log_weights(self, x: torch.Tensor, num: int) -> torch.Tensor:
        """log p(x, z_k) − log q(z_k | x) ``[B, K]`` (float64), z_k from each example's own generator."""
        mu, logvar = self.encode(x)
        eps = torch.stack([torch.randn(num, self.latent_dim, generator=generator(example_seed(xi, self.eval_seed)))
                           for xi in x.cpu()]).to(mu.device)  # [B, K, L], drawn on the CPU
        std = torch.exp(0.5 * logvar)
        z = mu[:, None] + std[:, None] * eps
        log_q = (-0.5 * (eps.pow(2) + LOG_2PI) - 0.5 * logvar[:, None]).sum(2)
        log_prior = (-0.5 * (z.pow(2) + LOG_2PI)).sum(2)
        b = len(x)
        repeated = x[:, None].expand(b, num, *x.shape[1:]).reshape(b * num, *x.shape[1:])
        log_lik = self.log_likelihood(repeated, self.decode(z.view(b * num, -1))).view(b, num)
        return (log_lik + log_prior - log_q).double()

    def log_prob(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """The IWAE bound with K = ``iwae_k`` (a lower bound on log p(x); −it bounds the NLL from above)."""
        return torch.cat([torch.logsumexp(self.log_weights(part, self.iwae_k), 1) - math.log(self.iwae_k)
                          for part in x.split(max(1, 20_000 // self.iwae_k))])

    def elbo(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """The ELBO, estimated without bias by the mean of ``elbo_k`` log-weights per example."""
        return self.log_weights(x, self.elbo_k).mean(1)

    # ---- sampling ------------------------------------------------------------------------------------

    def sample_pixels(self, params: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Pixel values from decoder parameters and per-pixel uniforms u ``[N, D]`` (inverse CDFs)."""
        if self.per_pixel == 1:
            return (u < torch.sigmoid(params[:, 0].double())).to(torch.uint8)
        u = u.clamp(1e-6, 1 - 1e-6)
        x = params[:, 0].double() + params[:, 1].double().exp() * (torch.log(u) - torch.log1p(-u))
        return torch.floor((x.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)

    def mean_image(self, params: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image as uint8 pixels (probabilities × 255, or the logistic mean), for plots."""
        from geneval.images import quantize_to_uint8

        if self.per_pixel == 1:
            return quantize_to_uint8(torch.sigmoid(params[:, 0]).view(-1, *self.shape), "0,1")
        return quantize_to_uint8(params[:, 0].view(-1, *self.shape), "-1,1")

    def sample(self, num: int, *, seed: int, first: int = 0, labels=None) -> torch.Tensor:
        """Sample j: z and pixel noise from ``generator(seed, first + j)``; uint8 values 0..levels−1."""
        if num == 0:
            return torch.zeros(0, *self.shape, dtype=torch.uint8)
        gens = [generator(seed, first + j) for j in range(num)]
        z = torch.stack([torch.randn(self.latent_dim, generator=g) for g in gens])
        u = torch.stack([torch.rand(self.num_dims, generator=g, dtype=torch.float64) for g in gens])
        device = module_device(self)  # drawn on the CPU (per-sample generators), decoded where the model runs
        return self.sample_pixels(self.decode(z.to(device)), u.to(device)).view(num, *self.shape).cpu()
