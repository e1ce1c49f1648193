"""The Gaussian diffusion process of DDPM, read top to bottom: schedules, q, the posterior, p_θ, the bound.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (eq. numbers below are theirs), with
the cosine schedule and learned variances of Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic
Models", ICML 2021, and the reference implementations hojonathanho/diffusion (``diffusion_utils_2.py``,
``nn.py``: every formula here follows ``GaussianDiffusion2``) and openai/improved-diffusion
(``gaussian_diffusion.py``).

Indexing follows the reference code: timesteps are ``t = 0 .. T-1`` where the paper's step is ``t + 1``; so
``alphas_cumprod[t]`` is the paper's ᾱ_{t+1}, the decoder term L_0 is evaluated at code index ``t = 0`` and the
KL terms L_{t-1} (paper) at code indices ``t = 1 .. T-1``. Data live in [-1, 1] (``x / 127.5 - 1`` of 8-bit
pixels). All schedule arithmetic is float64 (as the reference's numpy arrays); network outputs are float32 and
are promoted where the bound is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# --------------------------------------------------------------------------------------------- schedules


def linear_betas(num_timesteps: int, *, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. §4: β_1 = 1e-4 → β_T = 0.02 linearly (reference: ``get_beta_schedule('linear')``)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def cosine_betas(num_timesteps: int, *, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2); β_t = 1 − ᾱ_t/ᾱ_{t−1}
    clipped at 0.999 (improved-diffusion ``betas_for_alpha_bar``)."""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), max_beta) for i in range(num_timesteps)]
    return torch.tensor(betas, dtype=torch.float64)


def make_betas(schedule: str, num_timesteps: int) -> torch.Tensor:
    if schedule == "linear":
        return linear_betas(num_timesteps)
    if schedule == "cosine":
        return cosine_betas(num_timesteps)
    raise ValueError(f"unknown beta schedule {schedule!r}; expected linear or cosine")


