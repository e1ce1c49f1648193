"""Train Pix2Pix on a paired task and score its test outputs against the test targets.

    geneval train pix2pix --task fashion-mnist-edges --budget small --out runs/p2p-edges --resume
    geneval train pix2pix --task cifar10-gray --budget small --set loss=l1 --out runs/p2p-l1

Tasks are geneval's paired datasets (``geneval datasets``): the input of item i is ``<task>:<split>`` item i, its
target ``<target>:<split>`` item i (``DatasetSpec.target``). The loop, top to bottom (the run harness of
``trainers.common.harness`` does the run folder, atomic checkpoints, exact resume and logging):

    batch   step s takes a slice of epoch s // steps_per_epoch's permutation (``generator(seed, ORDER, epoch)``)
    D step  (GAN losses only) the non-saturating loss on real pairs and detached fake pairs, halved (§3.3:
            "we divide the objective by 2 while optimizing D")
    G step  λ·L1(G(x), y) and/or the non-saturating GAN loss on D's scores of G(x) (cGAN: D sees x; GAN: not)
    Adam 2e-4, β = (0.5, 0.999) for both (§3.3); dropout from the global RNG (saved in every checkpoint)

``device``: where G, D and their batches run (the data stays on the CPU; batches and test-time dropout masks are
drawn there and moved; training dropout uses the device's RNG, whose state the checkpoints keep too).

Evaluation on the test split (``eval_num`` pairs): outputs with test-time dropout drawn per image
(``model.sample_masks``), scored by ``geneval.score`` with the test targets as ``targets``: per-pair L1, PSNR and SSIM
(± standard errors over pairs), the domain classifier's agreement with the targets' labels (FCN-score, §4.2) and
with its own classes of the targets, FID / precision / recall of the outputs against the test targets; a PNG of
input | output | target triplets.

Budgets: ``smoke`` (seconds, the test suite), ``small`` (≤ 30 minutes of one run on the shared 2-core CPU,
measured in the records), ``paper`` (the paper's widths, ngf = ndf = 64, and every U-Net level the image allows —
2 at 28 pixels, 5 at 32 — where the paper's 8 levels need 256 pixels; 100,000 steps of batch 16; not run here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from geneval.datasets import DATASETS
from geneval.errors import GenevalInputError
from geneval.grid import save_grid
from trainers.common.config import config_dict
from trainers.common.data import load_split
from trainers.common.harness import Budget, Harness
from trainers.common.runs import count_parameters, module_device
from trainers.common.seeding import derived_seed, generator
from trainers.pix2pix.model import NORMS, PATCHES, PatchGAN, UNet, sample_masks

log = logging.getLogger(__name__)

INIT, ORDER, EVAL = 501, 502, 503  # stream ids
LOSSES = ("l1", "gan", "cgan", "l1+gan", "l1+cgan")
PAIRED_METRICS = ("l1", "psnr", "ssim")  # each output against its target (geneval.metrics.ssim, geneval.paired)
# of the outputs as samples (against the test targets), and the domain classifier on them (geneval.metrics.agreement)
SAMPLE_METRICS = ("fid", "precision", "recall", "classifier_agreement", "target_agreement")
TASKS = ("fashion-mnist-edges", "cifar10-gray")


@dataclass(frozen=True)
class Pix2PixConfig:
    task: str = "fashion-mnist-edges"
    seed: int = 0
    loss: str = "l1+cgan"
    lambda_l1: float = 100.0
    skips: bool = True  # U-Net (True) or the plain encoder–decoder
    patch: str = "10"  # PatchGAN receptive field: 1, 4, 10 or image
    norm: str = "batch"
    ngf: int = 32
    ndf: int = 32
    num_down: int | None = None  # U-Net levels; None = as many as the image allows, up to 3
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-4
    beta1: float = 0.5
    train_num: int | None = None
    eval_num: int | None = None  # test pairs scored; None = the whole split
    sample_features: str | None = None  # None = the target dataset's domain classifier
    checkpoint_every: int = 250
    log_every: int = 50

    def validate(self) -> None:
        if self.task not in TASKS:
            raise GenevalInputError(f"task {self.task!r} is not one of {', '.join(TASKS)} (paired datasets)")
        if self.loss not in LOSSES:
            raise GenevalInputError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.patch not in PATCHES:
            raise GenevalInputError(f"patch {self.patch!r} is not one of {', '.join(PATCHES)}")
        if self.norm not in NORMS:
            raise GenevalInputError(f"norm {self.norm!r} is not one of {', '.join(NORMS)}")
        for name in ("ngf", "ndf", "steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        side = min(DATASETS.get(self.task).shape[1:])
        if self.num_down is not None and not 1 <= self.num_down <= max_levels(side):
            raise GenevalInputError(f"num_down = {self.num_down}: {side}-pixel images allow 1 to {max_levels(side)}")
        for name in ("train_num", "eval_num"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise GenevalInputError(f"{name} must be ≥ 2 or none, got {value}")

    @property
    def adversarial(self) -> bool:
        return "gan" in self.loss

    @property
    def conditional(self) -> bool:
        return "cgan" in self.loss


def max_levels(side: int) -> int:
    """How many stride-2 halvings a side allows exactly (28 → 2, 32 → 5)."""
    levels = 0
    while side % 2 == 0 and side > 1:
        side, levels = side // 2, levels + 1
    return levels


class PairedData:
    """Inputs, targets and labels of one split as uint8 tensors; ``batch(step)`` as in the module docstring."""

    def __init__(self, task: str, split: str, *, seed: int = 0, num: int | None = None):
        self.task, self.target = task, DATASETS.get(task).target
        inputs, labels, _ = load_split(task, split)
        targets, target_labels, _ = load_split(self.target, split)
        if not torch.equal(labels, target_labels):
            raise GenevalInputError(f"{task}:{split} and {self.target}:{split} do not pair up (labels differ)")
        self.inputs, self.targets, self.labels = inputs[:num], targets[:num], labels[:num]
        self.seed, self._epoch, self._order = seed, -1, None

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        per_epoch = max(1, len(self.inputs) // batch_size)
        epoch, index = divmod(step, per_epoch)
        if epoch != self._epoch:
            self._order = torch.randperm(len(self.inputs), generator=generator(self.seed, ORDER, epoch))
            self._epoch = epoch
        take = self._order[index * batch_size:(index + 1) * batch_size]
        return self.inputs[take], self.targets[take]


def scaled(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    return torch.floor((y.clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)


def build(config: Pix2PixConfig) -> tuple[UNet, PatchGAN | None]:
    task = DATASETS.get(config.task)
    c_in, c_out = task.shape[0], DATASETS.get(task.target).shape[0]
    levels = config.num_down or min(3, max_levels(min(task.shape[1:])))
    torch.manual_seed(derived_seed(config.seed, INIT))
    g = UNet(in_channels=c_in, out_channels=c_out, ngf=config.ngf, num_down=levels, skips=config.skips,
             norm=config.norm)
    d = None
    if config.adversarial:
        d = PatchGAN(in_channels=c_out + (c_in if config.conditional else 0), ndf=config.ndf, patch=config.patch,
                     norm=config.norm, image_size=task.shape[1:])
    return g, d


def gan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())


class Pix2PixTraining:
    def __init__(self, config: Pix2PixConfig, data: PairedData, *, device: torch.device | str = "cpu"):
        self.config, self.data, self.device = config, data, torch.device(device)
        generator_, discriminator = build(config)
        self.generator = generator_.to(self.device)
        self.discriminator = discriminator.to(self.device) if discriminator is not None else None
        betas = (config.beta1, 0.999)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.d_optimizer = (torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
                            if self.discriminator is not None else None)
        self.step = 0

    def train_step(self) -> dict[str, float]:
        config = self.config
        x_uint8, y_uint8 = self.data.batch(self.step, config.batch_size)
        x, y = scaled(x_uint8.to(self.device)), scaled(y_uint8.to(self.device))
        self.generator.train()
        fake = self.generator(x)
        out = {}
        condition = x if config.conditional else None
        if self.discriminator is not None:
            self.discriminator.train()
            d_loss = gan_d_loss(self.discriminator(y, condition), self.discriminator(fake.detach(), condition))
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            out["d_loss"] = float(d_loss.detach())
        g_loss = torch.zeros((), device=self.device)
        if "l1" in config.loss:
            l1 = (fake - y).abs().mean()
            g_loss = g_loss + config.lambda_l1 * l1
            out["l1"] = float(l1.detach())
        if self.discriminator is not None:
            adversarial = F.softplus(-self.discriminator(fake, condition)).mean()  # non-saturating, −log D(x, G(x))
            g_loss = g_loss + adversarial
            out["g_gan"] = float(adversarial.detach())
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.step += 1
        return out

    def state_dict(self) -> dict:
        state = {"generator": self.generator.state_dict(), "g_optimizer": self.g_optimizer.state_dict()}
        if self.discriminator is not None:
            state.update(discriminator=self.discriminator.state_dict(), d_optimizer=self.d_optimizer.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])


@torch.no_grad()
def translate(model: UNet, inputs_uint8: torch.Tensor, *, seed: int, first: int = 0, batch_size: int = 500,
              dropout: bool = True) -> torch.Tensor:
    """uint8 outputs for uint8 inputs; output j uses the dropout masks of ``generator(seed, first + j)`` (or none)."""
    model.eval()  # batch norm with its running statistics; dropout from the per-image masks
    out, device = [], module_device(model)
    for start in range(0, len(inputs_uint8), batch_size):
        part = inputs_uint8[start:start + batch_size]
        if dropout:
            masks = sample_masks(model, tuple(part.shape[1:]), seed=seed, first=first + start, num=len(part))
        else:
            masks = [torch.ones(1, *s) for s in model.dropout_shapes(*part.shape[2:])]
        out.append(to_uint8(model(scaled(part.to(device)), [m.to(device) for m in masks])).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.uint8)


def evaluate(model: UNet, config: Pix2PixConfig, *, dropout: bool = True) -> tuple[dict, dict, torch.Tensor]:
    """(metrics, protocol, outputs) of the test split."""
    from trainers.common.evaluation import evaluate_samples

    test = PairedData(config.task, "test", num=config.eval_num)
    seed = derived_seed(config.seed, EVAL)
    outputs = translate(model, test.inputs, seed=seed, dropout=dropout)
    features = config.sample_features or DATASETS.get(test.target).default_extractor
    names = PAIRED_METRICS + (SAMPLE_METRICS if features != "pixels" else ("fid",))
    metrics, protocol = evaluate_samples(outputs, reference=f"{test.target}:test", metrics=names, features=features,
                                         labels=test.labels, num_ref=config.eval_num, kid_subsets=10,
                                         targets=test.targets)
    protocol.update({"pairs": len(outputs), "task": config.task, "targets": f"{test.target}:test",
                     "test_dropout": dropout, "output_seed": seed})
    return metrics, protocol, outputs


def train(config: Pix2PixConfig, *, out: str | Path, budget: str, resume: bool = False,
          stop_after_steps: int | None = None, progress: bool | None = None,
          device: torch.device | str = "cpu") -> dict | None:
    config.validate()
    harness = Harness(out, config={"family": "pix2pix", "budget": budget, **config_dict(config)}, resume=resume,
                      progress=progress, budget=Budget(steps=config.steps, log_every=config.log_every,
                                                       checkpoint_every=config.checkpoint_every),
                      header={"family": "pix2pix", "budget": budget}, description=f"pix2pix {config.loss} ({budget})")
    if harness.finished:
        return harness.run.read_record()
    trainer = Pix2PixTraining(config, PairedData(config.task, "train", seed=config.seed, num=config.train_num),
                              device=device)
    outcome = harness.train(trainer, stop_after_steps=stop_after_steps)
    if outcome.stopped:
        return None
    metrics, protocol, outputs = evaluate(trainer.generator, config)
    test = PairedData(config.task, "test", num=24)
    triplets = torch.stack([_as_rgb(test.inputs, outputs.shape[1]), _as_rgb(outputs[:24], outputs.shape[1]),
                            test.targets], 1).reshape(-1, *outputs.shape[1:])
    save_grid(harness.run.file("triplets.png"), triplets, ncols=12, scale=2)
    params = {"generator": count_parameters(trainer.generator)}
    if trainer.discriminator is not None:
        params["discriminator"] = count_parameters(trainer.discriminator)
    record = {"family": "pix2pix", "preset": "pix2pix", "budget": budget, "seed": config.seed, "dataset": config.task,
              "config": config_dict(config), "params": params, "steps": outcome.step,
              "wall_time_s": round(outcome.train_wall_time_s, 2), "metrics": {"final": metrics},
              "compute": {"device": str(trainer.device), "processes": 1},
              "evaluation": protocol, "artifacts": {"triplets": "triplets.png"}}
    harness.run.write_record(record)
    return harness.run.read_record()


def _as_rgb(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey inputs beside colour outputs in one grid: repeat the channel."""
    return x.repeat(1, channels // x.shape[1], 1, 1) if x.shape[1] != channels else x


SMOKE = dict(steps=4, batch_size=8, train_num=64, eval_num=32, ngf=4, ndf=4, sample_features="pixels",
             checkpoint_every=2, log_every=2)
BUDGETS = {
    "smoke": SMOKE,
    "small": dict(steps=2000, batch_size=32),
    "paper": dict(steps=100000, batch_size=16, ngf=64, ndf=64),
}


def make_config(*, budget: str, task: str, overrides: dict) -> Pix2PixConfig:
    from trainers.common.config import apply_overrides

    if budget not in BUDGETS:
        raise GenevalInputError(f"pix2pix: unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
    if "task" in overrides:
        raise GenevalInputError("the task is chosen by --task (a spec's dataset), not by --set task=")
    fields = dict(BUDGETS[budget])
    if budget == "paper" and "num_down" not in overrides:
        fields["num_down"] = max_levels(min(DATASETS.get(task).shape[1:])) if task in TASKS else None
    config = apply_overrides(Pix2PixConfig(task=task, **fields), overrides, what="pix2pix config")
    config.validate()
    return config


def load_generator(run_dir: str | Path, *, device: torch.device | str = "cpu") -> tuple[UNet, Pix2PixConfig]:
    """A finished run's generator (on ``device``) and config (``weights_only`` checkpoint)."""
    import dataclasses

    from trainers.common.checkpoint import load_checkpoint

    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    fields = {f.name for f in dataclasses.fields(Pix2PixConfig)}
    config = Pix2PixConfig(**{k: v for k, v in state["config"].items() if k in fields})
    g, _ = build(config)
    g.load_state_dict(state["trainer"]["generator"])
    return g.to(device), config
