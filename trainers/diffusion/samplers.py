"""Sampling a trained ε-network: ancestral DDPM (full or strided chain) and DDIM, ``-> uint8 [N, C, H, W]``.

* ``ddpm``: Ho et al. 2020 Algorithm 2, x_{t−1} = μ_θ(x_t, t) + σ_t z, with the run's variance (fixedlarge β_t,
  fixedsmall β̃_t or learned). With S < T steps it runs on the respaced process of Nichol & Dhariwal 2021 §4
  (improved-diffusion ``respace.py``): keep the timesteps τ_1 < … < τ_S, set β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} and
  sample that S-step chain (the network is asked at the original τ_i).
* ``ddim``: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, eq. 12 over the same τ:
  x_{τ_{i−1}} = √ᾱ_{τ_{i−1}} x̂_0 + √(1 − ᾱ_{τ_{i−1}} − σ_i²) ε̂ + σ_i z with
  σ_i = η √((1 − ᾱ_{τ_{i−1}})/(1 − ᾱ_{τ_i})) √(1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}) (eq. 16); η = 0 is deterministic, η = 1
  with S = T is DDPM's ancestral update with σ_t² = β̃_t (tested). ε̂ is recomputed from the clipped x̂_0, as
  improved-diffusion's ``ddim_sample`` does, so that equality holds with clipping too.

x̂_0 is clipped to [−1, 1] at every step (the reference's ``clip_denoised=True``). Sample ``i`` draws x_T and
every z from its own generator ``(seed, SAMPLE_STREAM, i)`` in a fixed order, and the network has no batch
statistics (GroupNorm, eval-mode dropout), so sample i depends only on ``(seed, i)``, not on the batch.
"""

from __future__ import annotations

import torch

from geneval.errors import GenevalInputError
from geneval.images import quantize_to_uint8
from trainers.common.runs import module_device
from trainers.common.seeding import generator
from trainers.diffusion.diffusion import GaussianDiffusion

SAMPLE_STREAM = 7  # derived_seed(seed, SAMPLE_STREAM, i): the noise of sample i


def timestep_sequence(num_timesteps: int, steps: int) -> list[int]:
    """τ: ``steps`` timesteps evenly spaced over 0 … T−1, both ends kept (improved-diffusion
    ``space_timesteps`` with one section); S = T is the full chain."""
    if not 1 <= steps <= num_timesteps:
        raise GenevalInputError(f"sampling_steps = {steps}: expected 1 … {num_timesteps} (the run's T)")
    if steps == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)})


def respaced(diffusion: GaussianDiffusion, timesteps: list[int]) -> GaussianDiffusion:
    """The S-step process on τ with β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} (the same marginals q(x_{τ_i} | x_0))."""
    ac = diffusion.alphas_cumprod[timesteps]
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    return GaussianDiffusion(1 - ac / prev, model_var=diffusion.model_var)


