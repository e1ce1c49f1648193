"""The GAN training loop: one loop for every recipe, read top to bottom.

    geneval train gan --preset dcgan --budget small --dataset fashion-mnist --out runs/gan/dcgan --resume

One *step* is one generator update preceded by ``n_dis`` discriminator updates (the papers' "iterations").
Every random draw is derived from ``(seed, stream, step)`` (``trainers.common.seeding.generator``): the data
order of epoch ``e`` from ``(seed, ORDER, e)``, the latents/labels/penalty mixing of step ``s`` from
``(seed, NOISE, s)``. Nothing reads the global RNG after the weights are initialised, so a run resumed from a
checkpoint (models, optimisers, EMA, spectral-norm vectors, batch-norm statistics, history) takes exactly
the steps an uninterrupted one takes.

The run folder, checkpoints, resume, logging and periodic validation are ``trainers.common.harness``: every
``eval_every`` steps the generator (its EMA if kept) is scored on the validation slice; the best checkpoint is
kept in ``best.pt``; a validation FID above ``best × (1 + collapse_margin)`` marks a collapse. At the end final
and best are scored on the test split and ``record.json`` is written.
"""

from __future__ import annotations

import logging

import torch
from torch.nn import functional as F

from trainers.common import ddp
from trainers.common.config import config_dict
from trainers.common.data import load_split, to_signed_unit
from trainers.common.evaluation import timed
from trainers.common.harness import Budget, Harness, Outcome, Validation
from trainers.common.runs import RunDir, count_parameters
from trainers.common.seeding import derived_seed, generator
from trainers.gan import evaluation, losses
from trainers.gan.layers import (WeightEMA, balanced_labels, orthogonal_penalty, regularised_weights,
                                 truncated_latents)
from trainers.gan.models import build_models
from trainers.gan.sampler import GanSampler

log = logging.getLogger("trainers.gan.train")

INIT, ORDER, NOISE, STATS = 1, 2, 3, 4  # stream ids for derived_seed
STANDING_STATS_SAMPLES = 1024  # fixed latents over which the EMA generator's batch-norm statistics are averaged


