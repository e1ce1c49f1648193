"""Likelihood of explicit-density models: nats per example and bits per dimension, computed once, correctly.

A likelihood model is anything with

    log_prob(x_uint8 [B, C, H, W], labels=None) -> float64 tensor [B]     (natural log, nats per example)
    kind: "exact" | "elbo" | "vlb" | "iwae-K"                            (what the number is)
    convention: DataConvention                                         (what data the number is about)
    conditional: bool                                                  (optional; log p(x | y) if True)

``evaluate(model, "fashion-mnist:test")`` streams the whole split through ``log_prob`` (every example exactly
once: pixel-cnn-pp's test loop drops the last partial batch yet divides by the full count) and returns the
mean negative log-likelihood in nats, bits/dim, their standard errors, the kind and the convention.

Continuous-density models (flows, diffusion's VLB) score 8-bit data through ``discrete_log_prob``: uniform
dequantisation turns a density ``p`` on ``[low, high]^D`` into a lower bound on (for a density constant on
each of the 256^D cells, exactly) the probability of the 8-bit image,

    log P(x) >= E_u[log p(low + (high − low)(x + u)/256)] + D·log((high − low)/256),

i.e. the familiar ``−D·log 256`` for data scaled to [0, 1] and ``−D·log 128`` for [−1, 1] (Theis et al. 2016,
"A note on the evaluation of generative models", §3.1; Dinh et al. 2017, RealNVP §4.1; Ho et al. 2020 use
the discretised decoder instead). Bits/dim is ``nats / (D · ln 2)`` with D = C·H·W.

Binarised data (binarised MNIST) is a different dataset: its convention says how it was binarised, static
(a fixed threshold) or dynamic (each pixel ~ Bernoulli(x/255)); a dynamically binarised *test* split is
drawn once, from a recorded seed, with example ``i`` of the split binarised by its own generator, so the
number does not depend on batch size or on the order of evaluation.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from geneval.errors import GenevalInputError

LN2 = math.log(2.0)
KINDS = ("exact", "elbo", "vlb", "iwae-K")  # "iwae-K" is spelled with the number: "iwae-1000"
_IWAE = re.compile(r"^iwae-([1-9][0-9]*)$")


# --------------------------------------------------------------------------------------------- conventions


@dataclass(frozen=True)
class DataConvention:
    """What the data handed to ``log_prob`` are.

    data: ``"8bit"`` (uint8 values 0..255, 256 levels) or ``"binary"`` (uint8 values 0/1).
    binarization: for binary data, ``"static"`` (pixel on iff x/255 > threshold) or ``"dynamic"`` (training
        draws fresh Bernoulli(x/255) pixels every time; evaluation uses one draw per example from ``seed``).
    """

    data: str = "8bit"
    binarization: str | None = None
    threshold: float | None = None
    seed: int | None = None

    def __post_init__(self):
        if self.data == "8bit":
            if (self.binarization, self.threshold, self.seed) != (None, None, None):
                raise GenevalInputError("8-bit data take no binarization, threshold or seed")
        elif self.data == "binary":
            if self.binarization == "static":
                if self.threshold is None or not 0.0 <= self.threshold < 1.0 or self.seed is not None:
                    raise GenevalInputError(
                        f"static binarisation needs a threshold in [0, 1) and no seed, got "
                        f"threshold={self.threshold!r} seed={self.seed!r}"
                    )
            elif self.binarization == "dynamic":
                if self.seed is None or self.threshold is not None:
                    raise GenevalInputError(
                        f"dynamic binarisation needs the seed of the evaluation draw and no threshold, got "
                        f"seed={self.seed!r} threshold={self.threshold!r}"
                    )
            else:
                raise GenevalInputError(
                    f"binarization {self.binarization!r} is not supported; expected 'static' or 'dynamic'"
                )
        else:
            raise GenevalInputError(f"data convention {self.data!r} is not supported; expected '8bit' or 'binary'")

    @property
    def levels(self) -> int:
        return 256 if self.data == "8bit" else 2

    def describe(self) -> str:
        if self.data == "8bit":
            return "8-bit (256 levels)"
        if self.binarization == "static":
            return f"binarised, static (x/255 > {self.threshold:g})"
        return f"binarised, dynamic (train: fresh Bernoulli(x/255) draws; test: one draw per example, seed {self.seed})"

    def as_dict(self) -> dict:
        return {**asdict(self), "levels": self.levels, "description": self.describe()}

    def prepare(self, x_uint8: torch.Tensor, *, first_index: int) -> torch.Tensor:
        """The split's uint8 images as the model sees them; example ``first_index + b`` of the split is
        binarised (dynamic) by its own generator, so a batch's result does not depend on its neighbours."""
        if self.data == "8bit":
            return x_uint8
        p = x_uint8.double() / 255.0
        if self.binarization == "static":
            return (p > self.threshold).to(torch.uint8)
        out = torch.empty_like(x_uint8)
        for b in range(len(x_uint8)):
            u = torch.rand(x_uint8.shape[1:], generator=example_generator(self.seed, first_index + b),
                           dtype=torch.float64)
            out[b] = (u < p[b]).to(torch.uint8)
        return out


