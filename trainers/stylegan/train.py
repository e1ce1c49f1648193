"""The ProGAN / StyleGAN training loop, read top to bottom.

    geneval train stylegan --preset stylegan-f --budget small --dataset fashion-mnist --out runs/stylegan-f --resume

One *step* is one discriminator update then one generator update on a minibatch (both papers' ``D_repeats = 1``).
Where the step is on the growing schedule is a function of the images shown so far (``growth``): level k of
``start · 2^k`` pixels and the fade-in α. The real images are shown at that resolution (2×2 average pooling) and,
while a level fades in, blended with their half-resolution version upsampled (ProGAN §3, ``process_reals``), so
D never sees a difference between real and fake that is only the fade.

Every random draw comes from ``(seed, stream, step)`` (``trainers.common.seeding.generator``): data order, latents,
mixing crossovers, noise images and the gradient penalty's ε. Nothing reads the global RNG after the weights are
initialised, so a resumed run (models, optimisers, EMA with its w̄, step; the schedule follows from the step)
takes the steps an uninterrupted one takes. ``device``: where G, D and their batches run; every draw is made on
the CPU and then moved, so a GPU run draws the random numbers a CPU run draws (one process: no torchrun). The
harness (``trainers.common.harness``) does the run folder, checkpoints, validation on a held-out train slice,
``best.pt``; ``finish`` scores final and best on the test split with the GAN trainer's protocol
(``trainers.gan.evaluation``), draws the pictures and writes ``record.json``.
"""

from __future__ import annotations

import logging

import torch
from torch.nn import functional as F

from trainers.common.config import config_dict
from trainers.common.data import load_split, to_signed_unit
from trainers.common.evaluation import timed
from trainers.common.harness import Budget, Harness, Outcome, Validation
from trainers.common.runs import RunDir, count_parameters
from trainers.common.seeding import derived_seed, generator
from trainers.gan import evaluation, losses
from trainers.gan.layers import WeightEMA
from trainers.stylegan.model import build_models

log = logging.getLogger("trainers.stylegan.train")

INIT, ORDER, NOISE = 1, 2, 3  # stream ids for derived_seed


def growth(images_shown: int, *, levels: int, fade_images: int, stable_images: int) -> tuple[int, float]:
    """``(level, alpha)`` after ``images_shown`` images (ProGAN §3 and A.1): level 0 trains for ``stable_images``;
    every later level fades in linearly over ``fade_images`` (α from 0 to 1), then trains ``stable_images`` at
    α = 1; after the last level's stable phase training goes on at full resolution."""
    t = images_shown - stable_images
    if t < 0:
        return 0, 1.0
    level, t = divmod(t, fade_images + stable_images)
    level += 1
    if level >= levels:
        return levels - 1, 1.0
    return level, min(1.0, t / fade_images)


def process_reals(x: torch.Tensor, *, level: int, alpha: float, levels: int) -> torch.Tensor:
    """Real images at level ``level``'s resolution, faded like the generator's output (ProGAN's ``process_reals``)."""
    for _ in range(levels - 1 - level):
        x = F.avg_pool2d(x, 2)
    if level > 0 and alpha < 1.0:
        low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = torch.lerp(low, x, alpha)
    return x


