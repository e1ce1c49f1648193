"""Train a normalizing flow (NICE, RealNVP, Glow) on 8-bit images and evaluate its dequantised test likelihood.

    geneval train glow --dataset mnist --budget small --out runs/glow-mnist --resume
    geneval train realnvp --dataset mnist --budget paper --out runs/realnvp-mnist-paper --resume

The loop, checkpoints, exact resume, evaluation and record are ``trainers.common.likelihood_training``; this file
says which flow each name (the *preset*) builds and the budgets (how long and how big):

    smoke  a few steps on 256 images (seconds; the test suite runs it)
    small  ≤ 30 minutes of one run on a 2-core CPU shared with other jobs (measured: the records' wall_time_s)
    paper  the papers' architectures scaled to 28×28: NICE 4 couplings × 5 hidden layers of 1000 units (the
           paper's MNIST model); RealNVP 2 scales (28 → 14; the paper's 32×32 models have more), 3 + 3
           couplings per scale, ResNet-free 64-channel coupling nets (the paper: 8 residual blocks of 64
           features); Glow L = 2 levels (28 → 14 → 7, the paper's L = 3 needs 32×32), K = 32 steps, 512-channel
           coupling nets (the paper: 512 features, K = 32). NICE and Glow: 150,000 steps (days on this CPU);
           RealNVP: 30,000 steps of batch 64 (≈ 32 epochs; 0.4–0.6 s per step on one shared thread, so
           3.5–5 h, trained over several sessions: its checkpoint is committed under
           leaderboards/checkpoints/ and resumed with --resume).

Likelihood kind ``elbo``: −log_prob is the uniform-dequantisation bound −E_u log p((x + u)/256) + D·log 256 ≥
−log P(x), i.e. an ELBO with q(u | x) uniform, estimated with one u per test image (``models.eval_noise``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geneval.errors import GenevalInputError
from trainers.common.likelihood_training import (LikelihoodTrainConfig, Spec, TrainingData, load_for_likelihood,
                                                   model_config)
from trainers.flows.models import PRIORS, check_shape, glow, nice, realnvp

PUBLISHED_BITS_PER_DIM = {  # test bits/dim of 8-bit data under uniform dequantisation, per dataset
    "nice": {"mnist": (4.34, "NICE as reported by pytorch-generative (MNIST, 8-bit dequantised, bits/dim)")},
    "realnvp": {"mnist": (1.06, "RealNVP on MNIST as listed in Kingma & Dhariwal 2018 (Glow), Table 2"),
                "cifar10": (3.49, "Dinh et al. 2017 (RealNVP), Table 1, CIFAR-10")},
    "glow": {"mnist": (1.05, "Kingma & Dhariwal 2018 (Glow), Table 2, MNIST"),
             "cifar10": (3.35, "Kingma & Dhariwal 2018 (Glow), Table 2, CIFAR-10")},
}
NORMS = ("batchnorm", "actnorm", "none")
FLOW_DATASETS = ("mnist", "fashion-mnist", "cifar10")  # 8-bit data only: a flow's density needs dequantisation


@dataclass(frozen=True)
class FlowsConfig(LikelihoodTrainConfig):
    dataset: str = "mnist"
    model: str = "glow"
    hidden: int = 64  # NICE: units per hidden layer; RealNVP / Glow: channels of the coupling networks
    num_hidden: int = 1  # NICE: hidden layers per coupling MLP; RealNVP / Glow: 1×1 hidden convs per net
    num_couplings: int = 4  # NICE: couplings; RealNVP: couplings per stage (checkerboard, then channel)
    num_levels: int = 2  # RealNVP: scales; Glow: levels L
    depth: int = 8  # Glow: steps of flow per level K
    lu: bool = True  # Glow: LU-decomposed 1×1 convolution (False: plain, slogdet)
    norm: str = "batchnorm"  # RealNVP: batchnorm (the paper), actnorm or none
    prior: str = "logistic"  # NICE: logistic (the paper's MNIST choice) or gaussian
    logit_alpha: float = 0.05  # RealNVP pre-processing logit(α + (1 − 2α)x), the paper's α

    def validate(self) -> None:
        super().validate()
        if self.model not in MODELS:
            raise GenevalInputError(f"model {self.model!r} is not one of {', '.join(MODELS)}")
        if self.dataset not in FLOW_DATASETS:
            raise GenevalInputError(f"dataset {self.dataset!r}: flows model 8-bit data ({', '.join(FLOW_DATASETS)})")
        for name in ("hidden", "num_couplings", "num_levels", "depth"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.num_hidden < 0:
            raise GenevalInputError(f"num_hidden must be ≥ 0, got {self.num_hidden}")
        if self.norm not in NORMS:
            raise GenevalInputError(f"norm {self.norm!r} is not one of {', '.join(NORMS)}")
        if self.prior not in PRIORS:
            raise GenevalInputError(f"prior {self.prior!r} is not one of {', '.join(PRIORS)}")
        if not 0.0 <= self.logit_alpha < 0.5:
            raise GenevalInputError(f"logit_alpha must be in [0, 0.5), got {self.logit_alpha}")
        from geneval.datasets import DATASETS as GENEVAL_DATASETS
        from trainers.common.likelihood_training import TRAINING_DATASETS

        shape = tuple(GENEVAL_DATASETS.get(TRAINING_DATASETS[self.dataset][0]).shape)
        squeezes = {"nice": 0, "realnvp": self.num_levels - 1, "glow": self.num_levels}[self.model]
        _require(shape, squeezes, self.model)


def build(config: FlowsConfig, data: TrainingData):
    shape = data.shape
    if config.model == "nice":
        return nice(shape=shape, hidden=config.hidden, num_hidden=config.num_hidden,
                    num_couplings=config.num_couplings, prior=config.prior)
    if config.model == "realnvp":
        _require(shape, config.num_levels - 1, "realnvp")
        return realnvp(shape=shape, hidden=config.hidden, num_hidden=config.num_hidden,
                       num_scales=config.num_levels, num_couplings=config.num_couplings, norm=config.norm,
                       logit_alpha=config.logit_alpha)
    _require(shape, config.num_levels, "glow")
    return glow(shape=shape, hidden=config.hidden, num_hidden=config.num_hidden, num_levels=config.num_levels,
                depth=config.depth, lu=config.lu)


def _require(shape, squeezes: int, what: str) -> None:
    try:
        check_shape(shape, squeezes=squeezes, what=what)
    except ValueError as exc:
        raise GenevalInputError(f"{exc} (lower num_levels)") from None


def published(model: str) -> dict:
    dims = {"mnist": 784, "cifar10": 3072}
    return {dataset: {"bits_per_dim": bits, "nats": round(bits * dims[dataset] * math.log(2), 2), "source": source}
            for dataset, (bits, source) in PUBLISHED_BITS_PER_DIM[model].items()}


SPECS = {name: Spec(family="flows", model=name, build=build, kind=lambda config: "elbo", published=published(name))
         for name in ("nice", "realnvp", "glow")}
MODELS = tuple(SPECS)

SMOKE = dict(steps=6, batch_size=16, warmup_steps=2, train_num=256, eval_num=64, eval_batch_size=64, num_samples=8,
             timing_num=4, sample_features="pixels", checkpoint_every=3, log_every=2)
# small: sized so one run (training + evaluation with 10,000 samples) takes ≤ 30 minutes on the shared 2-core CPU.
SMALL = dict(batch_size=64, lr=1e-3, warmup_steps=200, num_samples=10000, checkpoint_every=250, log_every=50)
BUDGETS: dict[str, dict[str, dict]] = {
    "nice": {"smoke": {**SMOKE, "hidden": 16, "num_hidden": 2},
             "small": {**SMALL, "steps": 8000, "hidden": 500, "num_hidden": 4},
             "paper": dict(steps=150000, batch_size=64, lr=1e-3, hidden=1000, num_hidden=5, num_samples=10000)},
    "realnvp": {"smoke": {**SMOKE, "hidden": 4, "num_couplings": 2},
                "small": {**SMALL, "steps": 3500, "hidden": 32, "num_couplings": 2},
                "paper": dict(steps=30000, batch_size=64, lr=1e-3, hidden=64, num_hidden=2, num_couplings=3,
                              num_samples=10000)},
    "glow": {"smoke": {**SMOKE, "hidden": 4, "depth": 2},
             "small": {**SMALL, "steps": 6000, "hidden": 48, "depth": 6},
             "paper": dict(steps=150000, batch_size=64, lr=1e-3, hidden=512, depth=32, num_samples=10000)},
}
BUDGET_NAMES = ("smoke", "small", "paper")


def make_config(model: str, *, budget: str, dataset: str, overrides: dict) -> FlowsConfig:
    """The config of ``model`` at ``budget`` on ``dataset``, with ``--set`` overrides, validated."""
    if model not in BUDGETS:
        raise GenevalInputError(f"unknown flow {model!r}; known: {', '.join(BUDGETS)}")
    return model_config(FlowsConfig, model, BUDGETS, budget=budget, dataset=dataset, overrides=overrides)


def load_likelihood_model(state: dict):
    """Entry point ``geneval.likelihood: flows``: a checkpoint → a LikelihoodModel."""
    return load_for_likelihood(state, SPECS, FlowsConfig)