EIGHT_BIT = DataConvention("8bit")


def binary_static(threshold: float = 0.5) -> DataConvention:
    return DataConvention("binary", "static", threshold=threshold)


def binary_dynamic(seed: int) -> DataConvention:
    return DataConvention("binary", "dynamic", seed=seed)


def example_generator(seed: int, index: int) -> torch.Generator:
    """The generator of example ``index`` of a split under ``seed`` (numpy's SeedSequence mixes the two)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1)
    return torch.Generator().manual_seed(int(state))


def check_kind(kind: str) -> str:
    """``exact``, ``elbo``, ``vlb`` or ``iwae-K`` with K ≥ 1 (``iwae-1`` is the ELBO's estimator, K=1)."""
    if kind in ("exact", "elbo", "vlb") or _IWAE.match(str(kind)):
        return kind
    raise GenevalInputError(f"likelihood kind {kind!r} is not supported; expected exact, elbo, vlb or iwae-K (e.g. iwae-1000)")


def is_bound(kind: str) -> bool:
    """True when the reported nats are an upper bound on the negative log-likelihood (not exact)."""
    return check_kind(kind) != "exact"


# --------------------------------------------------------------------------------------------- the protocol


@runtime_checkable
class LikelihoodModel(Protocol):
    kind: str
    convention: DataConvention

    def log_prob(self, x_uint8: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """float64 ``[B]``: log-probability (or its bound) of each example, in nats."""
        ...


# --------------------------------------------------------------------------------------------- arithmetic


def nats_to_bits_per_dim(nats: float | torch.Tensor | np.ndarray, *, num_dims: int):
    """Negative log-likelihood per example in nats → bits per dimension: ``nats / (D · ln 2)``."""
    if isinstance(num_dims, bool) or not isinstance(num_dims, (int, np.integer)) or num_dims < 1:
        raise GenevalInputError(f"num_dims {num_dims!r} is invalid; expected a positive integer (C·H·W)")
    return nats / (int(num_dims) * LN2)


def bits_per_dim_to_nats(bits_per_dim: float, *, num_dims: int) -> float:
    return bits_per_dim * int(num_dims) * LN2


def _value_range(value_range: str | tuple[float, float]) -> tuple[float, float]:
    from geneval.images import parse_value_range

    rng = parse_value_range(value_range)
    if rng is None or rng == (0.0, 255.0):
        raise GenevalInputError(f"value range {value_range!r}: a density must live on [0,1] or [-1,1]")
    return rng


def dequantize(x_uint8: torch.Tensor, *, value_range: str | tuple[float, float] = "0,1",
               noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantisation: ``low + (high − low)·(x + u)/256`` with ``u ~ U[0, 1)`` (float64).

    ``noise`` (same shape, values in [0, 1)) fixes u; otherwise it is drawn from ``generator``.
    """
    low, high = _value_range(value_range)
    if x_uint8.dtype != torch.uint8:
        raise GenevalInputError(f"dequantize: expected uint8 images, got {x_uint8.dtype}")
    u = noise if noise is not None else torch.rand(x_uint8.shape, generator=generator, dtype=torch.float64)
    return low + (high - low) * (x_uint8.double() + u.double()) / 256.0


def discrete_log_prob(log_density: torch.Tensor, *, num_dims: int,
                      value_range: str | tuple[float, float] = "0,1") -> torch.Tensor:
    """log P(8-bit image) from ``log p(y)``, the log-density of its dequantised copy ``y`` on ``[low, high]^D``.

    Adds the log-volume of one 8-bit cell, ``D·log((high − low)/256)``: the −D·log 256 term, plus the
    Jacobian ``D·log(high − low)`` of the scaling from [0, 1] (zero for [0, 1], D·log 2 for [−1, 1]). Exact
    for a density constant on each cell, a lower bound in expectation over u otherwise (Jensen).
    """
    low, high = _value_range(value_range)
    if isinstance(num_dims, bool) or not isinstance(num_dims, (int, np.integer)) or num_dims < 1:
        raise GenevalInputError(f"num_dims {num_dims!r} is invalid; expected a positive integer (C·H·W)")
    return log_density.double() + int(num_dims) * math.log((high - low) / 256.0)


# --------------------------------------------------------------------------------------------- evaluation


@dataclass
class LikelihoodResult:
    """Negative log-likelihood of a split: mean and standard error over examples (float64 sums)."""

    nats: float  # mean NLL per example, nats (an upper bound unless kind == "exact")
    nats_std_err: float  # standard error of the mean: sample std / sqrt(N)
    bits_per_dim: float
    bits_per_dim_std_err: float
    num_examples: int
    num_dims: int
    kind: str
    bound: bool
    conditional: bool
    convention: dict
    split: dict = field(default_factory=dict)
    wall_time_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        sign = "≤ " if self.bound else ""
        return (f"NLL {sign}{self.nats:.3f} ± {self.nats_std_err:.3f} nats = {sign}{self.bits_per_dim:.4f} ± "
                f"{self.bits_per_dim_std_err:.4f} bits/dim ({self.kind}, {self.num_examples} examples, "
                f"{self.convention['description']})")


def _mean_and_std_err(values: np.ndarray) -> tuple[float, float]:
    """Correctly rounded mean (``math.fsum``) and the standard error of the mean, both float64."""
    count = len(values)
    mean = math.fsum(values) / count
    if count < 2:
        return mean, float("nan")
    deviations = values - mean
    return mean, math.sqrt(math.fsum(deviations * deviations) / (count - 1) / count)


def evaluate(model: LikelihoodModel, split, *, batch_size: int = 500, num: int | None = None,
             progress: bool = False) -> LikelihoodResult:
    """Mean NLL of ``model`` on every example of ``split`` (a dataset name like ``"mnist:test"``, a folder,
    an array... anything ``geneval.sources.open_source`` opens), in nats and bits/dim.

    The split's uint8 images go through ``model.convention.prepare`` (binarisation, if any) and then
    ``model.log_prob``; every example is counted exactly once, whatever ``batch_size``.
    """
    import time

    from geneval.sources import open_source

    kind = check_kind(getattr(model, "kind", None))
    convention = getattr(model, "convention", None)
    if not isinstance(convention, DataConvention):
        raise GenevalInputError(f"{type(model).__name__}.convention must be a geneval.likelihood.DataConvention")
    conditional = bool(getattr(model, "conditional", False))
    started = time.perf_counter()
    source = open_source(split, num=num)
    if conditional and not source.has_labels:
        raise GenevalInputError(f"{source.name} has no labels; a class-conditional model needs them")
    per_example: list[np.ndarray] = []  # float64 NLLs, N·8 bytes: kept so the sum is correctly rounded
    num_dims = int(np.prod(source.image_shape))
    seen = 0
    iterator = source.batches(batch_size)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=-(-len(source) // batch_size), desc="log-likelihood", unit="batch")
    with torch.inference_mode():
        for images, labels in iterator:
            x = convention.prepare(images, first_index=seen)
            log_p = model.log_prob(x, labels if conditional else None)
            log_p = torch.as_tensor(log_p).detach().double().reshape(-1).cpu().numpy()
            if len(log_p) != len(images):
                raise GenevalInputError(
                    f"{type(model).__name__}.log_prob returned {len(log_p)} values for a batch of {len(images)}"
                )
            if not np.isfinite(log_p).all():
                raise GenevalInputError(
                    f"{type(model).__name__}.log_prob returned {int((~np.isfinite(log_p)).sum())} non-finite "
                    f"values in examples {seen}..{seen + len(images) - 1}"
                )
            per_example.append(-log_p)
            seen += len(images)
    if seen != len(source):  # cannot happen with a well-behaved Source; the denominator must be the count seen
        raise GenevalInputError(f"{source.name}: streamed {seen} examples, expected {len(source)}")
    nats, std_err = _mean_and_std_err(np.concatenate(per_example))
    return LikelihoodResult(
        nats=nats, nats_std_err=std_err,
        bits_per_dim=float(nats_to_bits_per_dim(nats, num_dims=num_dims)),
        bits_per_dim_std_err=float(nats_to_bits_per_dim(std_err, num_dims=num_dims)),
        num_examples=seen, num_dims=num_dims, kind=kind, bound=is_bound(kind), conditional=conditional,
        convention=convention.as_dict(),
        split={**source.describe(), "spec": split if isinstance(split, str) else None,
               "fingerprint": source.fingerprint()},
        wall_time_s=round(time.perf_counter() - started, 3),
    )


# --------------------------------------------------------------------------------------------- checkpoints

ENTRY_POINT_GROUP = "geneval.likelihood"


def load_model(checkpoint: str) -> LikelihoodModel:
    """A likelihood model from a trainer's checkpoint, rebuilt by the loader its family registers under the
    ``geneval.likelihood`` entry-point group (the checkpoint records its ``family``; geneval never imports a
    trainer by name)."""
    import os
    from importlib.metadata import distributions

    if not os.path.isfile(checkpoint):
        raise GenevalInputError(f"{checkpoint}: no such file; expected a trainer checkpoint (checkpoint.pt)")
    from geneval.weights import load_plain

    state = load_plain(checkpoint, what="checkpoint")  # weights_only: loading a checkpoint never runs code
    family = state.get("family") if isinstance(state, dict) else None
    if family is None:
        raise GenevalInputError(f"{checkpoint}: no 'family' recorded; expected a checkpoint written by a geneval trainer")
    # All installed distributions' entry points, not only the first "geneval" found on sys.path (a stale
    # geneval.egg-info in the working directory would otherwise hide the installed one's loaders).
    loaders = {}
    for dist in distributions():
        for entry in dist.entry_points:
            if entry.group == ENTRY_POINT_GROUP:
                loaders.setdefault(entry.name, entry)
    if family not in loaders:
        known = ", ".join(sorted(loaders)) or "none installed"
        raise GenevalInputError(f"{checkpoint}: no likelihood loader for family {family!r}; known: {known}")
    return loaders[family].load()(state)


__all__ = [
    "EIGHT_BIT",
    "KINDS",
    "DataConvention",
    "LikelihoodModel",
    "LikelihoodResult",
    "binary_dynamic",
    "binary_static",
    "bits_per_dim_to_nats",
    "check_kind",
    "dequantize",
    "discrete_log_prob",
    "evaluate",
    "example_generator",
    "is_bound",
    "load_model",
    "nats_to_bits_per_dim",
]