def _gather(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """``values[t]`` shaped ``[B, 1, 1, ...]`` to broadcast over images (reference: ``_extract``), on ``t``'s device
    (the schedule's tables live on the CPU)."""
    return values.to(t.device)[t].reshape(-1, *([1] * (ndim - 1)))


# --------------------------------------------------------------------------------------------- the process


@dataclass(frozen=True)
class ModelOutput:
    """What p_θ(x_{t−1} | x_t) is at one step: its mean, log-variance, and the implied ε̂ and x̂_0."""

    mean: torch.Tensor
    log_variance: torch.Tensor
    eps: torch.Tensor
    pred_x0: torch.Tensor


class GaussianDiffusion:
    """q(x_{1:T} | x_0) for a β schedule, and p_θ built from an ε-predicting network.

    ``model_var``: ``fixedlarge`` (σ_t² = β_t, Ho et al.'s CIFAR-10 choice), ``fixedsmall`` (σ_t² = β̃_t) or
    ``learned_range`` (Nichol & Dhariwal eq. 15: log σ² = v log β_t + (1 − v) log β̃_t, the network's extra
    channels giving v ∈ [−1, 1] mapped to [0, 1]).
    """

    def __init__(self, betas: torch.Tensor, *, model_var: str = "fixedlarge"):
        if model_var not in ("fixedlarge", "fixedsmall", "learned_range"):
            raise ValueError(f"unknown model_var {model_var!r}; expected fixedlarge, fixedsmall or learned_range")
        self.model_var = model_var
        self.betas = betas = betas.double()
        self.num_timesteps = T = len(betas)
        alphas = 1.0 - betas
        self.alphas_cumprod = ac = torch.cumprod(alphas, 0)
        self.alphas_cumprod_prev = acp = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod = ac.sqrt(), (1 - ac).sqrt()
        self.log_one_minus_alphas_cumprod = torch.log(1 - ac)
        self.sqrt_recip_alphas_cumprod, self.sqrt_recipm1_alphas_cumprod = (1 / ac).sqrt(), (1 / ac - 1).sqrt()
        # posterior q(x_{t−1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, β̃_t I), eqs. 6–7
        self.posterior_variance = betas * (1 - acp) / (1 - ac)
        # β̃ is 0 at the first step: the reference clips its log with the next value
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]) if T > 1 else
            self.posterior_variance.clamp_min(1e-20))
        self.posterior_mean_coef1 = betas * acp.sqrt() / (1 - ac)
        self.posterior_mean_coef2 = (1 - acp) * alphas.sqrt() / (1 - ac)
        # fixedlarge uses β_t, with β̃_1 in place of β_1 so that the decoder L_0 gets a sensible variance
        # (reference: ``np.append(self.posterior_variance[1], self.betas[1:])``)
        self.large_log_variance = torch.log(torch.cat([self.posterior_variance[1:2], betas[1:]]) if T > 1 else betas)

    # ---- q, eq. 4: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)
    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = _gather(self.sqrt_alphas_cumprod, t, x0.ndim) * x0.double()
        return mean, _gather(1 - self.alphas_cumprod, t, x0.ndim), _gather(self.log_one_minus_alphas_cumprod, t, x0.ndim)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (the reparameterisation below eq. 4), in x0's dtype."""
        return (_gather(self.sqrt_alphas_cumprod, t, x0.ndim) * x0.double() +
                _gather(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise.double()).to(x0.dtype)

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One forward step, eq. 2: x_t = √(1 − β_t) x_{t−1} + √β_t ε (for the test that q(x_t|x_0) is t of these)."""
        beta = _gather(self.betas, t, x_prev.ndim)
        return (1 - beta).sqrt() * x_prev.double() + beta.sqrt() * noise.double()

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(x_{t−1} | x_t, x_0), eqs. 6–7."""
        mean = (_gather(self.posterior_mean_coef1, t, xt.ndim) * x0.double() +
                _gather(self.posterior_mean_coef2, t, xt.ndim) * xt.double())
        return mean, _gather(self.posterior_variance, t, xt.ndim), _gather(self.posterior_log_variance_clipped, t, xt.ndim)

    def predict_x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (eq. 4 solved for x_0)."""
        return (_gather(self.sqrt_recip_alphas_cumprod, t, xt.ndim) * xt.double() -
                _gather(self.sqrt_recipm1_alphas_cumprod, t, xt.ndim) * eps.double())

    def predict_eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return ((_gather(self.sqrt_recip_alphas_cumprod, t, xt.ndim) * xt.double() - x0.double()) /
                _gather(self.sqrt_recipm1_alphas_cumprod, t, xt.ndim))

    # ---- p_θ(x_{t−1} | x_t) from the network's output (eq. 11 for the mean)
    def p_mean_variance(self, output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, *,
                        clip: bool = False) -> ModelOutput:
        """``output``: the network's ε̂ (C channels), followed by v (C channels) for ``learned_range``.
        ``clip``: clip x̂_0 to [−1, 1] before forming the mean (the reference does when sampling)."""
        channels = xt.shape[1]
        eps = output[:, :channels].double()
        if self.model_var == "learned_range":
            frac = (output[:, channels:].double() + 1) / 2  # Nichol & Dhariwal eq. 15, v mapped to [0, 1]
            min_log = _gather(self.posterior_log_variance_clipped, t, xt.ndim)
            max_log = _gather(torch.log(self.betas), t, xt.ndim)
            log_variance = frac * max_log + (1 - frac) * min_log
        else:
            table = self.large_log_variance if self.model_var == "fixedlarge" else self.posterior_log_variance_clipped
            log_variance = _gather(table, t, xt.ndim).expand_as(eps)
        pred_x0 = self.predict_x0_from_eps(xt, t, eps)
        if clip:
            pred_x0 = pred_x0.clamp(-1, 1)
            eps = self.predict_eps_from_x0(xt, t, pred_x0)
        mean, _, _ = self.q_posterior(pred_x0, xt, t)
        return ModelOutput(mean=mean, log_variance=log_variance, eps=eps, pred_x0=pred_x0)

    # ---- the variational bound, eq. 5: L = L_T + Σ_{t>1} L_{t−1} + L_0, in nats per image
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) ‖ N(0, I)) summed over dimensions, nats ``[B]`` (reference: ``_prior_bpd``)."""
        t = torch.full((x0.shape[0],), self.num_timesteps - 1, dtype=torch.long, device=x0.device)
        mean, _, log_var = self.q_mean_variance(x0, t)
        return sum_dims(normal_kl(mean, log_var.expand_as(mean), torch.zeros_like(mean), torch.zeros_like(mean)))

    def vb_term(self, output: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One term of the bound at code index t, nats ``[B]``: L_0 = −log p_θ(x_0 | x_1) (the discretised
        decoder, eq. 13) where t = 0, else L_{t} = KL(q(x_t | x_{t+1}, x_0) ‖ p_θ(x_t | x_{t+1}))
        (reference: ``_vb_terms_bpd``, in nats instead of bits)."""
        true_mean, _, true_log_var = self.q_posterior(x0, xt, t)
        out = self.p_mean_variance(output, xt, t)
        kl = sum_dims(normal_kl(true_mean, true_log_var.expand_as(true_mean), out.mean, out.log_variance))
        nll = -sum_dims(discretized_gaussian_log_likelihood(x0.double(), means=out.mean,
                                                            log_scales=0.5 * out.log_variance))
        return torch.where(t == 0, nll, kl)


# --------------------------------------------------------------------------------------------- Gaussians


def sum_dims(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, nats (reference ``nn.normal_kl``)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def normal_log_prob(x, mean, logvar) -> torch.Tensor:
    """log N(x; mean, e^logvar) elementwise (the Monte-Carlo check of ``normal_kl`` uses it)."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))


def discretized_gaussian_log_likelihood(x: torch.Tensor, *, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log P(x) of 8-bit data under a Gaussian discretised to the 256 bins of width 2/255 centred at the
    pixel values in [−1, 1], the outer bins extended to ±∞ (Ho et al. eq. 13; reference
    ``discretized_gaussian_log_likelihood``). The reference uses a tanh approximation of Φ; this uses the exact
    Φ in float64 (``torch.special.ndtr``), so the 256 probabilities of a pixel sum to 1 up to rounding."""
    x, means, log_scales = x.double(), means.double(), log_scales.double()
    centred = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = torch.special.ndtr(inv_stdv * (centred + 1.0 / 255.0))
    cdf_min = torch.special.ndtr(inv_stdv * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp_min(1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp_min(1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp_min(1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


# --------------------------------------------------------------------------------------------- the bound of a model


def strata(num_timesteps: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous strata ``[start, stop)`` covering the KL terms' indices 1 … T−1 (sizes differ by ≤ 1)."""
    edges = torch.linspace(1, num_timesteps, count + 1).round().long().tolist()
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def bound_nats(network, diffusion: GaussianDiffusion, x0: torch.Tensor, gens: list[torch.Generator], *,
               num_strata: int = 0, labels: torch.Tensor | None = None, terms: bool = False):
    """The negative variational bound −log p(x_0) ≤ L_T + Σ_{t=1}^{T−1} L_t + L_0 per image, nats ``[B]``
    (Ho et al. eq. 5; reference ``calc_bpd_loop``). ``network(x_t, t, labels)`` returns the ε-network's output;
    ``gens[b]`` draws image b's noise (x_t ~ q(x_t | x_0): one draw per term, as the reference).

    ``num_strata`` 0: every term (T network calls per image). K > 0: stratified Monte Carlo over t, unbiased for
    the same bound — L_T and L_0 exactly, and from each of K strata of the KL indices one t drawn uniformly, its
    term weighted by the stratum's size (K + 1 network calls per image). ``terms``: also return ``{"prior":
    [B], "terms": [B, T]}`` (only with K = 0; column t is L_t, column 0 the decoder's −log p(x_0 | x_1)).
    """
    B, T, device = x0.shape[0], diffusion.num_timesteps, x0.device

    def term(t: torch.Tensor) -> torch.Tensor:
        t = t.to(device)
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(device)  # drawn on the CPU
        xt = diffusion.q_sample(x0, t, noise)
        return diffusion.vb_term(network(xt, t, labels).double(), x0, xt, t)

    prior = diffusion.prior_kl(x0)
    decoder = term(torch.zeros(B, dtype=torch.long))
    if num_strata == 0:
        kls = [term(torch.full((B,), t, dtype=torch.long)) for t in range(1, T)]
        total = prior + decoder + (torch.stack(kls, 1).sum(1) if kls else 0.0)
        if terms:
            return total, {"prior": prior, "terms": torch.stack([decoder, *kls], 1)}
        return total
    if terms:
        raise ValueError("terms=True needs num_strata = 0 (every term)")
    total = prior + decoder
    for start, stop in strata(T, num_strata):
        t = torch.tensor([start + int(torch.randint(stop - start, (1,), generator=g)) for g in gens])
        total = total + (stop - start) * term(t)
    return total