class StyleGanTraining:
    """Models, optimisers and data of one run, and ``train_step()``."""

    def __init__(self, cfg, *, images: torch.Tensor, device: torch.device | str = "cpu"):
        self.cfg, self.images, self.device = cfg, images, torch.device(device)  # images: uint8 [N, C, H, W], CPU
        self.batches_per_epoch = len(images) // cfg.batch_size
        self._order_epoch, self._order = -1, None
        torch.manual_seed(derived_seed(cfg.seed, INIT))
        self.G, self.D = (net.to(self.device) for net in build_models(cfg))
        self.ema = WeightEMA(self.G, decay=cfg.ema_decay, start_step=0, debias=True)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas, eps=1e-8)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas, eps=1e-8)
        self.step = 0

    # ------------------------------------------------------------------------------------------ schedule
    def growth_at(self, step: int) -> tuple[int, float]:
        cfg = self.cfg
        return growth(step * cfg.batch_size, levels=cfg.levels, fade_images=cfg.fade_images,
                      stable_images=cfg.stable_images)

    def phase(self, step: int) -> tuple[int, bool]:
        level, alpha = self.growth_at(step)
        return level, alpha < 1.0

    def growth_state(self) -> dict:
        """Where the run is on the schedule after ``step`` steps: images shown, and the level, α and resolution
        the last step trained at (what the generator is sampled at)."""
        level, alpha = self.growth_at(max(self.step - 1, 0))
        return {"images_shown": self.step * self.cfg.batch_size, "level": level, "alpha": alpha,
                "resolution": self.G.resolution(level)}

    # ------------------------------------------------------------------------------------------ inputs
    def batch(self, index: int) -> torch.Tensor:
        epoch, b = divmod(index, self.batches_per_epoch)
        if epoch != self._order_epoch:
            self._order = torch.randperm(len(self.images), generator=generator(self.cfg.seed, ORDER, epoch))
            self._order_epoch = epoch
        rows = self._order[b * self.cfg.batch_size:(b + 1) * self.cfg.batch_size]
        return to_signed_unit(self.images[rows]).to(self.device)

    def styles(self, g: torch.Generator, *, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-layer styles ``[B, num_layers, w_dim]`` of one minibatch, and each sample's crossover layer.

        Style-mixing regularisation (StyleGAN §3.1, ``style_mixing_prob``): with probability ``mixing_prob`` a
        sample takes w1 = f(z1) for the layers before a crossover drawn uniformly from 1 … (layers in use − 1) and
        w2 = f(z2) from there on; otherwise its crossover is ``num_layers`` (no mixing). Drawn per sample."""
        cfg, G = self.cfg, self.G
        n = cfg.batch_size
        ws = G.styles(torch.randn(n, cfg.z_dim, generator=g).to(self.device))
        crossover = torch.full((n,), G.num_layers)
        if cfg.mixing_prob > 0:
            ws2 = G.styles(torch.randn(n, cfg.z_dim, generator=g).to(self.device))
            in_use = 2 * (level + 1)
            mixed = torch.rand(n, generator=g) < cfg.mixing_prob
            cut = torch.randint(1, in_use, (n,), generator=g) if in_use > 1 else torch.ones(n, dtype=torch.long)
            crossover = torch.where(mixed, cut, crossover)
            take_second = torch.arange(G.num_layers).view(1, -1, 1) >= crossover.view(-1, 1, 1)
            ws = torch.where(take_second.to(self.device), ws2, ws)
        return ws, crossover

    def noise(self, g: torch.Generator, *, level: int) -> list | None:
        if not self.cfg.noise_inputs:
            return None
        return [torch.randn(self.cfg.batch_size, *shape, generator=g).to(self.device)
                for shape in self.G.noise_shapes(level)]

    # ------------------------------------------------------------------------------------------ step
    def train_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.G, self.D
        level, alpha = self.growth_at(self.step)
        if cfg.reset_optimizer_on_grow and self.step > 0 and self.phase(self.step - 1) != self.phase(self.step):
            # the official code's reset_opt_for_new_lod: fresh Adam moments when a fade starts and when it ends
            # (floor or ceil of ProGAN's level-of-detail changes)
            self.opt_g.state.clear()
            self.opt_d.state.clear()
        g = generator(cfg.seed, NOISE, self.step)

        def critic(x):
            return D(x, level=level, alpha=alpha)

        # ---- discriminator
        D.requires_grad_(True)
        real = process_reals(self.batch(self.step), level=level, alpha=alpha, levels=cfg.levels)
        with torch.no_grad():
            ws, _ = self.styles(g, level=level)
            fake = G(ws, level=level, alpha=alpha, noise=self.noise(g, level=level))
        if cfg.loss == "wgan-gp":
            real_score, fake_score = critic(real), critic(fake)
            loss_d = losses.d_loss("wasserstein", real_score, fake_score)
            # WGAN-GP (Gulrajani et al. 2017) as ProGAN uses it, with its drift term ε·E[D(x)²] (§A.1)
            loss_d = loss_d + cfg.gp_weight * losses.gradient_penalty(lambda x, y: (critic(x), None), real, fake,
                                                                      None, generator=g)
            loss_d = loss_d + cfg.drift_epsilon * real_score.pow(2).mean()
        else:
            real.requires_grad_(cfg.r1_gamma > 0)
            real_score, fake_score = critic(real), critic(fake)
            loss_d = losses.d_loss("nonsat", real_score, fake_score)
            if cfg.r1_gamma > 0:  # R1 (Mescheder et al. 2018): γ/2 · E‖∇_x D(x)‖² on real images
                (grad,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)
                loss_d = loss_d + cfg.r1_gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # ---- generator, through a frozen D
        D.requires_grad_(False)
        ws, _ = self.styles(g, level=level)
        fake_score = critic(G(ws, level=level, alpha=alpha, noise=self.noise(g, level=level)))
        loss_g = losses.g_loss("wasserstein" if cfg.loss == "wgan-gp" else "nonsat", fake_score)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        with torch.no_grad():  # w̄: the moving average of w (StyleGAN's dlatent_avg), truncation's centre
            G.w_avg.copy_(torch.lerp(ws[:, 0].mean(0), G.w_avg, cfg.w_avg_beta))
        self.ema.update(G, step=self.step)  # also copies w̄ (a buffer) into the EMA generator
        self.step += 1
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "level": float(level),
                "alpha": float(alpha)}

    # ------------------------------------------------------------------------------------ (de)serialise
    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.ema.model.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "growth": self.growth_state()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.model.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])  # the schedule follows from the step the harness restores

    def best_state(self) -> dict:
        return {"G": self.G.state_dict(), "G_ema": self.ema.model.state_dict(), "growth": self.growth_state()}

    def sampler(self):
        from trainers.stylegan.sampler import StyleGanSampler

        growth_now = self.growth_state()
        return StyleGanSampler(self.ema.model, level=growth_now["level"], alpha=growth_now["alpha"],
                               out_size=self.cfg.shape[1])


# ================================================================================================= the run

def train(cfg, *, out, resume: bool = False, stop_after_steps: int | None = None,
          progress: bool | None = None, device: torch.device | str = "cpu") -> dict:
    """Train (or continue) the run in ``out`` on ``device``; its record, or ``{"stopped": step}`` when stopped
    early. A run may resume on another device than it started on (the checkpoint is loaded onto this one)."""
    from geneval.optional import require_plotting
    from geneval.sources import open_source

    require_plotting("a StyleGAN run (its pictures and curves)")
    harness = Harness(out, config={"family": "stylegan", **config_dict(cfg)}, resume=resume, progress=progress,
                      budget=Budget(steps=cfg.steps, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every),
                      header={"family": "stylegan"}, description=f"{cfg.preset} ({cfg.budget})")
    if harness.finished:
        return harness.run.read_record()
    images, labels, info = load_split(cfg.dataset, "train")
    n_train = len(images) - cfg.val_holdout
    val_images, val_labels = images[n_train:], labels[n_train:]
    if cfg.train_subset:
        n_train = min(n_train, cfg.train_subset)
    trainer = StyleGanTraining(cfg, images=images[:n_train], device=device)
    val_metrics, _ = evaluation.available_metrics(cfg, evaluation.VALIDATION_METRICS)
    val_reference = open_source(val_images, labels=val_labels)
    val_name = f"{cfg.dataset}:train[{len(images) - cfg.val_holdout}:]"

    def score() -> dict:
        samples = trainer.sampler().sample(cfg.val_samples, cfg.sample_seed)
        values, _ = evaluation.score(samples, None, cfg=cfg, reference=val_reference, reference_name=val_name,
                                     metrics=val_metrics)
        return {name: v["value"] for name, v in values.items()}

    validation = Validation(score, every=cfg.eval_every, metric="fid", best_state=trainer.best_state,
                            collapse_margin=cfg.collapse_margin)
    outcome = harness.train(trainer, validation=validation, stop_after_steps=stop_after_steps)
    if outcome.stopped:
        return {"stopped": outcome.step, "growth": trainer.growth_state()}
    return finish(trainer, harness.run, outcome, n_train=n_train, val_name=val_name,
                  train_fingerprint=info["fingerprint"])


def finish(trainer: StyleGanTraining, run: RunDir, outcome: Outcome, *, n_train: int, val_name: str,
           train_fingerprint: str) -> dict:
    """Score final and best on the test split, draw the pictures and curves, write ``record.json``."""
    from geneval.grid import save_grid
    from trainers.stylegan import pictures
    from trainers.stylegan.sampler import StyleGanSampler

    cfg, history = trainer.cfg, outcome.validation
    train_time = outcome.train_wall_time_s
    report_metrics, skipped = evaluation.available_metrics(cfg, cfg.eval_metrics)
    reference = f"{cfg.dataset}:test"
    results, protocol, sampling = {}, None, None
    for which in ("final", "best"):
        sampler = StyleGanSampler.from_run(run.path, which=which, device=trainer.device)
        samples, timing = timed(lambda: sampler.sample(cfg.eval_samples, cfg.sample_seed), cfg.eval_samples)
        sampling = sampling or {**timing, "checkpoint": which}  # the final checkpoint's
        results[which], protocol = evaluation.score(samples, None, cfg=cfg, reference=reference,
                                                    reference_name=reference, metrics=report_metrics,
                                                    num_ref=cfg.eval_num_ref)
        save_grid(run.file(f"samples_{which}.png"), samples[:100], ncols=10, scale=2)
    artifacts = pictures.draw_all(StyleGanSampler.from_run(run.path, which="final", device=trainer.device), run.path,
                                  seed=cfg.sample_seed, psi=cfg.picture_psi)
    evaluation.plot_curves(run.read_log(), run.file("curves.png"),
                           title=f"{cfg.preset} ({cfg.budget}) on {cfg.dataset}")
    params = {"generator": count_parameters(trainer.G), "discriminator": count_parameters(trainer.D)}
    if trainer.G.mapping is not None:
        params["mapping"] = count_parameters(trainer.G.mapping)
    best = history["best"] or {}
    record = {
        "family": "stylegan", "model": cfg.preset, "preset": cfg.preset, "budget": cfg.budget, "seed": cfg.seed,
        "dataset": cfg.dataset, "config": config_dict(cfg), "switches": cfg.switches(), "batch_size": cfg.batch_size,
        "params": params, "params_m": {k: round(v / 1e6, 4) for k, v in params.items()},
        "steps": trainer.step, "iterations_k": trainer.step / 1000, "growth": trainer.growth_state(),
        "kimg": trainer.step * cfg.batch_size / 1000, "train_images": n_train,
        "wall_time_s": round(train_time, 1), "eval_wall_time_s": round(outcome.watch.elapsed() - train_time, 1),
        "sampled_from": "ema", "sampling": sampling, "metrics": results, "best_step": best.get("step"),
        "compute": {"device": str(trainer.device), "processes": 1},
        "selection": {"reference": val_name, "metric": "fid", "num_samples": cfg.val_samples,
                      "value": best.get("fid"), "evaluations": len(history["evals"])},
        "collapse": {"detected": history["collapse"] is not None, "margin": cfg.collapse_margin,
                     **(history["collapse"] or {})},
        "evaluation": {**protocol, "sample_seed": cfg.sample_seed, "metrics_skipped": skipped,
                       "train_fingerprint": train_fingerprint},
        "artifacts": {"final_samples": "samples_final.png", "best_samples": "samples_best.png", **artifacts,
                      "curves": "curves.png", "checkpoint": "checkpoint.pt", "best_checkpoint": "best.pt",
                      "log": "log.jsonl"},
    }
    run.write_record(record)
    return run.read_record()
