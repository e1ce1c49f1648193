"""A model family defined entirely inside the tests: independent per-pixel categorical distributions.

It proves the family contract (``geneval.family``): registered through ``$GENEVAL_TRAINERS=toy_family:TOY``
(with ``tests/`` on ``PYTHONPATH``), it goes through ``geneval leaderboard run`` and ``build`` with its own
config, switch labels, an evaluation-time option (a sampling temperature) and a recorded metric (exact test
bits/dim), without any edit to ``geneval/`` or ``trainers/common/``.

The model: pixel j takes value v with probability (count_j(v) + α) / (N + 256 α) over ``train_num``
training images (the seed-th slice; Laplace smoothing α). Its test log-likelihood is exact, so bits/dim has a closed form the test
recomputes with NumPy. Sampling draws every pixel independently from p_j^(1/T), renormalised.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from geneval.datasets import open_dataset
from geneval.errors import GenevalInputError
from geneval.family import EvalOption, Family, ProtocolKey, RecordedMetric

LEVELS = 256


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    dataset: str = "fashion-mnist"
    seed: int = 0  # picks the training images (the seed-th slice of train_num) and the sample seeds
    smoothing: float = 1.0  # Laplace α
    train_num: int = 2000  # images counted: train[seed * N:(seed + 1) * N]
    num_samples: int = 64
    features: str = "pixels"
    metrics: tuple[str, ...] = ("fid", "kid")

    def validate(self) -> None:
        if self.smoothing <= 0:
            raise GenevalInputError(f"smoothing={self.smoothing} must be > 0")
        if self.train_num < 1 or self.num_samples < 2:
            raise GenevalInputError("train_num must be ≥ 1 and num_samples ≥ 2")


BUDGETS = {"smoke": dict(train_num=2000, num_samples=64), "small": dict(train_num=60000, num_samples=1000)}


def probabilities(images: np.ndarray, smoothing: float) -> np.ndarray:
    """``[D, 256]`` smoothed per-pixel probabilities of uint8 images ``[N, C, H, W]``."""
    flat = images.reshape(len(images), -1)
    counts = np.zeros((flat.shape[1], LEVELS))
    for v in range(LEVELS):
        counts[:, v] = (flat == v).sum(axis=0)
    return (counts + smoothing) / (len(flat) + LEVELS * smoothing)


def sample(probs: np.ndarray, shape: tuple[int, ...], num: int, seed: int, temperature: float | None) -> torch.Tensor:
    """uint8 ``[num, *shape]``; sample i from its own generator ``(seed, i)``, whatever the batch."""
    p = torch.from_numpy(probs)
    if temperature is not None:
        p = p ** (1.0 / temperature)
        p = p / p.sum(dim=1, keepdim=True)
    out = [torch.multinomial(p, 1, generator=torch.Generator().manual_seed(seed * 100_003 + i)).squeeze(1)
           for i in range(num)]
    return torch.stack(out).to(torch.uint8).reshape(num, *shape)


class ToyFamily(Family):
    name = "toy-pixels"
    eval_options = (EvalOption("temperature", float, None, label="Temperature", protocol=", temperature T = {}",
                               help="sampling temperature T (p^(1/T)); none: T = 1"),)
    recorded_metrics = (RecordedMetric("pixel_bits_per_dim", "Pixel bits/dim", False, protocol=("pixel_split",)),)
    protocol_keys = (ProtocolKey("pixel_split", footer="; pixel likelihood on `{}`", label="likelihood split"),)
    labels = {"smoothing": "Laplace α"}

    def config_class(self, preset=None):
        if preset not in (None, "categorical"):
            raise GenevalInputError(f"toy-pixels: unknown preset {preset!r}; known: categorical")
        return ToyConfig

    def resolve(self, *, preset, budget, dataset, overrides, seed):
        from trainers.common.config import apply_overrides

        self.config_class(preset)
        if budget not in BUDGETS:
            raise GenevalInputError(f"toy-pixels: unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
        base = ToyConfig(dataset=dataset, seed=seed, **BUDGETS[budget])
        return apply_overrides(base, overrides, what="toy-pixels config")

    def protocol_overrides(self, evaluation):
        mapping = {"num_samples": "num_samples", "features": "features", "metrics": "metrics"}
        return {mapping[k]: v for k, v in evaluation.items() if k in mapping}

    def train(self, config, *, out, budget):
        from trainers.common.runs import RunDir

        run = RunDir(out)
        run.start(dataclasses.asdict(config), resume=True)
        images, _, _ = open_dataset(config.dataset, "train")
        first = config.seed * config.train_num
        probs = probabilities(images[first:first + config.train_num], config.smoothing)
        np.save(run.file("probs.npy"), probs)
        test, _, _ = open_dataset(config.dataset, "test")
        flat = test.reshape(len(test), -1)
        nats = -np.log(probs[np.arange(flat.shape[1]), flat]).sum(axis=1)  # [N] exact NLL per image
        bits = nats / (flat.shape[1] * math.log(2))
        metrics = {"pixel_bits_per_dim": {"value": float(bits.mean()), "std": float(bits.std(ddof=1) / math.sqrt(len(bits))),
                                          "label": "Pixel bits/dim", "higher_is_better": False}}
        values, protocol = self.evaluate(run.path, config=config, which="final", metrics=config.metrics)
        metrics.update(values)
        record = {"family": self.name, "model": "categorical", "preset": "categorical", "budget": budget,
                  "seed": config.seed, "dataset": config.dataset, "config": dataclasses.asdict(config),
                  "params": {"total": int(probs.size)}, "steps": 1, "wall_time_s": 0.0,
                  "metrics": {"final": metrics},
                  "evaluation": {**protocol, "pixel_split": f"{config.dataset}:test"}}
        run.write_record(record)
        return run.read_record()

    def sampler(self, run_dir, *, which="final"):
        probs = np.load(Path(run_dir) / "probs.npy")
        config = json.loads((Path(run_dir) / "config.json").read_text())
        shape = open_dataset(config["dataset"], "test")[0].shape[1:]
        return lambda num, seed, labels=None, temperature=None: sample(probs, shape, num, seed, temperature)

    def evaluate(self, run_dir, *, config, which, metrics, ci=None, ci_resamples=100, temperature=None):
        from trainers.common.evaluation import evaluate_samples

        samples = self.sampler(run_dir)(config.num_samples, config.seed, temperature=temperature)
        values, protocol = evaluate_samples(samples, reference=f"{config.dataset}:test", metrics=tuple(metrics),
                                            features=config.features, num_ref=1000, kid_subsets=10)
        protocol.update({"sample_seed": config.seed, "temperature": temperature})
        return values, protocol


TOY = ToyFamily()
