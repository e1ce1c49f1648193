"""Train a VQ-VAE, then its Gated PixelCNN prior, and evaluate the bound, reconstructions, codebook and samples.

    geneval train vqvae --dataset cifar10 --budget small --out runs/vqvae-cifar10 --resume
    geneval train vqvae --dataset fashion-mnist --budget small --set codebook_update=loss --out runs/vq-loss

One run, two stages on the run harness (``trainers.common.harness``: one checkpoint, exact resume in either stage):
steps ``0 … steps−1`` train the autoencoder and its codebook (Adam, ``lr``), steps ``steps … steps+prior_steps−1``
train the prior on the codes of training batches with the autoencoder fixed (its own Adam, ``prior_lr``); each
stage has its own warm-up and cosine decay. Evaluation, samples and record are ``trainers.common.likelihood_training``
with these extra metrics on the test split: reconstruction MSE and PSNR of the decoder's mean image, codebook usage
(codes used at least once) and perplexity exp(H) of the code frequencies, and the bound split into its terms.

Budgets (how long and how big):

    smoke  a few steps of each stage on 256 images (seconds; the test suite runs it)
    small  ≤ 30 minutes of one run on the shared 2-core CPU (training + evaluation with 10,000 samples; measured in
           the records' wall_time_s): 64/128 hidden channels, K = 128 codes of dimension 16, a 5-layer prior
    paper  the paper's image model (§4.1): 256 hidden channels in every layer, K = 512 codes of dimension 64,
           2 residual blocks each side; latents 7×7 (28×28 images) or 8×8 (32×32); a 12-layer, 64-channel
           Gated PixelCNN prior; 100,000 + 100,000 steps of batch 128 (days on this CPU; not run here)

Likelihood kind ``elbo`` (``VQVAE.log_prob``): −log p(x) ≤ −log p(x | z_q(x)) − log p(z_q(x)), the posterior being
one-hot; ``test_bits_per_dim`` uses the trained prior, ``test_uniform_bits_per_dim`` the uniform prior over K codes
per latent (the bound of the paper's 4.67 bits/dim on CIFAR-10).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from geneval.errors import GenevalInputError
from geneval.grid import save_grid
from trainers.common import ddp
from trainers.common.likelihood_training import (LikelihoodTrainConfig, Spec, TrainingData, build_model,
                                                   load_for_likelihood, lr_at, model_config, optimise)
from trainers.common.seeding import generator
from trainers.vqvae.model import CODEBOOK_UPDATES, VQVAE

RESTART = 401  # stream id of the dead-code restarts' draws
VQVAE_DATASETS = ("mnist", "fashion-mnist", "cifar10")  # 8-bit data: the decoder is a discretised logistic
LN2 = math.log(2.0)


@dataclass(frozen=True)
class VQVAEConfig(LikelihoodTrainConfig):
    dataset: str = "cifar10"
    model: str = "vqvae"
    lr: float = 2e-4  # the paper's Adam learning rate
    hidden: int = 128  # channels of the encoder/decoder (the first/last stride-2 layer has half)
    res_hidden: int = 32  # channels inside a residual block
    num_codes: int = 128  # K
    code_dim: int = 16  # D
    codebook_update: str = "ema"  # "ema" (Appendix A.1) or "loss" (the codebook term of eq. 3)
    ema_decay: float = 0.99  # γ
    beta: float = 0.25  # commitment weight
    restart_threshold: float = 1.0  # a code used fewer times per step (moving average) is restarted; 0 = never
    prior_steps: int = 1000
    prior_batch_size: int = 64
    prior_lr: float = 1e-3
    prior_channels: int = 32
    prior_layers: int = 5
    prior_embedding: int = 16  # each code is read by the prior through a learned vector of this size

    @property
    def total_steps(self) -> int:
        return self.steps + self.prior_steps

    def validate(self) -> None:
        super().validate()
        if self.dataset not in VQVAE_DATASETS:
            raise GenevalInputError(f"dataset {self.dataset!r}: the VQ-VAE models 8-bit data ({', '.join(VQVAE_DATASETS)})")
        if self.codebook_update not in CODEBOOK_UPDATES:
            raise GenevalInputError(f"codebook_update {self.codebook_update!r} is not one of {', '.join(CODEBOOK_UPDATES)}")
        for name in ("hidden", "res_hidden", "num_codes", "code_dim", "prior_steps", "prior_batch_size",
                     "prior_channels", "prior_layers", "prior_embedding"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.hidden % 2:
            raise GenevalInputError(f"hidden must be even (the first layer has hidden / 2 channels), got {self.hidden}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise GenevalInputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.beta < 0 or self.restart_threshold < 0:
            raise GenevalInputError(f"beta and restart_threshold must be ≥ 0, got {self.beta}, {self.restart_threshold}")
        if self.steps % self.log_every:
            # a log line must not average steps of both stages (their losses differ)
            raise GenevalInputError(f"steps ({self.steps}) must be a multiple of log_every ({self.log_every})")


def build(config: VQVAEConfig, data: TrainingData) -> VQVAE:
    return VQVAE(shape=data.shape, hidden=config.hidden, res_hidden=config.res_hidden, num_codes=config.num_codes,
                 code_dim=config.code_dim, codebook_update=config.codebook_update, ema_decay=config.ema_decay,
                 beta=config.beta, prior_channels=config.prior_channels, prior_layers=config.prior_layers,
                 prior_embedding=config.prior_embedding)


class VQVAETraining:
    """The two stages as one harness Trainable: the autoencoder for ``steps`` steps, then the prior.

    Under torchrun (``ctx``) each rank encodes its rows of the global batch; the codebook's EMA update, the usage
    counts and the dead-code restarts read the encoder outputs of the whole global batch (gathered in rank order,
    ``ddp.gather_rows``), so every rank makes the single process's codebook update."""

    def __init__(self, spec: Spec, config: VQVAEConfig, data: TrainingData, *, device="cpu", ctx=None):
        self.config, self.data, self.device, self.ctx = config, data, torch.device(device), ctx
        self.rows = ddp.rank_rows(config.batch_size, ctx)
        self.prior_rows = ddp.rank_rows(config.prior_batch_size, ctx)
        self.model = build_model(spec, config, data, device=self.device, ctx=ctx)
        autoencoder = [p for name, p in self.model.named_parameters()
                       if not name.startswith("prior.") and p.requires_grad]
        self.autoencoder_optimizer = torch.optim.Adam(autoencoder, lr=config.lr)
        self.prior_optimizer = torch.optim.Adam(self.model.prior.parameters(), lr=config.prior_lr)
        self.prior_schedule = dataclasses.replace(config, steps=config.prior_steps, lr=config.prior_lr)
        self.model.train()
        self.step = 0

    def train_step(self) -> dict[str, float]:
        losses = self._autoencoder_step() if self.step < self.config.steps else self._prior_step()
        self.step += 1
        return losses

    def _autoencoder_step(self) -> dict[str, float]:
        config, step, quantizer = self.config, self.step, self.model.quantizer
        x, _ = self.data.batch(step, config.batch_size, self.rows)
        loss, terms, flat, codes = self.model.autoencoder_loss(x.to(self.device))
        optimise(self.autoencoder_optimizer, loss, lr=lr_at(step, config), grad_clip=config.grad_clip, ctx=self.ctx)
        flat, codes = ddp.gather_rows(flat, self.ctx), ddp.gather_rows(codes, self.ctx)  # the global batch's
        if quantizer.update == "ema":
            quantizer.ema_update(flat, codes)
        quantizer.track_usage(codes)
        restarted = 0
        if config.restart_threshold > 0:
            restarted = quantizer.restart_dead(flat, threshold=config.restart_threshold,
                                               generator=generator(config.seed, RESTART, step))
        counts = torch.bincount(codes, minlength=quantizer.num_codes).double()
        means = ddp.mean_over_ranks({"recon_nats": float(terms["recon_nats"].detach()),
                                     "commitment": float(terms["commitment"].detach())}, self.ctx)
        return {**means, "perplexity": perplexity(counts), "restarted": float(restarted)}

    def _prior_step(self) -> dict[str, float]:
        config, step = self.config, self.step - self.config.steps
        x, _ = self.data.batch(step, config.prior_batch_size, self.prior_rows)
        loss = self.model.prior_loss(x.to(self.device))
        optimise(self.prior_optimizer, loss, lr=lr_at(step, self.prior_schedule), grad_clip=config.grad_clip,
                 ctx=self.ctx)
        return ddp.mean_over_ranks({"prior_nats": float(loss.detach())}, self.ctx)

    def log_fields(self, means: dict) -> dict:
        if "prior_nats" in means:
            return {"stage": "prior", "prior_nats": round(means["prior_nats"], 4),
                    "prior_bits_per_dim": round(means["prior_nats"] / (self.data.num_dims * LN2), 5),
                    "lr": lr_at(self.step - 1 - self.config.steps, self.prior_schedule)}
        return {"stage": "autoencoder", "recon_bits_per_dim": round(means["recon_nats"] / (self.data.num_dims * LN2), 5),
                "commitment": round(means["commitment"], 6), "perplexity": round(means["perplexity"], 2),
                "restarted": int(round(means["restarted"] * self.config.log_every)), "lr": lr_at(self.step - 1, self.config)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "autoencoder_optimizer": self.autoencoder_optimizer.state_dict(),
                "prior_optimizer": self.prior_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.autoencoder_optimizer.load_state_dict(state["autoencoder_optimizer"])
        self.prior_optimizer.load_state_dict(state["prior_optimizer"])


def perplexity(counts: torch.Tensor) -> float:
    """exp of the entropy (nats) of the code frequencies: K when every code is used equally, 1 for one code."""
    p = counts / counts.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


# --------------------------------------------------------------------------------------------- evaluation


def _test_images(config: VQVAEConfig, data: TrainingData) -> torch.Tensor:
    from trainers.common.data import load_split

    images, _, _ = load_split(data.source, "test")
    return images[:config.eval_num]


def _metric(values: np.ndarray, label: str, higher_is_better: bool) -> dict:
    return {"value": float(values.mean()), "std": float(values.std(ddof=1) / math.sqrt(len(values))),
            "label": label, "higher_is_better": higher_is_better}


def extra_metrics(model: VQVAE, config: VQVAEConfig, data: TrainingData) -> dict:
    """Reconstruction, codebook and the bound's terms on the test split (± standard errors over test images)."""
    from geneval.metrics.ssim import psnr

    images = _test_images(config, data)
    per_dim = data.num_dims * LN2
    recon, prior, uniform, mse, peak, counts = [], [], [], [], [], torch.zeros(model.quantizer.num_codes, dtype=torch.float64)
    for part in images.split(config.eval_batch_size):
        terms = model.log_prob_terms(part)
        recon.append(-terms["reconstruction"].numpy())
        prior.append(-terms["prior"].numpy())
        uniform.append(-(terms["reconstruction"] + terms["uniform_prior"]).numpy())
        rebuilt = model.reconstruct(part)
        mse.append(((rebuilt.double() - part.double()) ** 2).flatten(1).mean(1).numpy())
        peak.append(psnr(rebuilt, part))
        counts += torch.bincount(model.codes(part).flatten(), minlength=model.quantizer.num_codes).double()
    recon, prior, uniform = (np.concatenate(v) / per_dim for v in (recon, prior, uniform))
    mse, peak = np.concatenate(mse), np.concatenate(peak)
    return {
        "test_recon_bits_per_dim": _metric(recon, "−log p(x | z_q) bits/dim", False),
        "test_prior_bits_per_dim": _metric(prior, "−log p(z_q) bits/dim (trained prior)", False),
        "test_uniform_bits_per_dim": _metric(uniform, "bits/dim bound, uniform prior (log K per latent)", False),
        "test_mse": _metric(mse, "reconstruction MSE (0–255 pixels², decoder mean)", False),
        "test_psnr": _metric(peak[np.isfinite(peak)] if np.isfinite(peak).sum() > 1 else peak,
                             "reconstruction PSNR (dB)", True),
        "codebook_usage": {"value": float((counts > 0).double().mean()), "std": None,
                           "label": f"codes used on the test split (of K = {model.quantizer.num_codes})",
                           "higher_is_better": True, "details": {"used": int((counts > 0).sum())}},
        "codebook_perplexity": {"value": perplexity(counts), "std": None,
                                "label": "code perplexity exp(H) on the test split", "higher_is_better": True},
    }


def artifacts(model: VQVAE, config: VQVAEConfig, data: TrainingData, run) -> dict:
    """``reconstructions.png``: rows of 10 test images, each followed by its reconstruction (decoder mean)."""
    images = _test_images(config, data)[:50]
    rebuilt = model.reconstruct(images)
    rows = torch.stack([images.view(5, 10, *images.shape[1:]), rebuilt.view(5, 10, *images.shape[1:])], dim=1)
    save_grid(run.file("reconstructions.png"), rows.reshape(100, *images.shape[1:]), ncols=10, scale=2)
    return {"reconstructions": "reconstructions.png"}


SPECS = {"vqvae": Spec(family="vqvae", model="vqvae", build=build, kind=lambda config: "elbo",
                       published={"cifar10": {"bits_per_dim": 4.67, "nats": round(4.67 * 3072 * LN2, 2), "bound": True,
                                              "source": "van den Oord et al. 2017 (VQ-VAE), §4.1: 4.67 bits/dim on "
                                                        "CIFAR-10, a bound (decoder log-likelihood and log K per latent)"}},
                       extra_metrics=extra_metrics, artifacts=artifacts, training=VQVAETraining)}
MODELS = tuple(SPECS)

SMOKE = dict(steps=6, prior_steps=4, batch_size=16, prior_batch_size=16, warmup_steps=2, train_num=256, eval_num=64,
             eval_batch_size=64, num_samples=8, timing_num=4, sample_features="pixels", checkpoint_every=3, log_every=2,
             hidden=8, res_hidden=4, num_codes=8, code_dim=4, prior_channels=4, prior_layers=2, prior_embedding=3)
BUDGETS = {"vqvae": {
    "smoke": SMOKE,
    "small": dict(steps=5000, prior_steps=3000, batch_size=64, prior_batch_size=64, warmup_steps=200,
                  num_samples=10000, checkpoint_every=250, log_every=50),
    "paper": dict(steps=100000, prior_steps=100000, batch_size=128, prior_batch_size=128, hidden=256, res_hidden=256,
                  num_codes=512, code_dim=64, prior_channels=64, prior_layers=12, prior_embedding=64,
                  num_samples=10000, checkpoint_every=1000, log_every=100),
}}


def make_config(model: str = "vqvae", *, budget: str, dataset: str, overrides: dict) -> VQVAEConfig:
    """The config at ``budget`` on ``dataset``, with ``--set`` overrides, validated."""
    return model_config(VQVAEConfig, model, BUDGETS, budget=budget, dataset=dataset, overrides=overrides)


def load_likelihood_model(state: dict):
    """Entry point ``geneval.likelihood: vqvae``: a checkpoint → its bound as a LikelihoodModel."""
    return load_for_likelihood(state, SPECS, VQVAEConfig)