class DiffusionSampler:
    """``sample(num, seed, labels=None, *, sampler, sampling_steps, eta) -> uint8 [N, C, H, W]``."""

    def __init__(self, model: torch.nn.Module, diffusion: GaussianDiffusion, *, shape: tuple[int, int, int],
                 num_classes: int, conditional: bool, batch_size: int = 250):
        self.model, self.diffusion = model.eval(), diffusion
        self.shape, self.num_classes, self.conditional = tuple(shape), num_classes, conditional
        self.batch_size = batch_size

    def labels_for(self, num: int, labels=None) -> torch.Tensor | None:
        """The classes of ``num`` samples: as given, or ``i mod K`` for a conditional model; else None."""
        if not self.conditional:
            if labels is not None:
                raise GenevalInputError("this diffusion model is unconditional: labels must be None")
            return None
        if labels is None:
            return torch.arange(num) % self.num_classes
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (num,):
            raise GenevalInputError(f"labels: expected {num} class indices, got shape {list(labels.shape)}")
        return labels

    @torch.inference_mode()
    def sample(self, num: int, seed: int, labels=None, *, sampler: str = "ddpm", sampling_steps: int | None = None,
               eta: float | None = None, first: int = 0) -> torch.Tensor:
        """``num`` samples (indices ``first …``); ``sampling_steps`` None = T; ``eta`` (DDIM only) None = 0."""
        if sampler not in ("ddpm", "ddim"):
            raise GenevalInputError(f"sampler = {sampler!r}; expected ddpm or ddim")
        if sampler == "ddpm" and eta is not None:
            raise GenevalInputError("eta is DDIM's (Song et al. eq. 16); the ddpm sampler takes none")
        steps = sampling_steps or self.diffusion.num_timesteps
        taus = timestep_sequence(self.diffusion.num_timesteps, steps)
        y = self.labels_for(num, labels)
        out = []
        for start in range(0, num, self.batch_size):
            stop = min(num, start + self.batch_size)
            gens = [generator(seed, SAMPLE_STREAM, first + i) for i in range(start, stop)]
            yb = y[start:stop].to(module_device(self.model)) if y is not None else None
            x = (self.ddpm_chain if sampler == "ddpm" else self.ddim_chain)(gens, taus, yb, eta=eta or 0.0)
            out.append(quantize_to_uint8(x.clamp(-1, 1).cpu(), "-1,1", what="diffusion sample"))
        return torch.cat(out) if out else torch.zeros((0, *self.shape), dtype=torch.uint8)

    __call__ = sample

    # --------------------------------------------------------------------------------------------- chains
    def noise(self, gens: list[torch.Generator]) -> torch.Tensor:
        """Each sample's next normal draw (on the CPU, from its own generator), where the model runs."""
        return torch.stack([torch.randn(self.shape, generator=g, dtype=torch.float64) for g in gens]) \
            .to(module_device(self.model))

    def network(self, x: torch.Tensor, t: int, labels) -> torch.Tensor:
        return self.model(x.float(), torch.full((len(x),), t, dtype=torch.long, device=x.device), labels)

    def ddpm_chain(self, gens, taus: list[int], labels, *, eta: float = 0.0) -> torch.Tensor:
        """Algorithm 2 on the respaced process (the full chain when τ = 0 … T−1)."""
        process = respaced(self.diffusion, taus) if len(taus) != self.diffusion.num_timesteps else self.diffusion
        x = self.noise(gens)  # x_T ~ N(0, I)
        for i in reversed(range(len(taus))):
            index = torch.full((len(x),), i, dtype=torch.long, device=x.device)
            out = process.p_mean_variance(self.network(x, taus[i], labels), x, index, clip=True)
            x = out.mean
            if i > 0:  # no noise at the last step (Algorithm 2: z = 0 when t = 1)
                x = x + torch.exp(0.5 * out.log_variance) * self.noise(gens)
        return x

    def ddim_chain(self, gens, taus: list[int], labels, *, eta: float = 0.0) -> torch.Tensor:
        """Song et al. eq. 12 over τ with σ_i from eq. 16."""
        d = self.diffusion
        x = self.noise(gens)
        for i in reversed(range(len(taus))):
            t = torch.full((len(x),), taus[i], dtype=torch.long, device=x.device)
            out = d.p_mean_variance(self.network(x, taus[i], labels), x, t, clip=True)
            a_t = d.alphas_cumprod[taus[i]]
            a_prev = d.alphas_cumprod[taus[i - 1]] if i > 0 else torch.tensor(1.0, dtype=torch.float64)
            sigma = eta * torch.sqrt((1 - a_prev) / (1 - a_t)) * torch.sqrt(1 - a_t / a_prev)
            x = a_prev.sqrt() * out.pred_x0 + torch.sqrt((1 - a_prev - sigma ** 2).clamp_min(0)) * out.eps
            if i > 0 and eta > 0:
                x = x + sigma * self.noise(gens)
        return x
