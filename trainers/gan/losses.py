"""GAN objectives, written on the discriminator's raw scores (logits for the two cross-entropy losses).

| name          | D minimises                                  | G minimises                | reference |
|---------------|----------------------------------------------|----------------------------|-----------|
| ``minimax``   | −log D(x) − log(1 − D(G(z)))                 | log(1 − D(G(z)))           | Goodfellow et al. 2014, eq. 1 |
| ``nonsat``    | same                                         | −log D(G(z))               | Goodfellow et al. 2014, §3 ("maximise log D(G(z))") |
| ``wasserstein`` | f(G(z)) − f(x)                            | −f(G(z))                   | Arjovsky et al. 2017 (with clipping or a penalty) |
| ``hinge``     | relu(1 − f(x)) + relu(1 + f(G(z)))           | −f(G(z))                   | Lim & Ye 2017; Miyato et al. 2018; Zhang et al. 2019 |

``D(·) = sigmoid(f(·))``; ``log D = −softplus(−f)`` and ``log(1 − D) = −softplus(f)`` are used for stability.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("minimax", "nonsat", "wasserstein", "hinge")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss (a scalar mean over the batch) from its scores on real and generated data."""
    if kind in ("minimax", "nonsat"):
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the discriminator's scores on generated data."""
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 − D(G(z))): saturates (vanishing gradient) when D wins
    if kind == "nonsat":
        return F.softplus(-fake).mean()  # −log D(G(z))
    if kind in ("wasserstein", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")


def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None, *,
                     generator: torch.Generator, batch_size: int | None = None, rows: slice = slice(None)) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, Algorithm 1): ``E[(‖∇_x̂ f(x̂)‖₂ − 1)²]`` at
    ``x̂ = ε·x + (1 − ε)·G(z)``, ``ε ~ U[0, 1]`` per sample (drawn from the step's generator). The labels of a
    conditional critic are the real ones. Under data parallelism ``real`` holds this rank's ``rows`` of a global
    batch of ``batch_size``: ε is drawn for the whole batch (as one process draws it) and sliced."""
    eps = torch.rand(batch_size or real.shape[0], *([1] * (real.ndim - 1)), generator=generator)[rows].to(real.device)
    mixed = (eps * real + (1.0 - eps) * fake.detach()).requires_grad_(True)
    score, _ = discriminator(mixed, y)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()