class GanTraining:
    """Models, optimisers and data of one run, and ``train_step()``: n_dis D updates, then one G update."""

    def __init__(self, cfg, *, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu",
                 ctx=None):
        """``ctx`` (``geneval.distributed.Context``): data parallel under torchrun (``trainers.common.ddp``);
        every random draw stays the single process's, each rank takes its rows of each global batch."""
        self.cfg, self.device, self.ctx = cfg, torch.device(device), ctx
        self.rows = ddp.rank_rows(cfg.batch_size, ctx)
        self.images, self.labels = images, labels  # uint8 [N, C, H, W], int64 [N]
        self.batches_per_epoch = len(images) // cfg.batch_size  # the incomplete last batch is dropped
        self._order_epoch, self._order = -1, None

        torch.manual_seed(derived_seed(cfg.seed, INIT))
        self.G, self.D = build_models(cfg, shape=cfg.shape, num_classes=cfg.num_classes)
        self.G, self.D = self.G.to(self.device), self.D.to(self.device)
        if ctx is not None:  # batch norm over the global batch; every rank starts from rank 0's weights
            for model in (self.G, self.D):
                ddp.broadcast_parameters(ddp.sync_batch_norms(model), ctx)
        self.ema = WeightEMA(self.G, decay=cfg.ema_decay, start_step=cfg.ema_start) if cfg.ema_decay else None
        self.opt_g = make_optimizer(cfg, self.G.parameters(), lr=cfg.lr_g)
        self.opt_d = make_optimizer(cfg, self.D.parameters(), lr=cfg.lr_d)
        if self.ema is not None:
            ddp.unsync_batch_norms(self.ema.model)  # rank 0 alone samples from it
        self.ortho_weights = regularised_weights(self.G) if cfg.ortho_beta else []
        self.step = 0
        self._stats_step = -1  # step at which the EMA's standing statistics were last computed

    # --------------------------------------------------------------------------------------------- data
    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real batch number ``index`` of the run (epoch = index // batches_per_epoch), as floats in [-1, 1]."""
        epoch, b = divmod(index, self.batches_per_epoch)
        if epoch != self._order_epoch:
            self._order = torch.randperm(len(self.images), generator=generator(self.cfg.seed, ORDER, epoch))
            self._order_epoch = epoch
        idx = self._order[b * self.cfg.batch_size:(b + 1) * self.cfg.batch_size][self.rows]
        return to_signed_unit(self.images[idx]).to(self.device), self.labels[idx].to(self.device)

    def latents(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The global batch's latents and labels (drawn on the CPU generator), this rank's rows on the device."""
        z = torch.randn(self.cfg.batch_size, self.cfg.z_dim, generator=g)[self.rows].to(self.device)
        y = torch.randint(0, self.cfg.num_classes, (self.cfg.batch_size,), generator=g) if self.cfg.conditional else None
        return z, (y[self.rows].to(self.device) if y is not None else None)

    # --------------------------------------------------------------------------------------------- step
    def train_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.G, self.D
        g = generator(cfg.seed, NOISE, self.step)
        y_real_used = cfg.conditional

        # ---- discriminator: n_dis updates on fresh real batches and fresh fakes
        D.requires_grad_(True)
        for k in range(cfg.n_dis):
            x_real, y_real = self.batch(self.step * cfg.n_dis + k)
            y_real = y_real if y_real_used else None
            z, y_fake = self.latents(g)
            with torch.no_grad():
                x_fake = G(z, y_fake)
            real_score, real_aux = D(x_real, y_real)
            fake_score, fake_aux = D(x_fake, y_fake)
            loss_d = losses.d_loss(cfg.loss, real_score, fake_score)
            if cfg.gp_weight:
                loss_d = loss_d + cfg.gp_weight * losses.gradient_penalty(D, x_real, x_fake, y_real, generator=g,
                                                                        batch_size=cfg.batch_size, rows=self.rows)
            if real_aux is not None:  # AC-GAN: D classifies real and generated samples (Odena et al. 2017, eq. 2)
                loss_d = loss_d + cfg.acgan_weight * (F.cross_entropy(real_aux, y_real) +
                                                      F.cross_entropy(fake_aux, y_fake))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            ddp.average_gradients(D.parameters(), self.ctx)
            self.opt_d.step()
            if cfg.clip:  # WGAN: keep the critic in a compact set (Arjovsky et al. 2017, Algorithm 1)
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-cfg.clip, cfg.clip)

        # ---- generator: one update through a frozen D (no weight gradients computed for D)
        D.requires_grad_(False)
        z, y_fake = self.latents(g)
        fake_score, fake_aux = D(G(z, y_fake), y_fake)
        loss_g = losses.g_loss(cfg.loss, fake_score)
        if fake_aux is not None:
            loss_g = loss_g + cfg.acgan_weight * F.cross_entropy(fake_aux, y_fake)
        if cfg.ortho_beta:
            loss_g = loss_g + orthogonal_penalty(self.ortho_weights, beta=cfg.ortho_beta)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        ddp.average_gradients(G.parameters(), self.ctx)
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update(G, step=self.step)
        self.step += 1
        return ddp.mean_over_ranks({"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}, self.ctx)

    # ------------------------------------------------------------------------------------ (de)serialise
    def sampling_generator(self) -> torch.nn.Module:
        """The generator samples come from: G, or its EMA with standing batch-norm statistics."""
        if self.ema is None:
            return self.G
        if self._stats_step != self.step:  # the EMA update copied G's statistics over them
            num = STANDING_STATS_SAMPLES
            latents = truncated_latents(num, self.cfg.z_dim, seed=self.cfg.seed, threshold=None, stream=STATS)
            labels = balanced_labels(num, self.cfg.num_classes) if self.cfg.conditional else None
            self.ema.standing_stats(latents.to(self.device), labels.to(self.device) if labels is not None else None,
                                    batch_size=self.cfg.batch_size)
            self._stats_step = self.step
        return self.ema.model

    def sampler(self) -> GanSampler:
        return GanSampler(self.sampling_generator(), z_dim=self.cfg.z_dim, num_classes=self.cfg.num_classes,
                          conditional=self.cfg.conditional)

    def state_dict(self) -> dict:
        """Models, EMA (with its standing statistics), optimisers; the harness adds step, RNG and history."""
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.sampling_generator().state_dict() if self.ema is not None else None,
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.ema is not None:
            self.ema.model.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def best_state(self) -> dict:
        """What ``best.pt`` keeps: the generator and its EMA (what ``GanSampler.from_run(which="best")`` loads)."""
        return {"G": self.G.state_dict(), "G_ema": self.sampling_generator().state_dict() if self.ema else None}


def make_optimizer(cfg, params, *, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))


# ================================================================================================= the run

def train(cfg, *, out, resume: bool = False, stop_after_steps: int | None = None,
          progress: bool | None = None, device: str = "cpu") -> dict:
    """Train (or continue) the run in ``out``; return its record (or ``{"stopped": step}`` when stopped early).
    ``progress``: a progress bar on stderr (None: when stderr is a terminal). ``device``: where the models run.
    Under torchrun (``geneval.distributed.init`` done by the CLI) the ranks train data-parallel on one global
    batch of ``cfg.batch_size``; rank 0 writes the run folder and returns the record, the others ``{}``."""
    from geneval import distributed

    from geneval.optional import require_plotting

    require_plotting("a GAN run (its training curves, drawn at the end)")  # before anything trains
    harness = Harness(out, config=config_dict(cfg), resume=resume, progress=progress,
                      budget=Budget(steps=cfg.steps, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every),
                      description=f"{cfg.preset} ({cfg.budget})")
    if harness.finished:
        return harness.run.read_record()
    images, labels, info = load_split(cfg.dataset, "train")
    n_train = len(images) - cfg.val_holdout
    val_images, val_labels = images[n_train:], labels[n_train:]
    if cfg.train_subset:
        n_train = min(n_train, cfg.train_subset)
    ctx = distributed.current()
    trainer = GanTraining(cfg, images=images[:n_train], labels=labels[:n_train], device=device, ctx=ctx)
    val_metrics, _ = evaluation.available_metrics(cfg, evaluation.VALIDATION_METRICS)

    from geneval.sources import open_source

    val_reference = open_source(val_images, labels=val_labels)
    val_name = f"{cfg.dataset}:train[{len(images) - cfg.val_holdout}:]"

    def score() -> dict:
        """The sampling generator on the validation slice (FID, IS)."""
        sampler = trainer.sampler()
        sample_labels = sampler.labels_for(cfg.val_samples)
        samples = sampler.sample(cfg.val_samples, cfg.sample_seed)
        trainer.G.train()  # the sampler put the (non-EMA) generator in eval mode
        values, _ = evaluation.score(samples, sample_labels, cfg=cfg, reference=val_reference,
                                     reference_name=val_name, metrics=val_metrics)
        return {name: v["value"] for name, v in values.items()}

    validation = Validation(score, every=cfg.eval_every, metric="fid", best_state=trainer.best_state,
                            collapse_margin=cfg.collapse_margin)
    outcome = harness.train(trainer, validation=validation, stop_after_steps=stop_after_steps)
    if outcome.stopped:
        return {"stopped": outcome.step}
    if not harness.main:
        return {}
    with distributed.single_process():
        return finish(trainer, harness.run, outcome, n_train=n_train, val_name=val_name,
                      train_fingerprint=info["fingerprint"])


def finish(trainer: GanTraining, run: RunDir, outcome: Outcome, *, n_train: int, val_name: str,
           train_fingerprint: str) -> dict:
    """Score final and best on the test split, draw the grids and curves, write ``record.json``."""
    from geneval.grid import save_grid

    cfg, history = trainer.cfg, outcome.validation
    train_time = outcome.train_wall_time_s
    report_metrics, skipped = evaluation.available_metrics(cfg, cfg.eval_metrics)
    reference = f"{cfg.dataset}:test"
    results, protocol, sampling = {}, None, None
    for which in ("final", "best"):
        sampler = GanSampler.from_run(run.path, which=which, device=trainer.device)
        labels = sampler.labels_for(cfg.eval_samples)
        samples, timing = timed(lambda: sampler.sample(cfg.eval_samples, cfg.sample_seed), cfg.eval_samples)
        sampling = sampling or {**timing, "checkpoint": which}  # the final checkpoint's
        results[which], protocol = evaluation.score(samples, labels, cfg=cfg, reference=reference,
                                                    reference_name=reference, metrics=report_metrics,
                                                    num_ref=cfg.eval_num_ref)
        grid_labels = sampler.labels_for(100)
        save_grid(run.file(f"samples_{which}.png"), sampler.sample(100, cfg.sample_seed, grid_labels), ncols=10,
                  scale=2)
    evaluation.plot_curves(run.read_log(), run.file("curves.png"), title=f"{cfg.preset} ({cfg.budget}) on {cfg.dataset}")
    params = {"generator": count_parameters(trainer.G), "discriminator": count_parameters(trainer.D)}
    best = history["best"] or {}
    record = {
        "family": "gan", "model": cfg.preset, "preset": cfg.preset, "budget": cfg.budget, "seed": cfg.seed,
        "dataset": cfg.dataset, "config": config_dict(cfg), "switches": cfg.switches(),
        "batch_size": cfg.batch_size, "width_mult": cfg.width_mult, "n_dis": cfg.n_dis,
        "params": params, "params_m": {k: round(v / 1e6, 4) for k, v in params.items()},
        "steps": trainer.step, "iterations_k": trainer.step / 1000, "train_images": n_train,
        "wall_time_s": round(train_time, 1), "eval_wall_time_s": round(outcome.watch.elapsed() - train_time, 1),
        "sampled_from": "ema" if trainer.ema is not None else "generator", "sampling": sampling,
        "metrics": results,
        "best_step": best.get("step"),
        "selection": {"reference": val_name, "metric": "fid", "num_samples": cfg.val_samples,
                      "value": best.get("fid"), "evaluations": len(history["evals"])},
        "compute": {"device": str(trainer.device), "processes": trainer.ctx.world_size if trainer.ctx else 1,
                    "global_batch_size": cfg.batch_size,
                    "per_rank_batch_size": cfg.batch_size // (trainer.ctx.world_size if trainer.ctx else 1)},
        "collapse": {"detected": history["collapse"] is not None, "margin": cfg.collapse_margin,
                     **(history["collapse"] or {})},
        "evaluation": {**protocol, "sample_seed": cfg.sample_seed, "metrics_skipped": skipped,
                       "train_fingerprint": train_fingerprint},
        "artifacts": {"final_samples": "samples_final.png", "best_samples": "samples_best.png",
                      "curves": "curves.png", "checkpoint": "checkpoint.pt", "best_checkpoint": "best.pt",
                      "log": "log.jsonl"},
    }
    run.write_record(record)
    return run.read_record()
