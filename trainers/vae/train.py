"""Train a VAE and report its test ELBO and IWAE bound with geneval, plus the latent manifold and
interpolation pictures of Kingma & Welling (2014, Fig. 4) and the IWAE paper.

    geneval train vae --dataset binarized-mnist --budget small --out runs/vae-bmnist
    geneval train vae --dataset fashion-mnist --budget small --set latent_dim=2 --out runs/vae2-fmnist --resume

The loop, checkpoints, evaluation and record are ``trainers.common.likelihood_training``. The reported
likelihood is the IWAE bound with K = ``iwae_k`` (kind ``iwae-K``); the ELBO is recorded beside it. Both are
upper bounds on the test NLL, so they are never presented as exact likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geneval.errors import GenevalInputError
from geneval.grid import save_grid
from geneval.likelihood import evaluate
from trainers.common.likelihood_training import (
    LikelihoodAdapter,
    LikelihoodTrainConfig,
    Spec,
    TrainingData,
    load_for_likelihood,
)
from trainers.common.seeding import derived_seed
from trainers.vae.model import VAE


@dataclass(frozen=True)
class VAEConfig(LikelihoodTrainConfig):
    latent_dim: int = 32
    hidden: int = 512
    iwae_k: int = 100  # importance samples of the reported bound (the paper budget: Burda et al.'s 5000)
    elbo_k: int = 10  # samples averaged for the (unbiased) test ELBO estimate
    manifold_size: int = 15  # the manifold picture is manifold_size² decoded latents

    def validate(self) -> None:
        super().validate()
        for name in ("latent_dim", "hidden", "iwae_k", "elbo_k", "manifold_size"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.manifold_size < 2:
            raise GenevalInputError(f"manifold_size must be ≥ 2, got {self.manifold_size}")


def build(config: VAEConfig, data: TrainingData) -> VAE:
    return VAE(shape=data.shape, levels=data.levels, latent_dim=config.latent_dim, hidden=config.hidden,
               iwae_k=config.iwae_k, elbo_k=config.elbo_k, eval_seed=derived_seed(config.seed, 301))


class _ELBO:
    """The VAE's test ELBO as a geneval likelihood model of kind ``elbo``."""

    kind = "elbo"

    def __init__(self, model: VAE, convention):
        self.model, self.convention = model, convention

    def log_prob(self, x, labels=None):
        return self.model.elbo(x)


def extra_metrics(model: VAE, config: VAEConfig, data: TrainingData) -> dict:
    result = evaluate(_ELBO(model, data.convention), data.test_split, num=config.eval_num,
                      batch_size=config.eval_batch_size)
    return {
        "test_elbo_nats": {"value": result.nats, "std": result.nats_std_err,
                           "label": f"test negative ELBO, nats ({config.elbo_k}-sample estimate)",
                           "higher_is_better": False},
        "test_elbo_bits_per_dim": {"value": result.bits_per_dim, "std": result.bits_per_dim_std_err,
                                   "label": "test negative ELBO, bits/dim", "higher_is_better": False},
    }


def artifacts(model: VAE, config: VAEConfig, data: TrainingData, run) -> dict:
    """``manifold.png``: decoded means over a grid of latents at Gaussian quantiles (Kingma & Welling Fig. 4)
    — the whole latent when latent_dim = 2, else the two most used dimensions (largest mean KL on test
    images) with the others at 0; ``interpolations.png``: decoded means along straight lines between the
    posterior means of pairs of test images; ``means.png``: decoder means of the sample latents."""
    from trainers.common.data import load_split

    test, _, _ = load_split(data.source, "test")
    test = data.convention.prepare(test[:500], first_index=0)
    mu, logvar = model.encode(test)
    if model.latent_dim == 2:
        dims = (0, 1)
    else:
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)
        dims = tuple(int(d) for d in kl.argsort(descending=True)[:2])
    n = config.manifold_size
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.5 / n, 1 - 0.5 / n, n))
    z = torch.zeros(n * n, model.latent_dim)
    z[:, dims[0]] = quantiles.repeat(n)  # columns
    z[:, dims[1]] = quantiles.flip(0).repeat_interleave(n)  # rows, top = high
    save_grid(run.file("manifold.png"), model.mean_image(model.decode(z)), ncols=n, padding=0, scale=2)

    steps, pairs = 10, 8
    a, b = mu[0:2 * pairs:2], mu[1:2 * pairs:2]
    t = torch.linspace(0, 1, steps)[None, :, None]
    path = (a[:, None] * (1 - t) + b[:, None] * t).reshape(pairs * steps, -1)
    save_grid(run.file("interpolations.png"), model.mean_image(model.decode(path)), ncols=steps, scale=2)

    z_samples = torch.stack([torch.randn(model.latent_dim, generator=torch.Generator().manual_seed(derived_seed(config.seed, 302, j)))
                             for j in range(100)])
    save_grid(run.file("means.png"), model.mean_image(model.decode(z_samples)), ncols=10, scale=2)
    return {"manifold": "manifold.png", "manifold_dims": list(dims), "interpolations": "interpolations.png",
            "decoder_means": "means.png"}


SPEC = Spec(family="vae", model="vae", build=build, kind=lambda config: f"iwae-{config.iwae_k}",
            published={"binarized-mnist": {"nats": 86.77, "bound": True,
                                           "source": "pytorch-generative README (VAE, dynamically binarised MNIST, "
                                                     "reported as an upper bound)"}},
            extra_metrics=extra_metrics, artifacts=artifacts)
SPECS = {"vae": SPEC}

SMOKE = dict(steps=6, batch_size=16, warmup_steps=2, train_num=256, eval_num=64, eval_batch_size=64, num_samples=8,
             timing_num=4, sample_features="pixels", checkpoint_every=3, log_every=2, latent_dim=2, hidden=32,
             iwae_k=8, elbo_k=2, manifold_size=4)
BUDGETS = {  # how long and how big (the VAE is the only model of its family: its preset is "vae")
    "smoke": SMOKE,
    "small": dict(steps=12000, batch_size=100, lr=1e-3, latent_dim=32, hidden=512, iwae_k=100, elbo_k=10),
    "paper": dict(steps=300000, batch_size=100, lr=1e-3, latent_dim=50, hidden=512, iwae_k=5000, elbo_k=100),
}


def make_config(*, budget: str, dataset: str, overrides: dict) -> VAEConfig:
    """The VAE config at ``budget`` on ``dataset``, with ``--set`` overrides, validated."""
    from trainers.common.config import apply_overrides

    if budget not in BUDGETS:
        raise GenevalInputError(f"vae: unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
    config = apply_overrides(VAEConfig(dataset=dataset, **BUDGETS[budget]), overrides, what="vae config")
    config.validate()
    return config


def load_likelihood_model(state: dict) -> LikelihoodAdapter:
    """Entry point ``geneval.likelihood: vae``: a checkpoint → its IWAE-K bound as a LikelihoodModel."""
    return load_for_likelihood(state, SPECS, VAEConfig)
