"""Train a domain classifier on a named dataset, resumably and deterministically on CPU.

    python -m trainers.classifiers.train --dataset fashion-mnist --out runs/classifiers/fashion-mnist --resume

Everything random is derived from ``--seed``: the initial weights (``torch.manual_seed``), the data order of
epoch ``e`` (a ``torch.Generator`` seeded from ``(seed, e)``), the crop/flip of batch ``(e, b)`` (a generator
seeded from ``(seed, e, b)``) and dropout (the global torch RNG, whose state is checkpointed). So a run stopped
anywhere and resumed with ``--resume`` takes the same steps as an uninterrupted one.

The run folder is ``trainers.common.harness``'s: ``<out>/checkpoint.pt`` (atomic, at every epoch end and every
``--checkpoint-minutes``) holds the model, optimizer, scheduler and RNG states, the step (epoch = step //
steps per epoch) and the per-epoch history; ``<out>/log.jsonl`` gets the training loss every 100 steps and one
``"val"`` line per epoch with the test accuracy; ``<out>/record.json`` marks a finished run.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

import torch
from torch.nn import functional as F

from geneval.datasets import open_dataset
from geneval.errors import GenevalInputError
from geneval.features.domain import NETS
from trainers.classifiers.models import RECIPES, Recipe
from trainers.common.harness import Budget, Harness, Validation
from trainers.common.runs import count_parameters
from trainers.common.seeding import derived_seed

log = logging.getLogger("trainers.classifiers.train")


ORDER, AUGMENT = 1, 2  # stream ids for derived_seed


class WarmupCosine:
    """Learning-rate factor per step: linear warm-up from 0 to 1, then cosine decay to 0 (a picklable callable)."""

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = max(1, warmup_steps), total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def augment(x: torch.Tensor, *, pad: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded uint8 batch (shift by up to ``pad`` px) and random horizontal flips."""
    b, c, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))  # [B, C, H + 2p, W + 2p]
        hp, wp = h + 2 * pad, w + 2 * pad
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        # flat index of output pixel (b, c, i, j) in the padded batch: ((b·C + c)·Hp + dy_b + i)·Wp + dx_b + j
        base = (torch.arange(b * c).view(b, c) * hp + dy[:, None]) * wp + dx[:, None]  # [B, C]
        grid = torch.arange(h)[:, None] * wp + torch.arange(w)  # [H, W]
        x = padded.reshape(-1)[base[:, :, None, None] + grid]
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, channels_last: bool,
             batch_size: int = 1000) -> float:
    """Top-1 accuracy (fraction) in eval mode."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1) == labels[start:start + batch_size]).sum())
    return correct / len(images)


def run_config(args: argparse.Namespace, recipe: Recipe) -> dict:
    """What must not change between a run and its resumption."""
    return {"dataset": args.dataset, "seed": args.seed, "recipe": recipe.as_dict()}


class ClassifierTraining:
    """The network, SGD with warm-up + cosine, and the data; ``train_step()`` is batch ``step % steps_per_epoch``
    of epoch ``step // steps_per_epoch``. The epoch's running loss and accuracy are part of the state, so the
    figures of an epoch resumed in its middle still cover the whole epoch."""

    def __init__(self, recipe: Recipe, *, seed: int, images: torch.Tensor, labels: torch.Tensor):
        self.recipe, self.seed = recipe, seed
        self.images, self.labels = images, labels
        self.steps_per_epoch = math.ceil(len(images) / recipe.batch_size)
        self.total_steps = self.steps_per_epoch * recipe.epochs
        torch.manual_seed(seed)
        model = recipe.build()
        self.model = model.to(memory_format=torch.channels_last) if recipe.channels_last else model
        decay = [p for p in self.model.parameters() if p.ndim > 1]  # no weight decay on biases and BatchNorm
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=recipe.lr, momentum=0.9, nesterov=True,
        )
        schedule = WarmupCosine(round(recipe.warmup_epochs * self.steps_per_epoch), self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.step = 0
        self._order_epoch, self._order = -1, None
        self.epoch_stats = {"loss_sum": torch.zeros((), dtype=torch.float64), "correct": 0, "seen": 0}
        self.epoch_started = time.monotonic()

    def train_step(self) -> dict[str, float]:
        recipe = self.recipe
        epoch, batch = divmod(self.step, self.steps_per_epoch)
        if epoch != self._order_epoch:
            g = torch.Generator().manual_seed(derived_seed(self.seed, ORDER, epoch))
            self._order, self._order_epoch = torch.randperm(len(self.images), generator=g), epoch
        if batch == 0:
            self.epoch_stats = {"loss_sum": torch.zeros((), dtype=torch.float64), "correct": 0, "seen": 0}
            self.epoch_started = time.monotonic()
        self.model.train()  # evaluation at the end of the previous epoch switched to eval mode
        index = self._order[batch * recipe.batch_size:(batch + 1) * recipe.batch_size]
        g = torch.Generator().manual_seed(derived_seed(self.seed, AUGMENT, epoch, batch))
        x = augment(self.images[index], pad=recipe.crop_pad, hflip=recipe.hflip, generator=g)
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.labels[index]
        logits = self.model(x)  # dropout draws from the global torch RNG, which the harness checkpoints
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        stats = self.epoch_stats
        stats["loss_sum"] += loss.detach().double() * len(y)
        stats["correct"] += int((logits.argmax(1) == y).sum())
        stats["seen"] += len(y)
        return {"loss": float(loss.detach())}

    def epoch_summary(self, x_test: torch.Tensor, y_test: torch.Tensor) -> dict:
        """The epoch that just ended: test accuracy, the epoch's training loss and accuracy, lr, seconds."""
        stats = self.epoch_stats
        return {
            "epoch": self.step // self.steps_per_epoch,
            "test_accuracy": evaluate(self.model, x_test, y_test, channels_last=self.recipe.channels_last),
            "train_loss": float(stats["loss_sum"]) / max(1, stats["seen"]),
            "train_accuracy": stats["correct"] / max(1, stats["seen"]),
            "lr": self.scheduler.get_last_lr()[0], "seconds": round(time.monotonic() - self.epoch_started, 1),
        }

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch_stats": dict(self.epoch_stats)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch_stats = dict(state["epoch_stats"])


