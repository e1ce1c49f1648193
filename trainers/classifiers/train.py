"""Train a domain classifier on a named dataset, resumably and deterministically on CPU.

    python -m trainers.classifiers.train --dataset fashion-mnist --out runs/classifiers/fashion-mnist --resume

Everything random is derived from ``--seed``: the initial weights (``torch.manual_seed``), the data order of
epoch ``e`` (a ``torch.Generator`` seeded from ``(seed, e)``), the crop/flip of batch ``(e, b)`` (a generator
seeded from ``(seed, e, b)``) and dropout (the global torch RNG, whose state is checkpointed). So a run stopped
anywhere and resumed with ``--resume`` takes the same steps as an uninterrupted one.

``<out>/checkpoint.pt`` (written atomically at every epoch end and every ``--checkpoint-minutes``) holds the
model, optimizer, scheduler and RNG states, the position (epoch, batch) and the history. ``<out>/log.jsonl``
gets one line per epoch with the test accuracy; ``<out>/done.json`` marks a finished run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from geneval.atomic import write_text_atomic
from geneval.datasets import open_dataset
from geneval.features.domain import NETS
from trainers.classifiers.models import RECIPES, Recipe
from trainers.common.checkpoint import save_checkpoint
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


def train(args: argparse.Namespace) -> dict:
    recipe = RECIPES[args.dataset]
    if args.epochs:
        recipe = Recipe(**{**recipe.as_dict(), "epochs": args.epochs})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    config = run_config(args, recipe)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, y_train, info_train = open_dataset(args.dataset, "train")
    x_test, y_test, info_test = open_dataset(args.dataset, "test")
    x_train, y_train = torch.tensor(x_train), torch.tensor(y_train)
    x_test, y_test = torch.tensor(x_test), torch.tensor(y_test)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs

    torch.manual_seed(args.seed)
    model = recipe.build()
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]  # no weight decay on biases and BatchNorm
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr, momentum=0.9, nesterov=True,
    )
    schedule = WarmupCosine(round(recipe.warmup_epochs * steps_per_epoch), total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    epoch, batch, history = 0, 0, []

    if ckpt_path.exists():
        if not args.resume:
            raise SystemExit(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if state["config"] != config:
            raise SystemExit(f"{ckpt_path} was written with {state['config']}, not {config}; use another --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        epoch, batch, history = state["epoch"], state["batch"], state["history"]
        log.info("resumed %s at epoch %d batch %d", ckpt_path, epoch, batch)

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, {
            "config": config, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
            "epoch": epoch, "batch": batch, "history": history,
            "data": {"train": info_train["fingerprint"], "test": info_test["fingerprint"]},
        })

    last_save = time.monotonic()
    while epoch < recipe.epochs:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(args.seed, ORDER, epoch)))
        model.train()
        started = time.monotonic()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = seen = 0
        while batch < steps_per_epoch:
            index = order[batch * recipe.batch_size:(batch + 1) * recipe.batch_size]
            g = torch.Generator().manual_seed(derived_seed(args.seed, AUGMENT, epoch, batch))
            x = augment(x_train[index], pad=recipe.crop_pad, hflip=recipe.hflip, generator=g)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_train[index]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            batch += 1
            loss_sum += loss.detach().double() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if time.monotonic() - last_save > args.checkpoint_minutes * 60:
                checkpoint()
                last_save = time.monotonic()
                log.info("epoch %d batch %d/%d checkpointed", epoch, batch, steps_per_epoch)
            if args.stop_after_steps and epoch * steps_per_epoch + batch >= args.stop_after_steps:
                checkpoint()
                log.info("stopping after %d steps as asked", args.stop_after_steps)
                return {"stopped": True}
        test_accuracy = evaluate(model, x_test, y_test, channels_last=recipe.channels_last)
        record = {
            "epoch": epoch + 1, "test_accuracy": test_accuracy,
            # partial-epoch figures after a mid-epoch resume: they cover only the batches since the resume
            "train_loss": float(loss_sum) / max(1, seen), "train_accuracy": correct / max(1, seen),
            "lr": scheduler.get_last_lr()[0], "seconds": round(time.monotonic() - started, 1),
        }
        history.append(record)
        epoch, batch = epoch + 1, 0
        checkpoint()
        last_save = time.monotonic()
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("%s", json.dumps(record))

    final = {
        "dataset": args.dataset, "net": recipe.net, "seed": args.seed, "epochs": recipe.epochs,
        "test_accuracy": history[-1]["test_accuracy"], "target_accuracy": NETS[recipe.net].target_accuracy,
        "recipe": recipe.as_dict(),
        "data_fingerprints": {"train": info_train["fingerprint"], "test": info_test["fingerprint"]},
        "torch": torch.__version__, "argv": sys.argv,
    }
    write_text_atomic(out / "done.json", json.dumps(final, indent=2) + "\n")
    log.info("finished: test accuracy %.4f (target %.4f)", final["test_accuracy"], final["target_accuracy"])
    return final


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoint.pt, log.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out if there is one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, metavar="MIN",
                        help="also checkpoint mid-epoch this often (default 5)")
    parser.add_argument("--stop-after-steps", type=int, default=0, metavar="N",
                        help="checkpoint and stop after N optimizer steps in total (tests of exact resume)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    train(parse_args(argv))


if __name__ == "__main__":
    main()
