"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning") with a Gated PixelCNN prior.

    encoder   two 4×4 stride-2 convolutions and two residual 3×3 blocks (ReLU, 3×3 conv, ReLU, 1×1 conv), all
              with ``hidden`` channels (the paper's §4.1 image model), then a 1×1 convolution to ``code_dim``:
              z_e(x) ∈ R^{D × H/4 × W/4} (7×7 latents for 28×28 images, 8×8 for 32×32)
    quantise  z_q = e_k with k = argmin_j ‖z_e − e_j‖² per latent position, over a codebook of K vectors;
              the decoder's gradient is copied to z_e unchanged (straight-through estimator, §3.2)
    decoder   3×3 convolution, two residual blocks, two 4×4 stride-2 transposed convolutions to a discretised
              logistic per pixel (mean, log-scale; ``trainers.common.distributions``), so log p(x | z) is a
              proper probability of the 8-bit image
    loss      −log p(x | z_q) / D  +  ‖sg[z_e] − e‖²  +  β ‖z_e − sg[e]‖²     (eq. 3, β = 0.25)
              the reconstruction in nats per pixel, the two vector-quantisation terms as means over latent
              elements; with ``codebook_update = "ema"`` the middle term is replaced by exponential moving
              averages of the assigned encoder outputs (Appendix A.1: N_k, m_k with decay γ, e_k = m_k / N_k,
              N_k Laplace-smoothed as in the Sonnet reference implementation)
    restarts  a code whose moving-average usage falls below ``restart_threshold`` assignments per step is moved
              onto an encoder output of the current batch (dead-code restarts, as in Dhariwal et al. 2020's
              Jukebox and most VQ-VAE code), drawn from the step's own generator so a resumed run redraws it
    prior     p(z) over the code grid: the autoregressive family's GatedPixelCNN with K levels, reading each
              code through a learned embedding (``GatedPixelCNN(embedding=...)``), trained after the
              autoencoder on the codes of the training images (§4.1: "we train a PixelCNN prior ... over the
              discrete latents")

Likelihood (kind ``elbo``): the posterior q(z | x) is one-hot on z_q(x), so its entropy is 0 and
log p(x) ≥ log p(x | z_q(x)) + log p(z_q(x)). ``log_prob`` returns that bound with the trained prior;
``log_prob_terms`` returns its two terms and the uniform-prior bound (log p(z) = −L log K, the prior the paper's
4.67 bits/dim CIFAR-10 number uses, §3.1: "the KL divergence [is] constant and equal to log K").
Sampling: codes from the prior (Gated PixelCNN, sample i from its own uniforms), then the decoder's mean image
(the paper's samples are decoder outputs, not pixel noise), or with ``pixel_noise`` a draw from p(x | z).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from trainers.autoregressive.models import GatedPixelCNN
from trainers.common.distributions import discretized_logistic_log_prob
from trainers.common.runs import module_device
from trainers.common.seeding import generator

CODEBOOK_UPDATES = ("ema", "loss")


class Residual(nn.Module):
    """x + conv1×1(relu(conv3×3(relu(x)))) — the paper's residual block."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv3 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


class VectorQuantizer(nn.Module):
    """A codebook of ``num_codes`` vectors of ``code_dim``; nearest-code assignment, straight-through output,
    the codebook/commitment losses, the EMA update and dead-code restarts."""

    def __init__(self, num_codes: int, code_dim: int, *, update: str = "ema", decay: float = 0.99,
                 epsilon: float = 1e-5, usage_decay: float = 0.99):
        super().__init__()
        if update not in CODEBOOK_UPDATES:
            raise ValueError(f"codebook update {update!r} is not one of {', '.join(CODEBOOK_UPDATES)}")
        self.num_codes, self.code_dim, self.update = num_codes, code_dim, update
        self.decay, self.epsilon, self.usage_decay = decay, epsilon, usage_decay
        init = torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        self.codebook = nn.Parameter(init, requires_grad=update == "loss")
        # EMA statistics (Appendix A.1): assignments N_k and sums m_k of the assigned encoder outputs
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_sum", init.clone())
        # moving average of assignments per step, for dead-code restarts (both update rules); starts "alive"
        self.register_buffer("usage", torch.ones(num_codes))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean distance) of each row of ``flat [N, D]``."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ self.codebook.t()
                     + self.codebook.pow(2).sum(1)[None])
        return distances.argmin(1)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``z_e [B, D, H, W]`` → (straight-through z_q ``[B, D, H, W]``, codes ``[B, H, W]``, losses)."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat.detach())
        z_q = self.codebook[codes].view(b, h, w, d).permute(0, 3, 1, 2)
        losses = {"commitment": F.mse_loss(z_e, z_q.detach())}
        if self.update == "loss":
            losses["codebook"] = F.mse_loss(z_q, z_e.detach())
        straight_through = z_e + (z_q - z_e).detach()  # forward: z_q; backward: the identity to z_e
        return straight_through, codes.view(b, h, w), losses

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, H, W]`` (any integer dtype: the prior samples uint8 when K ≤ 256) → vectors ``[B, D, H, W]``."""
        return self.codebook[codes.long()].permute(0, 3, 1, 2)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step from encoder outputs ``flat [N, D]`` and their codes ``[N]``:
        N_k ← γ N_k + (1 − γ) n_k,  m_k ← γ m_k + (1 − γ) Σ_{i: k_i = k} z_i,  e_k = m_k / Ñ_k with
        Ñ_k = (N_k + ε) / (Σ N + K ε) · Σ N (Laplace smoothing, so an unused code's vector stays finite)."""
        one_hot = F.one_hot(codes, self.num_codes).to(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(one_hot.sum(0), alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(one_hot.t() @ flat, alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        self.codebook.data.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def track_usage(self, codes: torch.Tensor) -> None:
        counts = torch.bincount(codes.flatten(), minlength=self.num_codes).to(self.usage.dtype)
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1.0 - self.usage_decay)

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor, *, threshold: float, generator: torch.Generator) -> int:
        """Move every code used less than ``threshold`` times per step (moving average) onto a random row of
        ``flat [N, D]``; returns how many were moved. The EMA statistics of a moved code restart at one
        assignment of that vector, and its usage at the threshold's double, so it has time to be used."""
        dead = torch.nonzero(self.usage < threshold).flatten()
        if len(dead) == 0:
            return 0
        picks = flat[torch.randint(len(flat), (len(dead),), generator=generator).to(flat.device)]
        self.codebook.data[dead] = picks
        self.embed_sum[dead] = picks
        self.cluster_size[dead] = 1.0
        self.usage[dead] = 2.0 * threshold
        return len(dead)


class VQVAE(nn.Module):
    """The autoencoder, its codebook and the prior over its code grid; uint8 images in, uint8 images out."""

    def __init__(self, *, shape: tuple[int, int, int], hidden: int = 128, res_hidden: int = 32, num_codes: int = 64,
                 code_dim: int = 16, codebook_update: str = "ema", ema_decay: float = 0.99, beta: float = 0.25,
                 prior_channels: int = 32, prior_layers: int = 5, prior_embedding: int = 16):
        super().__init__()
        c, height, width = shape
        if height % 4 or width % 4:
            raise ValueError(f"image {height}×{width}: the two stride-2 layers need sides divisible by 4")
        self.shape, self.num_dims = tuple(shape), math.prod(shape)
        self.beta = beta  # commitment weight (the paper: 0.25)
        self.grid = (height // 4, width // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1),
            Residual(hidden, res_hidden), Residual(hidden, res_hidden), nn.ReLU(),
            nn.Conv2d(hidden, code_dim, 1),
        )
        self.quantizer = VectorQuantizer(num_codes, code_dim, update=codebook_update, decay=ema_decay)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 3, padding=1),
            Residual(hidden, res_hidden), Residual(hidden, res_hidden), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, 2 * c, 4, stride=2, padding=1),
        )
        self.prior = GatedPixelCNN(shape=(1, *self.grid), levels=num_codes, channels=prior_channels,
                                   num_layers=prior_layers, out_channels=4 * prior_channels,
                                   embedding=prior_embedding)

    # ---- the autoencoder -------------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e ``[B, D, H/4, W/4]`` of uint8 images (scaled to [−1, 1])."""
        return self.encoder(x.float() / 127.5 - 1.0)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The code grid ``[B, 1, H/4, W/4]`` (int64) of uint8 images: the posterior's one value."""
        z_e = self.encode(x)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        return self.quantizer.nearest(flat).view(len(x), 1, *self.grid)

    def decode(self, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel discretised-logistic (mean in [−1, 1], log-scale), each ``[B, C, H, W]``."""
        out = self.decoder(z_q)
        mean, log_scale = out.chunk(2, dim=1)
        return torch.tanh(mean), log_scale.clamp(min=-7.0)

    def reconstruction_log_prob(self, x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats ``[B]``."""
        return discretized_logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)

    def autoencoder_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
        """(loss, its terms, the encoder outputs ``[N, D]`` and their codes ``[N]``) of a uint8 batch."""
        z_e = self.encode(x)
        z_q, codes, terms = self.quantizer(z_e)
        mean, log_scale = self.decode(z_q)
        recon = -self.reconstruction_log_prob(x, mean, log_scale).mean()
        loss = recon / self.num_dims + terms.get("codebook", 0.0) + self.beta * terms["commitment"]
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        return loss, {"recon_nats": recon, **terms}, flat, codes.flatten()

    def mean_image(self, mean: torch.Tensor) -> torch.Tensor:
        """The decoder's mean (the logistic's location) as uint8 pixels."""
        return torch.floor((mean.clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean images of the quantised codes of ``x`` (uint8)."""
        mean, _ = self.decode(self.quantizer.lookup(self.codes(x)[:, 0]))
        return self.mean_image(mean)

    # ---- the prior and the bound -------------------------------------------------------------------------

    def prior_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean −log p(z_q(x)) in nats under the prior (the autoencoder is fixed: its codes are data)."""
        return self.prior.nll(self.codes(x)).mean()

    def log_prob_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """float64 ``[B]`` each: log p(x | z_q(x)), log p(z_q(x)) under the trained prior and under the uniform
        prior over the K^L code grids."""
        codes = self.codes(x)
        mean, log_scale = self.decode(self.quantizer.lookup(codes[:, 0]))
        recon = self.reconstruction_log_prob(x, mean, log_scale).double()
        prior = -self.prior.nll(codes).double()
        uniform = torch.full_like(prior, -math.prod(self.grid) * math.log(self.quantizer.num_codes))
        return {"reconstruction": recon, "prior": prior, "uniform_prior": uniform}

    def log_prob(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """The bound log p(x | z_q(x)) + log p(z_q(x)) ≤ log p(x), nats ``[B]`` (float64)."""
        terms = self.log_prob_terms(x)
        return terms["reconstruction"] + terms["prior"]

    # ---- sampling ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, num: int, *, seed: int, first: int = 0, labels=None, pixel_noise: bool = False) -> torch.Tensor:
        """Sample j: codes from the prior with the uniforms of ``generator(seed, first + j)``, then the decoder's
        mean image, or (``pixel_noise``) a draw from p(x | z) with uniforms from ``generator(seed, 1, first + j)``."""
        codes = self.prior.sample(num, seed=seed, first=first)
        if num == 0:
            return torch.zeros(0, *self.shape, dtype=torch.uint8)
        device = module_device(self)
        mean, log_scale = self.decode(self.quantizer.lookup(codes[:, 0].to(device)))
        if not pixel_noise:
            return self.mean_image(mean).cpu()
        u = torch.stack([torch.rand(self.shape, generator=generator(seed, 1, first + j), dtype=torch.float64)
                         for j in range(num)]).clamp(1e-6, 1 - 1e-6).to(device)
        value = mean.double() + log_scale.double().exp() * (torch.log(u) - torch.log1p(-u))
        return torch.floor((value.clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8).cpu()
