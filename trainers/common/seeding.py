"""Seeds. Every random stream of a run is derived from the run's seed and a few integers naming the stream,
so that a run resumed from a checkpoint draws exactly what an uninterrupted run draws, and sample ``i`` of a
model depends only on its own seed, never on batch size or process count."""

from __future__ import annotations

import numpy as np
import torch


def derived_seed(*words: int) -> int:
    """A 63-bit seed for one stream (data order of epoch e, noise of step s, ...) from integers."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def generator(*words: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derived_seed(*words)``."""
    return torch.Generator().manual_seed(derived_seed(*words))


def per_sample_normal(num: int, shape: tuple[int, ...], *, seed: int, stream: int = 0) -> torch.Tensor:
    """``num`` standard-normal tensors of ``shape``; tensor ``i`` is drawn from its own generator seeded by
    ``(seed, stream, i)``, so it is the same whatever the batch it is drawn in. float32 ``[num, *shape]``."""
    return torch.stack([torch.randn(shape, generator=generator(seed, stream, i)) for i in range(num)]) if num else \
        torch.zeros((0, *shape))


def rng_state() -> dict:
    """The global RNG states a training step may touch (dropout, default-generator draws), as plain data that
    ``torch.load(weights_only=True)`` accepts: numpy's MT19937 state becomes its key as an int64 tensor plus ints.
    With CUDA in use, the current device's generator too (dropout on a GPU draws from it)."""
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"bit_generator": str(name), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # under torchrun: rank 0's state on every rank's own GPU
        torch.cuda.set_rng_state(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state((numpy["bit_generator"], numpy["key"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
