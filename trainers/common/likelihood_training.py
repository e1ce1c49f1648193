"""The training step every likelihood-model family shares (autoregressive models, VAEs), top to bottom; the
run folder, checkpoints, exact resume and logging are ``trainers.common.harness``.

    data   binarised MNIST (dynamic binarisation, as pytorch-generative and the NADE/MADE papers) or 8-bit
           Fashion-MNIST; batch ``(step)`` is a slice of epoch ``step // steps_per_epoch``'s permutation and its
           binarisation is drawn from ``generator(seed, BINARIZE, step)``, so step s draws the same data
           whether or not the run was interrupted before it
    train  Adam, linear warm-up then cosine decay computed from the step (no scheduler state), gradient
           clipping; the loss is the model's mean negative log-likelihood (or negative bound) in nats; with
           ``ema_decay`` > 0 in the config, a Polyak average of the weights (an EMA after every step, as the
           PixelCNN++ reference's ``polyak_decay``, debiased: ``trainers.common.ema``) is kept, checkpointed, evaluated and sampled instead of the last weights
    init   ``init_from`` (a run folder of the same model): start from its weights with a fresh Adam and this
           config's warm-up and cosine — fine-tuning, a restart of the schedule; the record's ``init_from`` names the
           folder, its checkpoint's sha256 and steps, and the totals of both runs
    save   ``checkpoint.pt`` (the harness's, atomic) every ``checkpoint_every`` steps and at the end: model and
           optimizer under ``trainer``, step, training wall time, the global RNG states, and ``family``,
           ``model_name`` and ``budget`` for the ``geneval.likelihood`` entry points
    eval   ``geneval.likelihood.evaluate`` on the whole test split (nats, bits/dim, standard error), sampling
           time of ``timing_num`` images and seconds per 1,000 over all ``num_samples``, a PNG grid, FID/IS/KID/precision/recall of ``num_samples``
           samples against the test split with the dataset's domain extractor, and ``record.json``
    device ``device`` (``--device``): the model, its batches, the test likelihood and the samples run there (per-
           sample noise is drawn on the CPU and moved, so a sample is the same on any device up to rounding);
           the family's extra metrics and pictures run on a CPU copy. TF32 stays off (precision ``float32``)
    ranks  under ``torchrun --nproc_per_node=N -m geneval train <model>`` every rank builds the same model (rank 0's
           weights broadcast), takes rows ``[r·B/N, (r+1)·B/N)`` of each global batch of ``batch_size`` B, draws
           its per-example noise as rows of the global batch's draw, and applies the gradient averaged over ranks
           (``trainers.common.ddp``); batch statistics (RealNVP's batch norm, Glow's and NICE's data-dependent
           initialisation) are the global batch's. So N processes train the single process's run, to float
           rounding; rank 0 alone checkpoints, logs, evaluates and writes the record, which names the device,
           the precision, the number of processes and the global and per-rank batch sizes (``compute``)

A family provides a ``Spec``: how to build its model from the config, the likelihood kind it reports, and
optional extra metrics and pictures. Models implement ``loss(x, labels, generator)``,
``log_prob(x, labels)`` and ``sample(num, seed=, first=, labels=)`` on uint8 data with ``levels`` values
(2 for binarised, 256 for 8-bit).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geneval import distributed
from geneval.atomic import atomic_path
from geneval.datasets import DATASETS as GENEVAL_DATASETS
from geneval.errors import GenevalInputError
from geneval.family import added_field
from geneval.grid import save_grid
from geneval.likelihood import EIGHT_BIT, DataConvention, binary_dynamic, evaluate
from trainers.common import ddp
from trainers.common.checkpoint import load_checkpoint
from trainers.common.config import config_dict
from trainers.common.data import binarize, load_split
from trainers.common.ema import debiased_weight
from trainers.common.harness import Budget, Harness
from trainers.common.runs import RunDir, count_parameters, module_device
from trainers.common.seeding import derived_seed, generator

log = logging.getLogger(__name__)

INIT, ORDER, BINARIZE, NOISE, SAMPLE, LABELS = 101, 102, 103, 104, 105, 106  # stream ids for derived_seed
EVAL_BINARIZATION_SEED = 0  # the fixed binarisation of the test split (recorded in the convention)
# The datasets these trainers accept → (the geneval dataset it is, binarised?). Shape, classes and the default
# extractor are that dataset's (geneval.datasets); binarized-mnist is MNIST with dynamic binarisation.
TRAINING_DATASETS = {"binarized-mnist": ("mnist", True), "fashion-mnist": ("fashion-mnist", False),
                     "mnist": ("mnist", False), "cifar10": ("cifar10", False)}  # 8-bit MNIST, CIFAR-10: the flows
DATASETS = tuple(TRAINING_DATASETS)
SAMPLE_METRICS = ("fid", "is", "kid", "precision", "recall")  # scored on samples (geneval.metrics names)


@dataclass(frozen=True)
class LikelihoodTrainConfig:
    """Fields every likelihood trainer has; families subclass it with their model's fields."""

    dataset: str = "binarized-mnist"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    grad_clip: float = 10.0  # max global gradient norm; 0 = off
    train_num: int | None = None  # use the first N training images (smoke runs); None = all
    eval_num: int | None = None  # evaluate on the first N test images; None = the whole split
    eval_batch_size: int = 500
    num_samples: int = 200  # samples scored with FID/IS/KID against the test split
    timing_num: int = 100  # the sampling time reported is for this many images
    sample_features: str | None = None  # extractor for sample metrics; None = the dataset's domain network
    checkpoint_every: int = 500
    log_every: int = 50
    # Warm start (fine-tuning): a finished or paused run folder of the same model whose checkpoint's weights this run
    # starts from, with a fresh optimiser and this config's schedule (``warm_start``); "" = seeded initial weights.
    init_from: str = added_field("")

    @property
    def total_steps(self) -> int:
        """Training steps of the whole run (a family that trains in stages adds its later stages)."""
        return self.steps

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise GenevalInputError(f"dataset {self.dataset!r} is not supported; expected one of {', '.join(DATASETS)}")
        for name in ("steps", "batch_size", "eval_batch_size", "checkpoint_every", "log_every", "timing_num"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.num_samples < self.timing_num:
            raise GenevalInputError(f"num_samples ({self.num_samples}) must be ≥ timing_num ({self.timing_num})")
        for name in ("train_num", "eval_num"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise GenevalInputError(f"{name} must be ≥ 2 or none, got {value}")


# --------------------------------------------------------------------------------------------- data


class TrainingData:
    """A dataset as the likelihood trainers see it: uint8 images with ``levels`` values and a convention."""

    def __init__(self, name: str, *, seed: int, train_num: int | None):
        self.name = name
        self.seed = seed
        self.source, self.binary = TRAINING_DATASETS[name]
        self.spec = GENEVAL_DATASETS.get(self.source)
        self.levels = 2 if self.binary else 256
        self.convention: DataConvention = binary_dynamic(EVAL_BINARIZATION_SEED) if self.binary else EIGHT_BIT
        images, labels, self.info = load_split(self.source, "train")
        self.images, self.labels = images[:train_num], labels[:train_num]
        self.num_classes = len(self.spec.classes)
        self.shape = tuple(self.spec.shape)
        self.num_dims = math.prod(self.shape)
        self.test_split = f"{self.source}:test"
        self._epoch, self._order = -1, None

    def batch(self, step: int, batch_size: int, rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 ``[B, C, H, W]`` (0/1 or 0..255) and labels of training step ``step``; full batches only.
        ``rows``: this rank's rows of the global batch (``ddp.rank_rows``), binarised as the global batch is."""
        per_epoch = max(1, len(self.images) // batch_size)
        epoch, index = divmod(step, per_epoch)
        if epoch != self._epoch:
            self._order = torch.randperm(len(self.images), generator=generator(self.seed, ORDER, epoch))
            self._epoch = epoch
        take = self._order[index * batch_size:(index + 1) * batch_size]
        x = self.images[take]
        if self.binary:  # dynamic binarisation: fresh Bernoulli(x/255) pixels at every step
            x = binarize(x, generator=generator(self.seed, BINARIZE, step)).to(torch.uint8)
        return x[rows], self.labels[take][rows]

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """Model values → uint8 pixels for PNGs and sample metrics (binary 0/1 → 0/255)."""
        return (x * 255).to(torch.uint8) if self.binary else x.to(torch.uint8)

    def test_reference(self, num: int | None) -> tuple[object, str]:
        """What samples are compared with: the test split as the model sees it (binarised with the recorded
        seed for binarised MNIST, as 0/255 pixels), and a name for the record."""
        if not self.binary:
            return self.test_split, self.test_split
        images, _, _ = load_split(self.source, "test")
        images = images[:num]
        return self.to_image(self.convention.prepare(images, first_index=0)), \
            f"mnist:test binarised (seed {EVAL_BINARIZATION_SEED}, 0/255)"


# --------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Spec:
    """What a family tells the loop about one model."""

    family: str  # the geneval.likelihood entry-point name its checkpoints load through
    model: str  # "pixelcnn", "vae", ...
    build: Callable  # (config, data: TrainingData) -> nn.Module with loss/log_prob/sample
    kind: Callable  # (config) -> "exact" | "iwae-K" | ...
    published: dict | None = None  # {dataset: {"nats": ..., "source": ...}} for the tables
    extra_metrics: Callable | None = None  # (model, config, data) -> {name: metric dict}
    artifacts: Callable | None = None  # (model, config, data, run) -> {name: relative path}
    # (spec, config, data, *, device, ctx) -> a harness Trainable with ``model``, for models trained in stages (a
    # VQ-VAE, then its prior); None = ``LikelihoodTraining``, one loss and one optimiser for ``config.steps`` steps
    training: Callable | None = None


def lr_at(step: int, config: LikelihoodTrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to zero at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def run_config(spec: Spec, config, budget: str) -> dict:
    return {"family": spec.family, "model": spec.model, "budget": budget, **config_dict(config)}


def build_model(spec: Spec, config, data: TrainingData, *, device: torch.device | str = "cpu",
                ctx=None) -> torch.nn.Module:
    """The model with its seeded initial weights, on ``device``; under torchrun (``ctx``) with synced batch norms
    and rank 0's weights on every rank."""
    torch.manual_seed(derived_seed(config.seed, INIT))  # initial weights depend on the seed only
    model = spec.build(config, data).to(device)
    if ctx is not None:
        ddp.broadcast_parameters(ddp.sync_batch_norms(model), ctx)
    return model


# What a warm start may change: how this run trains and is evaluated, never what the model is (its family, dataset
# and architecture fields must equal the source run's).
WARM_START_MAY_DIFFER = {"budget", "seed", "steps", "batch_size", "lr", "warmup_steps", "grad_clip", "train_num",
                         "eval_num", "eval_batch_size", "num_samples", "timing_num", "sample_features",
                         "checkpoint_every", "log_every", "init_from"}


def warm_start_source(spec: Spec, config) -> tuple[dict, dict]:
    """``(checkpoint, record entry)`` of the run folder ``config.init_from``, loaded with ``weights_only``; its model
    (family, dataset, architecture) must be this config's. The record entry: the folder, the checkpoint's sha256,
    its budget, steps and training time."""
    from geneval.weights import file_sha256

    path = Path(config.init_from) / "checkpoint.pt"  # relative: to the working directory, as --out is
    if not path.is_file():
        raise GenevalInputError(f"init_from {config.init_from!r}: no checkpoint.pt there; expected a run folder")
    state = load_checkpoint(path)
    source = state.get("config") or {}
    ours = run_config(spec, config, "")
    differ = sorted(k for k in (set(source) | set(ours)) - WARM_START_MAY_DIFFER if source.get(k) != ours.get(k))
    if differ:
        raise GenevalInputError(f"init_from {config.init_from}: that run's model differs from this one in "
                                + ", ".join(f"{k} ({source.get(k)!r} there, {ours.get(k)!r} here)" for k in differ))
    return state, {"run": str(config.init_from), "checkpoint_sha256": file_sha256(path), "budget": source.get("budget"),
                   "steps": int(state["step"]), "wall_time_s": round(float(state["wall_time_s"]), 2)}


def warm_start(model: torch.nn.Module, spec: Spec, config) -> dict:
    """Load the weights of the run folder ``config.init_from`` into ``model`` — fine-tuning as a restart of the
    learning-rate schedule (SGDR, Loshchilov & Hutter 2017) with a fresh Adam — and return the record's entry."""
    from geneval.weights import load_state_dict

    state, entry = warm_start_source(spec, config)
    load_state_dict(state["trainer"]["model"], model, path=Path(config.init_from) / "checkpoint.pt", what="init_from")
    return entry


def optimise(optimizer: torch.optim.Optimizer, loss: torch.Tensor, *, lr: float, grad_clip: float,
             ctx=None) -> torch.Tensor | None:
    """One update of every likelihood trainer (this loop, the VQ-VAE's stages, DDPM): gradients of ``loss``
    averaged over ranks (``ddp.average_gradients``: every rank then holds the gradient of the global batch's mean
    loss, as one process does), clipped to ``grad_clip`` (global norm; 0 = off), then the optimiser's step at
    ``lr``. Returns the gradient's norm before clipping (None without clipping)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ddp.average_gradients(params, ctx)
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else None
    optimizer.step()
    return norm


class LikelihoodTraining:
    """One model, its Adam optimiser and its data; ``train_step()`` is one step on batch ``step`` (this rank's rows
    of it under torchrun: ``ctx``)."""

    def __init__(self, spec: Spec, config, data: TrainingData, *, device: torch.device | str = "cpu", ctx=None):
        self.config, self.data, self.device, self.ctx = config, data, torch.device(device), ctx
        self.rows = ddp.rank_rows(config.batch_size, ctx)
        self.model = build_model(spec, config, data, device=self.device, ctx=ctx)
        self.init_from = warm_start(self.model, spec, config) if getattr(config, "init_from", "") else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.model.train()
        self.step = 0
        # Polyak averaging. Configs without an ema_decay field (every model before PixelCNN++) train without it;
        # the field is not on LikelihoodTrainConfig because a new field would change every committed record's
        # config hash.
        self.ema_decay = float(getattr(config, "ema_decay", 0.0))
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False) if self.ema_decay > 0 else None

    def train_step(self) -> dict[str, float]:
        config, step = self.config, self.step
        x, labels = self.data.batch(step, config.batch_size, self.rows)
        with ddp.global_batch(config.batch_size, self.ctx):  # per-example noise: the global batch's, these rows
            loss = self.model.loss(x.to(self.device), labels.to(self.device),
                                   generator=generator(config.seed, NOISE, step))  # mean nats per example
        optimise(self.optimizer, loss, lr=lr_at(step, config), grad_clip=config.grad_clip, ctx=self.ctx)
        if self.ema is not None:  # the debiased average of the weights after steps 1 … n; the same on every rank
            weight = debiased_weight(self.ema_decay, step + 1)
            with torch.no_grad():
                for averaged, current in zip(self.ema.parameters(), self.model.parameters()):
                    averaged.lerp_(current, weight)
                for averaged, current in zip(self.ema.buffers(), self.model.buffers()):
                    averaged.copy_(current)
        self.step += 1
        return ddp.mean_over_ranks({"train_nats": float(loss.detach())}, self.ctx)

    def log_fields(self, means: dict) -> dict:
        nats = means["train_nats"]
        return {"train_nats": round(nats, 4), "train_bits_per_dim": round(nats / (self.data.num_dims * math.log(2)), 5),
                "lr": lr_at(self.step - 1, self.config)}

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """What is evaluated and sampled: the Polyak average when kept, else the last weights."""
        return self.model if self.ema is None else self.ema

    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def train(spec: Spec, config, *, out: str | Path, budget: str, resume: bool = False,
          stop_after_steps: int | None = None, progress: bool | None = None,
          device: torch.device | str = "cpu") -> dict | None:
    """Train (or resume) a run in ``out``, then evaluate it and write ``record.json``; return the record.

    ``budget``: the name of the budget ``config`` was made with (smoke/small/paper), recorded beside it.
    ``stop_after_steps``: checkpoint and return None once that many steps are done (tests of exact resume).
    ``progress``: a progress bar on stderr (None: when stderr is a terminal).
    ``device``: where the model trains and is evaluated (``geneval.distributed.resolve_device`` resolves ``auto``).
    Under torchrun (``geneval.distributed.init`` done by the CLI) the ranks train data-parallel on one global batch
    of ``config.batch_size``; rank 0 writes the run folder and returns the record, the other ranks ``{}``.
    """
    device = torch.device(device)
    ctx = distributed.current()
    compute = {"device": str(device),
               "precision": distributed.set_precision(fast=False) if device.type == "cuda" else "float32",
               "processes": ctx.world_size if ctx else 1, "global_batch_size": config.batch_size,
               "per_rank_batch_size": config.batch_size // (ctx.world_size if ctx else 1)}
    if getattr(config, "init_from", ""):  # checked before the run folder is made
        if spec.training is not None:
            raise GenevalInputError(f"init_from: {spec.model} trains in stages; warm starts are for one-stage models")
        warm_start_source(spec, config)
    for name in ("batch_size", "prior_batch_size"):  # every global batch must split evenly, checked before anything
        if hasattr(config, name):
            distributed.agree(ctx, ddp.rank_rows, getattr(config, name), ctx)
    harness = Harness(out, config=run_config(spec, config, budget), resume=resume, progress=progress,
                      budget=Budget(steps=config.total_steps, log_every=config.log_every,
                                    checkpoint_every=config.checkpoint_every),
                      header={"family": spec.family, "model_name": spec.model, "budget": budget},
                      description=f"{spec.model} ({budget})")
    if harness.finished:
        log.info("%s already finished; not training again", out)
        return harness.run.read_record()
    data = TrainingData(config.dataset, seed=config.seed, train_num=config.train_num)
    trainer = (spec.training or LikelihoodTraining)(spec, config, data, device=device, ctx=ctx)
    outcome = harness.train(trainer, stop_after_steps=stop_after_steps)
    ddp.check_replicas(trainer.model, ctx)  # what rank 0 checkpointed is what every rank trained
    if outcome.stopped:
        return None
    if not harness.main:
        return {}
    model = getattr(trainer, "evaluated_model", trainer.model)  # the EMA weights when the run keeps them
    with distributed.single_process():  # rank 0 alone: no collective (batch statistics are in evaluation mode)
        return evaluate_run(spec, model, config, data, harness.run, budget=budget, steps=outcome.step,
                            train_wall_time_s=outcome.train_wall_time_s, compute=compute,
                            init_from=getattr(trainer, "init_from", None))


# --------------------------------------------------------------------------------------------- evaluation


class LikelihoodAdapter:
    """A trained model as a ``geneval.likelihood.LikelihoodModel``."""

    def __init__(self, model: torch.nn.Module, *, kind: str, convention: DataConvention, conditional: bool = False):
        self.model, self.kind, self.convention, self.conditional = model.eval(), kind, convention, conditional

    def log_prob(self, x_uint8: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        device = module_device(self.model)  # the split's batches come on the CPU
        labels = None if labels is None else labels.to(device)
        return self.model.log_prob(x_uint8.to(device), labels).double().cpu()


def domain_extractor(data: TrainingData) -> str | None:
    """The dataset's default extractor (its shipped domain classifier), or None when its weights file is absent."""
    import geneval

    name = data.spec.default_extractor
    return name if name and (Path(geneval.__file__).parent / "weights" / f"{name}.pt").is_file() else None


def score_samples(samples_uint8: torch.Tensor, config, data: TrainingData) -> tuple[dict, dict]:
    from trainers.common.evaluation import evaluate_samples

    features = config.sample_features or domain_extractor(data)
    if features is None:
        return {}, {"skipped": f"no weights for the {data.source} domain extractor in geneval/weights/"}
    names = SAMPLE_METRICS if features != "pixels" else ("fid", "kid")
    reference, reference_name = data.test_reference(config.eval_num)
    # KID subsets follow the reference, not kid_subsets_for(num_samples): 100 against the whole test split, 10
    # against a slice (smoke runs). The committed likelihood records were scored this way.
    scores, protocol = evaluate_samples(samples_uint8, reference=reference, metrics=names, features=features,
                                        num_ref=config.eval_num if not data.binary else None,
                                        kid_subsets=100 if config.eval_num is None else 10)
    protocol["reference"] = reference_name
    return scores, protocol


def likelihood_metrics(result, kind: str) -> dict:
    """The record's ``test_nats`` / ``test_bits_per_dim`` entries of a ``geneval.likelihood`` result."""
    return {
        "test_nats": {"value": result.nats, "std": result.nats_std_err, "label": f"test NLL, nats ({kind})",
                      "higher_is_better": False},
        "test_bits_per_dim": {"value": result.bits_per_dim, "std": result.bits_per_dim_std_err,
                              "label": f"test bits/dim ({kind})", "higher_is_better": False},
    }


def evaluate_run(spec: Spec, model, config, data: TrainingData, run: RunDir, *, budget: str, steps: int,
                 train_wall_time_s: float, compute: dict | None = None, init_from: dict | None = None) -> dict:
    """The test likelihood and the samples (on the model's device), the family's extra metrics and pictures (on a
    CPU copy), ``record.json``. ``compute``: where and how it trained (device, precision, processes, batch sizes);
    ``init_from``: the run it was warm-started from (``warm_start``), with the totals of both runs."""
    model.eval()
    on_cpu = model if module_device(model).type == "cpu" else copy.deepcopy(model).cpu()
    kind = spec.kind(config)
    conditional = bool(getattr(model, "conditional", False))
    adapter = LikelihoodAdapter(model, kind=kind, convention=data.convention, conditional=conditional)
    result = evaluate(adapter, data.test_split, num=config.eval_num, batch_size=config.eval_batch_size)
    log.info("%s %s: %s", spec.model, data.name, result.line())
    metrics = likelihood_metrics(result, kind)
    if spec.extra_metrics is not None:
        with torch.inference_mode():
            metrics.update(spec.extra_metrics(on_cpu, config, data))

    # Samples: image i from generator(seed, SAMPLE, i); the first timing_num are timed on their own, and all of
    # them for the seconds per 1,000 samples that tables of every family compare (``sampling.s_per_1000``).
    class_labels = None
    if conditional:
        class_labels = torch.arange(config.num_samples) % data.num_classes
    with torch.inference_mode():  # .cpu() inside each timed span waits for a GPU's queued work
        started = time.perf_counter()
        first = model.sample(config.timing_num, seed=derived_seed(config.seed, SAMPLE), first=0,
                             labels=None if class_labels is None else class_labels[:config.timing_num]).cpu()
        sampling_s = time.perf_counter() - started
        rest = model.sample(config.num_samples - config.timing_num, seed=derived_seed(config.seed, SAMPLE),
                            first=config.timing_num,
                            labels=None if class_labels is None else class_labels[config.timing_num:]).cpu()
        all_s = time.perf_counter() - started
    samples = data.to_image(torch.cat([first, rest]))
    save_grid(run.file("samples.png"), samples[:100], ncols=10, scale=2)
    with atomic_path(run.file("samples.npz")) as tmp:  # kept so samples can be re-scored (e.g. new extractors)
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, samples=samples.numpy())
    artifacts = {"samples": "samples.png", "samples_uint8": "samples.npz"}
    scores, protocol = score_samples(samples, config, data)
    metrics.update(scores)
    if spec.artifacts is not None:
        with torch.inference_mode():
            artifacts.update(spec.artifacts(on_cpu, config, data, run))

    record = {
        "family": spec.family, "model": spec.model, "preset": spec.model, "budget": budget, "seed": config.seed,
        "dataset": data.name, "config": config_dict(config),
        "params": {"total": count_parameters(model)},
        "steps": steps, "wall_time_s": round(train_wall_time_s, 2),
        **({"compute": compute} if compute is not None else {}),
        **({"init_from": {**init_from, "total_steps": init_from["steps"] + steps,
                          "total_wall_time_s": round(init_from["wall_time_s"] + train_wall_time_s, 2)}}
           if init_from is not None else {}),
        "metrics": {"final": metrics},
        "likelihood": result.as_dict(),
        "sampling": {"num_images": config.timing_num, "seconds": round(sampling_s, 3),
                     "s_per_1000": round(all_s / config.num_samples * 1000, 3),
                     "note": getattr(model, "sampling_note", "")},
        "evaluation": {**protocol, "likelihood_split": data.test_split, "convention": data.convention.as_dict()},
        "published": (spec.published or {}).get(data.name),
        "artifacts": artifacts,
    }
    run.write_record(record)
    return run.read_record()


def model_config(config_class: type, model: str, budgets: dict, *, budget: str, dataset: str, overrides: dict):
    """The config of ``model`` at ``budget`` on ``dataset`` (``budgets[model][budget]``, then its
    ``"<budget>:<dataset>"`` entry), with ``--set`` overrides, validated — for families whose command names the model."""
    from trainers.common.config import apply_overrides

    if budget not in budgets[model]:
        known = ", ".join(b for b in budgets[model] if ":" not in b)
        raise GenevalInputError(f"{model}: unknown budget {budget!r}; known: {known}")
    fields = {**budgets[model][budget], **budgets[model].get(f"{budget}:{dataset}", {})}
    if "model" in overrides:
        raise GenevalInputError("model is chosen by the command (geneval train <model>), not by --set model=")
    config = apply_overrides(config_class(model=model, dataset=dataset, **fields), overrides, what=f"{model} config")
    config.validate()
    return config


def load_for_likelihood(state: dict, specs: dict[str, Spec], config_class: type) -> LikelihoodAdapter:
    """Rebuild a checkpoint's model as a LikelihoodModel (the ``geneval.likelihood`` entry points use it)."""
    spec = specs.get(state.get("model_name"))
    if spec is None:
        raise GenevalInputError(f"checkpoint model {state.get('model_name')!r} is not one of {', '.join(specs)}")
    fields = {f.name for f in dataclasses.fields(config_class)}  # config.json's family/model/budget are not fields
    config = config_class(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()
                             if k in fields})
    data = TrainingData(config.dataset, seed=config.seed, train_num=2)  # the model's shapes; no training data
    model = build_model(spec, config, data)
    weights = state["trainer"].get("ema", state["trainer"]["model"])  # the Polyak average, if the run kept one
    model.load_state_dict(weights)
    adapter = LikelihoodAdapter(model, kind=spec.kind(config), convention=data.convention,
                                conditional=bool(getattr(model, "conditional", False)))
    adapter.default_split = data.test_split
    return adapter


def rescore(out: str | Path) -> dict:
    """Score a finished run's kept samples (``samples.npz``) again with the current domain extractor and
    rewrite its record, e.g. when the extractor's weights were not shipped yet at training time."""
    import json

    run = RunDir(out)
    record = run.read_record()
    config = json.loads(run.file("config.json").read_text())
    data = TrainingData(record["dataset"], seed=record["seed"], train_num=2)
    samples = torch.from_numpy(np.load(run.file("samples.npz"), allow_pickle=False)["samples"])

    class Settings:  # what score_samples reads from a config
        sample_features = config.get("sample_features")
        eval_num = config.get("eval_num")

    scores, protocol = score_samples(samples, Settings, data)
    if not scores:
        return record
    record["metrics"]["final"].update(scores)
    record["evaluation"] = {**{k: v for k, v in record["evaluation"].items() if k != "skipped"}, **protocol,
                            "rescored": "sample metrics computed after training from samples.npz"}
    record.pop("software", None)
    record.pop("record_version", None)
    run.write_record(record)
    return run.read_record()


if __name__ == "__main__":  # python -m trainers.common.likelihood_training rescore RUN_DIR...
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "rescore":
        raise SystemExit("usage: python -m trainers.common.likelihood_training rescore RUN_DIR...")
    for folder in sys.argv[2:]:
        final = rescore(folder)["metrics"]["final"]
        print(folder, {k: round(v["value"], 4) for k, v in final.items() if v.get("value") is not None})
