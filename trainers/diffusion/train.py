"""DDPM training, then its evaluation: read top to bottom.

    geneval train ddpm --budget small --dataset fashion-mnist --out runs/ddpm_small --resume

One step (Ho et al. 2020 Algorithm 1; reference hojonathanho/diffusion ``diffusion_utils_2.training_losses`` and
``scripts/run_cifar.py``): a batch x_0 of 8-bit images scaled to [−1, 1], t ~ U{0 … T−1}, ε ~ N(0, I),
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, and a gradient step on

    simple  L_simple = ‖ε − ε_θ(x_t, t)‖² (mean over pixels; eq. 14)
    hybrid  L_simple + λ L_vlb (Nichol & Dhariwal §3.1, λ = 0.001): L_vlb = T · L_t in bits/dim for the sampled t,
            with the mean's gradient stopped so that L_vlb trains the variance only
    vlb     L_vlb alone (uniform t; Nichol & Dhariwal's importance sampling of t is not implemented)

with Adam (lr 2e-4, linear warm-up over ``warmup_steps``; no decay, as the reference), gradient norm clipped at
1.0, dropout, and an exponential moving average of the weights, decay min(``ema_decay``, (1 + s)/(10 + s)) at
step s (TensorFlow's ``ExponentialMovingAverage(num_updates=s)``, so that a short run's EMA is not dominated by
its random initialisation). Samples and the bound use the EMA weights, as the paper does.

Every random draw is derived from the seed (``trainers.common.seeding``): the weights from ``(seed, INIT)``, the
order of epoch e from ``(seed, ORDER, e)``, t and ε of step s from ``(seed, NOISE, s)``; dropout reads the global
RNG, whose state the harness checkpoints. A run resumed from ``checkpoint.pt`` (model, EMA, Adam, step) is the
same run. The run folder, checkpoints, resume and logging are ``trainers.common.harness``.

``--device``: the U-Net, its batches, the bound and the samples run there (every draw is made on the CPU and
moved, so a sample depends on its seed only). Under ``torchrun --nproc_per_node=N -m geneval train ddpm`` each rank
takes rows ``[r·B/N, (r+1)·B/N)`` of the global batch, t, ε and the dropout masks are the global batch's draws cut
to those rows (``trainers.common.ddp``: ``draw``, ``Dropout``), and the gradients are averaged over ranks, so N
processes train the one-process run (GroupNorm has no batch statistics); the EMA is the same on every rank; rank
0 alone checkpoints, logs, evaluates and writes the record (``compute``: device, precision, processes, batch sizes).

At the end (``finish``): the bound in bits/dim on the test split (``geneval.likelihood``, kind ``vlb``), samples
with the run's sampler, FID/IS/KID/precision/recall against the test split with the domain extractor, the time
per 1,000 samples, a grid, and ``record.json``. Other samplers/step counts re-score the same checkpoint
(``evaluate_run``; the family's evaluation-time options).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from geneval.likelihood import EIGHT_BIT, evaluate as evaluate_likelihood
from geneval import distributed
from trainers.common import ddp
from trainers.common.checkpoint import load_checkpoint
from trainers.common.config import config_dict
from trainers.common.data import load_split, to_signed_unit
from trainers.common.harness import Budget, Harness
from trainers.common.likelihood_training import optimise
from trainers.common.runs import RunDir, count_parameters, module_device
from trainers.common.seeding import derived_seed, generator
from trainers.diffusion.diffusion import GaussianDiffusion, bound_nats, make_betas
from trainers.diffusion.model import DiffusionConfig, UNet
from trainers.diffusion.samplers import DiffusionSampler

log = logging.getLogger("trainers.diffusion.train")

INIT, ORDER, NOISE = 201, 202, 203  # stream ids for derived_seed
FAMILY = "diffusion"
# Ho et al. 2020, Table 1/2 (CIFAR-10, unconditional, 35.7M-parameter U-Net, 800k steps of batch 128, T = 1000)
PUBLISHED = {"cifar10": {"bits_per_dim_vlb": 3.70, "bits_per_dim_simple": 3.75, "fid_50k": 3.17, "is_50k": 9.46,
                         "fid_50k_vlb_model": 13.51,
                         "source": "Ho et al. 2020, Tables 1-2 (CIFAR-10 test): NLL ≤ 3.70 bits/dim trained on the "
                                   "true bound L (fixed isotropic Σ; its FID 13.51), ≤ 3.75 trained on L_simple "
                                   "(FID 3.17, IS 9.46 at 50k samples, 1000-step ancestral sampling)"}}


def build_diffusion(cfg: DiffusionConfig) -> GaussianDiffusion:
    return GaussianDiffusion(make_betas(cfg.schedule, cfg.timesteps), model_var=cfg.model_var)


def build_model(cfg: DiffusionConfig) -> UNet:
    torch.manual_seed(derived_seed(cfg.seed, INIT))  # initial weights depend on the seed only
    return UNet(cfg)


class DiffusionTraining:
    """The U-Net, its EMA, Adam and the data; ``train_step()`` is Algorithm 1 on batch ``step``."""

    def __init__(self, cfg: DiffusionConfig, *, images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device | str = "cpu", ctx=None):
        self.cfg, self.images, self.labels = cfg, images, labels
        self.device, self.ctx, self.rows = torch.device(device), ctx, ddp.rank_rows(cfg.batch_size, ctx)
        self.diffusion = build_diffusion(cfg)
        self.model = build_model(cfg).to(self.device)
        ddp.broadcast_parameters(self.model, ctx)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.batches_per_epoch = max(1, len(images) // cfg.batch_size)  # the incomplete last batch is dropped
        self._epoch, self._order = -1, None
        self.step = 0

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            self._order = torch.randperm(len(self.images), generator=generator(self.cfg.seed, ORDER, epoch))
            self._epoch = epoch
        take = self._order[index * self.cfg.batch_size:(index + 1) * self.cfg.batch_size][self.rows]
        return to_signed_unit(self.images[take]).to(self.device), self.labels[take].to(self.device)

    def lr(self, step: int) -> float:
        return self.cfg.lr * min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))

    def train_step(self) -> dict[str, float]:
        cfg, d = self.cfg, self.diffusion
        x0, y = self.batch(self.step)
        g = generator(cfg.seed, NOISE, self.step)
        with ddp.global_batch(cfg.batch_size, self.ctx):  # t, ε and dropout: the global batch's, this rank's rows
            t = ddp.draw(lambda n: torch.randint(cfg.timesteps, (n,), generator=g), len(x0)).to(self.device)
            noise = ddp.draw(lambda n: torch.randn((n, *x0.shape[1:]), generator=g), len(x0)).to(self.device)
            xt = d.q_sample(x0, t, noise)
            self.model.train()
            output = self.model(xt, t, y if cfg.conditional else None)
        channels = x0.shape[1]
        losses = {}
        if cfg.loss in ("simple", "hybrid"):
            losses["mse"] = F.mse_loss(output[:, :channels], noise)
        if cfg.loss in ("hybrid", "vlb"):
            # L_vlb for the sampled t, in bits/dim; T · L_t is an unbiased estimate of Σ_t L_t
            frozen = output if cfg.loss == "vlb" else torch.cat([output[:, :channels].detach(), output[:, channels:]], 1)
            vb = d.vb_term(frozen, x0, xt, t) / (x0[0].numel() * math.log(2))
            weight = cfg.hybrid_lambda if cfg.loss == "hybrid" else 1.0
            losses["vb"] = weight * cfg.timesteps * vb.float().mean()
        loss = sum(losses.values())
        grad_norm = optimise(self.optimizer, loss, lr=self.lr(self.step), grad_clip=cfg.grad_clip, ctx=self.ctx)
        self.update_ema()
        self.step += 1
        out = ddp.mean_over_ranks({"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in losses.items()}},
                                  self.ctx)
        if grad_norm is not None:  # of the averaged gradient: the same on every rank
            out["grad_norm"] = float(grad_norm)
        return out

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

    def log_fields(self, means: dict) -> dict:
        return {**{k: round(v, 5) for k, v in means.items()}, "lr": self.lr(self.step - 1)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])


# ================================================================================================= the run

def run_config(cfg: DiffusionConfig) -> dict:
    return config_dict(cfg)


def train(cfg: DiffusionConfig, *, out, resume: bool = False, stop_after_steps: int | None = None,
          progress: bool | None = None, device: torch.device | str = "cpu") -> dict:
    """Train (or continue) the run in ``out``; return its record, or ``{"stopped": step}`` when stopped early.
    Under torchrun the ranks train data-parallel on one global batch of ``cfg.batch_size``; rank 0 returns the
    record, the others ``{}`` (see the module's docstring)."""
    device, ctx = torch.device(device), distributed.current()
    distributed.agree(ctx, ddp.rank_rows, cfg.batch_size, ctx)  # an uneven global batch fails before anything
    compute = {"device": str(device),
               "precision": distributed.set_precision(fast=False) if device.type == "cuda" else "float32",
               "processes": ctx.world_size if ctx else 1, "global_batch_size": cfg.batch_size,
               "per_rank_batch_size": cfg.batch_size // (ctx.world_size if ctx else 1)}
    harness = Harness(out, config=run_config(cfg), resume=resume, progress=progress,
                      budget=Budget(steps=cfg.steps, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every),
                      header={"family": FAMILY, "model_name": cfg.preset, "budget": cfg.budget},
                      description=f"{cfg.preset} ({cfg.budget})")
    if harness.finished:
        return harness.run.read_record()
    images, labels, info = load_split(cfg.dataset, "train")
    if cfg.train_num:
        images, labels = images[:cfg.train_num], labels[:cfg.train_num]
    trainer = DiffusionTraining(cfg, images=images, labels=labels, device=device, ctx=ctx)
    outcome = harness.train(trainer, stop_after_steps=stop_after_steps)
    ddp.check_replicas(trainer.model, ctx)
    if outcome.stopped:
        return {"stopped": outcome.step}
    if not harness.main:
        return {}
    with distributed.single_process():
        return finish(trainer, harness.run, train_wall_time_s=outcome.train_wall_time_s, n_train=len(images),
                      train_fingerprint=info.get("fingerprint"), compute=compute)


# ================================================================================================= evaluation

class DiffusionBound:
    """The EMA model's variational bound as a ``geneval.likelihood`` model (kind ``vlb``, 8-bit data).

    Image b's noise (and its t per stratum) come from a generator seeded by ``(bound_seed, sha256 of its
    bytes)``: the number for an image does not depend on the batch or on the order of evaluation."""

    kind = "vlb"
    convention = EIGHT_BIT

    def __init__(self, model: torch.nn.Module, diffusion: GaussianDiffusion, *, num_strata: int, seed: int,
                 conditional: bool = False):
        self.model, self.diffusion = model.eval(), diffusion
        self.num_strata, self.seed, self.conditional = num_strata, seed, conditional

    def estimator(self) -> str:
        T = self.diffusion.num_timesteps
        if self.num_strata == 0:
            return f"all {T} terms (L_T, {T - 1} KL terms, discretised decoder L_0), one x_t draw per term"
        return (f"L_T and L_0 exact; the {T - 1} KL terms by stratified Monte Carlo over t ({self.num_strata} strata, "
                f"one t and one x_t per stratum per image); s.e. over images includes the t-sampling noise")

    def generators(self, x_uint8: torch.Tensor) -> list[torch.Generator]:
        words = [int.from_bytes(hashlib.sha256(x.numpy().tobytes()).digest()[:7], "little") for x in x_uint8.cpu()]
        return [generator(self.seed, w) for w in words]

    @torch.inference_mode()
    def log_prob(self, x_uint8: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        network = lambda x, t, y: self.model(x, t, y)  # noqa: E731
        device = module_device(self.model)  # the split's batches come on the CPU
        labels = None if labels is None else labels.to(device)
        nats = bound_nats(network, self.diffusion, to_signed_unit(x_uint8.to(device)), self.generators(x_uint8),
                          num_strata=self.num_strata, labels=labels)
        return -nats.double().cpu()


def load_run(run_dir, *, which: str = "final") -> tuple[DiffusionConfig, UNet, GaussianDiffusion, dict]:
    """The run's config, its EMA U-Net, its process and the checkpoint's header."""
    if which != "final":
        raise GenevalInputError(f"diffusion runs keep their final checkpoint (EMA weights) only, not {which!r}")
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise GenevalInputError(f"{path} does not exist; expected a diffusion run folder")
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    model = UNet(cfg)
    model.load_state_dict(state["trainer"]["ema"])
    return cfg, model.eval(), build_diffusion(cfg), state


def config_from_dict(values: dict) -> DiffusionConfig:
    import dataclasses

    fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
    return DiffusionConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in fields})


def load_likelihood_model(state: dict) -> DiffusionBound:
    """``geneval likelihood CHECKPOINT`` (the ``geneval.likelihood`` entry point): the EMA model's bound."""
    cfg = config_from_dict(state["config"])
    model = UNet(cfg)
    model.load_state_dict(state["trainer"]["ema"])
    bound = DiffusionBound(model, build_diffusion(cfg), num_strata=cfg.bound_strata, seed=cfg.bound_seed,
                           conditional=cfg.conditional)
    bound.default_split = f"{cfg.dataset}:test"
    return bound


def make_sampler(cfg: DiffusionConfig, model: UNet, diffusion: GaussianDiffusion) -> DiffusionSampler:
    return DiffusionSampler(model, diffusion, shape=cfg.shape, num_classes=cfg.num_classes,
                            conditional=cfg.conditional, batch_size=cfg.sample_batch_size)


def likelihood_metrics(bound: DiffusionBound, cfg: DiffusionConfig) -> tuple[dict, dict]:
    result = evaluate_likelihood(bound, f"{cfg.dataset}:test", num=cfg.bound_num, batch_size=cfg.bound_batch_size)
    log.info("bound: %s", result.line())
    metrics = {
        "test_nats": {"value": result.nats, "std": result.nats_std_err, "label": "test NLL bound, nats (vlb)",
                      "higher_is_better": False},
        "test_bits_per_dim": {"value": result.bits_per_dim, "std": result.bits_per_dim_std_err,
                              "label": "test bits/dim (vlb)", "higher_is_better": False},
    }
    return metrics, {**result.as_dict(), "estimator": bound.estimator()}


def sample_protocol(cfg: DiffusionConfig, *, sampler: str | None, sampling_steps: int | None, eta: float | None,
                    num_samples: int | None) -> dict:
    """The options a sample evaluation uses: the given ones, else the run's own (``eval_*``)."""
    sampler = sampler or cfg.eval_sampler
    steps = sampling_steps or (cfg.eval_sampling_steps if sampler == cfg.eval_sampler else cfg.timesteps)
    eta = (eta if eta is not None else cfg.eval_eta) if sampler == "ddim" else None
    return {"sampler": sampler, "sampling_steps": int(steps), "eta": eta, "eval_samples": int(num_samples or cfg.eval_samples)}


def score_samples(cfg: DiffusionConfig, model: UNet, diffusion: GaussianDiffusion, *, options: dict,
                  metrics: tuple[str, ...], run: RunDir | None = None, ci: float | None = None,
                  ci_resamples: int = 100, parts: Path | None = None, last_first: bool = False) -> tuple[dict, dict]:
    """Draw ``options["eval_samples"]`` samples with the sampler, time them, score them on the test split.
    ``parts``: a folder that keeps each batch as it is drawn (``draw_in_parts``, ``last_first`` its order)."""
    from geneval.grid import save_grid
    from trainers.common.evaluation import evaluate_samples, kid_subsets_for
    from trainers.common.likelihood_training import SAMPLE_METRICS

    sampler = make_sampler(cfg, model, diffusion)
    num = options["eval_samples"]
    labels = sampler.labels_for(num)
    samples, batches = draw_in_parts(sampler, num, cfg.sample_seed, labels, options, parts, last_first=last_first)
    seconds, per_1000 = sum(spent for _, spent in batches), seconds_per_1000(batches)
    log.info("%d samples (%s, S = %d, η = %s) in %.1f s; median batch %.1f s per 1000", num, options["sampler"],
             options["sampling_steps"], options["eta"], seconds, per_1000)
    if run is not None:
        eta = "" if options["eta"] is None else f"_eta{options['eta']:g}"
        save_grid(run.file(f"samples_{options['sampler']}_S{options['sampling_steps']}{eta}.png"), samples[:100],
                  ncols=10, scale=2)
    wanted = tuple(m for m in metrics if m not in ("test_bits_per_dim", "test_nats", "sampling_s_per_1000")) \
        or SAMPLE_METRICS
    extra = {"ci": ci, "ci_resamples": ci_resamples} if ci else {}
    values, protocol = evaluate_samples(samples, reference=f"{cfg.dataset}:test", metrics=wanted,
                                        features=cfg.eval_features, labels=labels, num_ref=cfg.eval_num_ref,
                                        kid_subsets=kid_subsets_for(num), **extra)
    values["sampling_s_per_1000"] = {"value": per_1000, "std": None, "label": "s per 1000 samples",
                                     "higher_is_better": False,
                                     "details": {"seconds": seconds, "num_samples": num, "batches": len(batches),
                                                 "statistic": "median over batches of seconds per sample",
                                                 "threads": torch.get_num_threads()}}
    protocol.update({**options, "sample_seed": cfg.sample_seed})
    return values, protocol


def seconds_per_1000(batches: list[tuple[int, float]]) -> float:
    """Sampling cost from ``(count, seconds)`` per batch: the median batch's seconds per sample × 1000, not the
    total over the count. A batch drawn while the process was stopped (a sweep paused for the test suite) or the
    machine was overloaded by other jobs would otherwise inflate the row (seen: one paused batch of 40 added 80%
    to a 10,000-sample row); the total stays in the metric's details."""
    return statistics.median(spent / count for count, spent in batches) * 1000


def draw_in_parts(sampler: DiffusionSampler, num: int, seed: int, labels, options: dict,
                  parts: Path | None, *, last_first: bool = False) -> tuple[torch.Tensor, list[tuple[int, float]]]:
    """``num`` samples, and ``(count, seconds)`` of each batch they were drawn in, in sample order (a batch loaded
    from ``parts`` with the seconds it took when drawn). With ``parts``, each batch of the sampler's batch size
    is written there when drawn (``<first>-<count>.npz``: the uint8 images and their seconds) and a rerun loads
    the batches already there, so a 10,000-sample evaluation at S = 250 (hours here) survives interruption.
    Sample i depends only on (seed, i), so the result does not depend on where it stopped. ``last_first``: draw
    the batches from the last one back, so that a second process can share a row with one going first to last
    (each loads what the other has written when it gets there; they meet in the middle)."""
    import zipfile

    import numpy as np

    from geneval.atomic import write_bytes_atomic

    step = sampler.batch_size
    drawn, reused = {}, 0  # first index → (images, count, seconds)
    firsts = range(0, num, step)
    for first in reversed(firsts) if last_first else firsts:
        count = min(step, num - first)
        part = parts / f"{first:07d}-{count}.npz" if parts is not None else None
        if part is not None and part.is_file():
            try:
                with np.load(part, allow_pickle=False) as kept:
                    images, spent = torch.from_numpy(kept["images"]), float(kept["seconds"])
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
                raise GenevalInputError(f"{part}: not a batch of samples this sweep wrote ({error}); delete it to "
                                        "draw that batch again") from None
            if images.dtype != torch.uint8 or tuple(images.shape) != (count, *sampler.shape):
                raise GenevalInputError(f"{part}: expected uint8 images of shape {[count, *sampler.shape]}, found "
                                        f"{images.dtype} {list(images.shape)}; delete it to draw that batch again")
            reused += 1
        else:
            started = time.perf_counter()
            images = sampler.sample(count, seed, labels[first:first + count] if labels is not None else None,
                                    sampler=options["sampler"], sampling_steps=options["sampling_steps"],
                                    eta=options["eta"], first=first)
            spent = time.perf_counter() - started
            if part is not None:
                buffer = io.BytesIO()
                np.savez(buffer, images=images.numpy(), seconds=np.float64(spent))
                part.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(part, buffer.getvalue())
        drawn[first] = images, count, spent
    if reused:
        log.info("%d of %d batches loaded from %s", reused, len(drawn), parts)
    ordered = [drawn[first] for first in firsts]
    samples = torch.cat([images for images, _, _ in ordered]) if ordered else \
        torch.zeros((0, *sampler.shape), dtype=torch.uint8)
    return samples, [(count, spent) for _, count, spent in ordered]


def finish(trainer: DiffusionTraining, run: RunDir, *, train_wall_time_s: float, n_train: int,
           train_fingerprint: str | None, compute: dict | None = None) -> dict:
    """The bound on the test split, the run's own sample evaluation, the record."""
    cfg = trainer.cfg
    started = time.perf_counter()
    bound = DiffusionBound(trainer.ema, trainer.diffusion, num_strata=cfg.bound_strata, seed=cfg.bound_seed,
                           conditional=cfg.conditional)
    metrics, likelihood = likelihood_metrics(bound, cfg)
    options = sample_protocol(cfg, sampler=None, sampling_steps=None, eta=None, num_samples=None)
    values, protocol = score_samples(cfg, trainer.ema, trainer.diffusion, options=options, metrics=cfg.eval_metrics,
                                     run=run)
    metrics.update(values)
    grid = f"samples_{options['sampler']}_S{options['sampling_steps']}" + \
        ("" if options["eta"] is None else f"_eta{options['eta']:g}") + ".png"
    record = {
        "family": FAMILY, "model": cfg.preset, "preset": cfg.preset, "budget": cfg.budget, "seed": cfg.seed,
        "dataset": cfg.dataset, "config": config_dict(cfg), "params": {"total": count_parameters(trainer.model)},
        "steps": trainer.step, "train_images": n_train, "wall_time_s": round(train_wall_time_s, 1),
        **({"compute": compute} if compute is not None else {}),
        "eval_wall_time_s": round(time.perf_counter() - started, 1), "sampled_from": "ema",
        "metrics": {"final": metrics},
        "likelihood": likelihood,
        "sampling": {**options, "s_per_1000": round(values["sampling_s_per_1000"]["value"], 2)},
        "evaluation": {**protocol, "likelihood_split": f"{cfg.dataset}:test",
                       "likelihood_estimator": likelihood["estimator"], "train_fingerprint": train_fingerprint},
        "published": PUBLISHED.get(cfg.dataset),
        "artifacts": {"samples": grid, "checkpoint": "checkpoint.pt", "log": "log.jsonl"},
    }
    run.write_record(record)
    # the run's own evaluation is also the re-scoring of its default options: keep it for evaluate_run
    cache, digest = cache_path(run, options=options, metrics=tuple(cfg.eval_metrics), ci=None, ci_resamples=100)
    keep(cache, values=metrics, protocol={**protocol, "likelihood_split": f"{cfg.dataset}:test",
                                          "likelihood_estimator": likelihood["estimator"]}, digest=digest)
    return run.read_record()


def evaluate_run(run_dir, *, which: str, metrics: tuple[str, ...], ci: float | None = None, ci_resamples: int = 100,
                 sampler: str | None = None, sampling_steps: int | None = None, eta: float | None = None,
                 num_samples: int | None = None, last_first: bool = False) -> tuple[dict, dict]:
    """Re-score a run's final checkpoint with evaluation-time options; the run's bound is added from its record
    (it does not depend on the sampler). Sample results are kept in ``<run>/evaluations/<key>.json``, keyed by
    the checkpoint's sha256, the options, the metrics and the CI settings, so an interrupted sweep resumes where
    it stopped and several processes can share one (``trainers.diffusion.sweep``); two can share one row when
    one of them draws ``last_first`` (``draw_in_parts``)."""
    run = RunDir(run_dir)
    cfg, model, diffusion, state = load_run(run_dir, which=which)
    if state["step"] != cfg.steps:
        raise GenevalInputError(f"{run.checkpoint} is at step {state['step']} of {cfg.steps}: training has not finished")
    chosen = sample_protocol(cfg, sampler=sampler, sampling_steps=sampling_steps, eta=eta, num_samples=num_samples)
    cache, digest = cache_path(run, options=chosen, metrics=metrics, ci=ci, ci_resamples=ci_resamples)
    if cache.is_file():
        kept = json.loads(cache.read_text())
        values, protocol = kept["metrics"], kept["protocol"]
    else:
        values, protocol = score_samples(cfg, model, diffusion, options=chosen, metrics=metrics, run=run, ci=ci,
                                         ci_resamples=ci_resamples, parts=parts_path(run, digest, chosen, cfg),
                                         last_first=last_first)
        keep(cache, values=values, protocol=protocol, digest=digest)
        values, protocol = json.loads(json.dumps(values, default=str)), json.loads(json.dumps(protocol, default=str))
    if run.finished():
        record = run.read_record()
        for name in ("test_bits_per_dim", "test_nats"):
            if name in record["metrics"]["final"]:
                values[name] = record["metrics"]["final"][name]
        for name in ("likelihood_split", "likelihood_estimator"):
            protocol[name] = record["evaluation"].get(name)
    return values, protocol


def cache_path(run: RunDir, *, options: dict, metrics: tuple[str, ...], ci: float | None,
               ci_resamples: int) -> tuple[Path, str]:
    """Where the evaluation of the run's checkpoint with ``options`` is kept, and the checkpoint's sha256."""
    digest = hashlib.sha256(run.checkpoint.read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps({"checkpoint": digest, "options": options, "metrics": list(metrics), "ci": ci,
                                     "ci_resamples": ci_resamples if ci else None}, sort_keys=True).encode()).hexdigest()
    return run.file(f"evaluations/{key[:20]}.json"), digest


def parts_path(run: RunDir, digest: str, options: dict, cfg: DiffusionConfig) -> Path:
    """Where the batches of a sample evaluation are kept: by checkpoint, sampler, S, η, sample seed and batch
    size (not by sample count or metrics, so a 10,000-sample row reuses a 2,000-sample row's batches)."""
    key = hashlib.sha256(json.dumps({"checkpoint": digest, "sampler": options["sampler"], "eta": options["eta"],
                                     "sampling_steps": options["sampling_steps"], "seed": cfg.sample_seed,
                                     "batch_size": cfg.sample_batch_size}, sort_keys=True).encode()).hexdigest()
    return run.file(f"evaluations/samples-{key[:20]}")


def keep(cache: Path, *, values: dict, protocol: dict, digest: str) -> None:
    from geneval.atomic import write_text_atomic

    cache.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cache, json.dumps({"metrics": values, "protocol": protocol, "checkpoint_sha256": digest},
                                        indent=1, default=str))