def train(args: argparse.Namespace) -> dict:
    recipe = RECIPES[args.dataset]
    if args.epochs:
        recipe = Recipe(**{**recipe.as_dict(), "epochs": args.epochs})
    torch.use_deterministic_algorithms(True, warn_only=True)
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, y_train, info_train = open_dataset(args.dataset, "train")
    x_test, y_test, info_test = open_dataset(args.dataset, "test")
    fingerprints = {"train": info_train["fingerprint"], "test": info_test["fingerprint"]}
    trainer = ClassifierTraining(recipe, seed=args.seed, images=torch.tensor(x_train), labels=torch.tensor(y_train))
    x_test, y_test = torch.tensor(x_test), torch.tensor(y_test)
    epoch_steps = trainer.steps_per_epoch
    harness = Harness(args.out, config=run_config(args, recipe), resume=args.resume, progress=args.progress,
                      header={"family": "classifier", "data": fingerprints}, description=recipe.net,
                      budget=Budget(steps=trainer.total_steps, log_every=min(100, epoch_steps),
                                    checkpoint_every=epoch_steps, checkpoint_every_s=args.checkpoint_minutes * 60))
    if harness.finished:
        return harness.run.read_record()
    # One "validation" per epoch: the test accuracy the recipe is judged by (no model selection on it: the
    # exported weights are the last epoch's).
    validation = Validation(lambda: trainer.epoch_summary(x_test, y_test), every=epoch_steps)
    outcome = harness.train(trainer, validation=validation, stop_after_steps=args.stop_after_steps or None)
    if outcome.stopped:
        return {"stopped": True}

    history = epoch_history(outcome.validation)
    final = history[-1]["test_accuracy"]
    target = NETS[recipe.net].target_accuracy
    record = {
        "family": "classifier", "model": recipe.net, "preset": args.dataset, "budget": None, "seed": args.seed,
        "dataset": args.dataset, "config": run_config(args, recipe), "recipe": recipe.as_dict(),
        "params": {"total": count_parameters(trainer.model)}, "steps": outcome.step, "epochs": recipe.epochs,
        "wall_time_s": round(outcome.train_wall_time_s, 1),
        "metrics": {"final": {"test_accuracy": {"value": final, "std": None, "label": "test top-1 accuracy",
                                                "higher_is_better": True}}},
        "test_accuracy": final, "target_accuracy": target, "history": history,
        "evaluation": {"reference": f"{args.dataset}:test", "reference_fingerprint": info_test["fingerprint"],
                       "train_fingerprint": info_train["fingerprint"]},
        "artifacts": {"checkpoint": "checkpoint.pt", "log": "log.jsonl"}, "argv": sys.argv,
    }
    harness.run.write_record(record)
    log.info("finished: test accuracy %.4f (target %.4f)", final, target)
    return harness.run.read_record()


def epoch_history(validation: dict) -> list[dict]:
    """The per-epoch summaries of a run's validation history (what the exported weights' JSON keeps)."""
    return [{k: v for k, v in e.items() if k not in ("kind", "step", "wall_time_s")} for e in validation["evals"]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoint.pt, log.jsonl, record.json)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out if there is one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, metavar="MIN",
                        help="also checkpoint mid-epoch this often (default 5)")
    parser.add_argument("--stop-after-steps", type=int, default=0, metavar="N",
                        help="checkpoint and stop after N optimizer steps in total (tests of exact resume)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        train(parse_args(argv))
    except GenevalInputError as err:  # a changed config, an unasked resume, a refused checkpoint: one line
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
