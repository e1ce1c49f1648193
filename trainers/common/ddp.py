"""Data-parallel training under ``torchrun``: each rank takes its slice of every global batch.

What DistributedDataParallel does, made explicit so that it also covers what a GAN step does and DDP's
reducer does not support (a discriminator called several times before one backward, the gradient penalty's
double backward, a discriminator frozen with ``requires_grad_(False)`` for the generator's update):

* the global batch (its indices, latents and labels, drawn exactly as a single process draws them) is cut
  into ``world_size`` equal contiguous slices (``rank_rows``);
* each rank's loss is the mean over its slice; ``average_gradients`` all-reduces the gradients (one flat
  float buffer) and divides by the world size, so every rank applies the gradient of the global mean;
* batch-norm layers normalise with the statistics of the *global* batch (``batch_moments``: ``SyncBatchNorm2d``
  for ``nn.BatchNorm2d``, and the flows' own batch norm and act-norm initialisation, with gloo on CPU as well as
  NCCL), so the forward pass equals the single-process one to rounding;
* a per-example random draw inside a model's loss (dequantisation noise, a VAE's ε, diffusion's t and ε,
  dropout masks) is the global batch's draw, of which the rank keeps its rows (``draw`` and ``dropout`` inside
  ``global_batch``), so every example gets the noise it gets in one process.

Why not ``torch.nn.parallel.DistributedDataParallel``: its reducer averages the same gradients, but the draws
and batch statistics above are what make the ranks' losses equal the single process's, and the explicit
all-reduce also covers what DDP's reducer does not (a GAN's several discriminator calls per backward, the
gradient penalty's double backward, a two-stage trainer whose parameters are frozen in turn).

Rank 0 alone validates, logs, checkpoints and writes records (``trainers.common.harness``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from geneval import distributed
from geneval.errors import GenevalInputError


def rank_rows(batch_size: int, ctx) -> slice:
    """This rank's rows of a global batch (``slice(None)`` for a single process); equal slices only."""
    if ctx is None:
        return slice(None)
    if batch_size % ctx.world_size:
        raise GenevalInputError(f"batch size {batch_size} is not divisible by {ctx.world_size} processes; expected a "
                                "global batch that splits into equal per-rank slices")
    per_rank = batch_size // ctx.world_size
    return slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)


# ---------------------------------------------------------------------------- per-example draws of a global batch

_STEP: list[tuple[int, slice]] = []  # (global batch size, this rank's rows) of the steps in progress


@contextlib.contextmanager
def global_batch(batch_size: int, ctx):
    """A training step on this rank's rows of a global batch of ``batch_size``: inside, ``draw`` and ``dropout``
    draw for the whole global batch and keep this rank's rows. Nothing changes for a single process."""
    if ctx is None:
        yield
        return
    _STEP.append((batch_size, rank_rows(batch_size, ctx)))
    try:
        yield
    finally:
        _STEP.pop()


def draw(fn: Callable[[int], torch.Tensor], num: int) -> torch.Tensor:
    """``fn(num)``: a random draw for ``num`` examples (first dimension), e.g. ``lambda n: torch.randn(n, D,
    generator=g)``. Inside ``global_batch`` it is ``fn(global batch)`` cut to this rank's rows: the same values the
    single process draws for these examples, and the generator advanced as far as the single process's."""
    if not _STEP:
        return fn(num)
    batch, rows = _STEP[-1]
    if len(range(batch)[rows]) != num:
        raise ValueError(f"a per-example draw of {num} rows inside a step on {len(range(batch)[rows])} rows of a "
                         f"global batch of {batch}")
    return fn(batch)[rows]


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout``; inside ``global_batch`` the mask is drawn (global RNG) for the global batch and cut to this
    rank's rows, which equals the single process's mask of these examples (``F.dropout`` of ones is its mask)."""
    if not (_STEP and training and p > 0):
        return F.dropout(x, p, training)
    mask = draw(lambda n: F.dropout(torch.ones((n, *x.shape[1:]), dtype=x.dtype, device=x.device), p, True), len(x))
    return x * mask


class Dropout(nn.Dropout):
    """``nn.Dropout`` through ``dropout`` (the same module otherwise: no parameters, the same state dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


# ---------------------------------------------------------------------------- batch statistics of a global batch

def batch_moments(x: torch.Tensor, dims, *, keepdim: bool = False, std: bool = False):
    """``(mean, var)`` (biased), or ``(mean, std)``, of ``x`` over ``dims`` — under torchrun over every rank's
    rows (two all-reduces: the sums, then the squared deviations from the global mean, so the variance has no
    cancellation), differentiable across ranks like ``torch.nn.SyncBatchNorm``. One process: ``x.mean``,
    ``x.var``/``x.std``, bit for bit what the layers computed before they could run distributed."""
    dims = tuple(d % x.dim() for d in dims)
    if distributed.current() is None:
        spread = x.std(dims, unbiased=False, keepdim=keepdim) if std else x.var(dims, unbiased=False, keepdim=keepdim)
        return x.mean(dims, keepdim=keepdim), spread
    mean, var, _ = _global_moments(x, dims)
    if not keepdim:
        kept = [size for d, size in enumerate(x.shape) if d not in dims]
        mean, var = mean.reshape(kept), var.reshape(kept)
    return mean, (var.sqrt() if std else var)


def _global_moments(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and biased variance over ``dims`` of every rank's ``x`` (kept dims), and the global count."""
    reduce = _all_reduce_autograd if torch.is_grad_enabled() else _all_reduced
    shape = [1 if d in dims else size for d, size in enumerate(x.shape)]
    local = x.new_tensor([float(math.prod(x.shape[d] for d in dims))])
    sums = reduce(torch.cat([x.sum(dims).reshape(-1), local]))
    n = sums[-1]
    mean = (sums[:-1] / n).reshape(shape)
    var = (reduce(((x - mean) ** 2).sum(dims).reshape(-1)) / n).reshape(shape)
    return mean, var, n


def _all_reduce_autograd(t: torch.Tensor) -> torch.Tensor:
    """The sum over ranks, whose gradient is the sum over ranks of the gradients (each rank's loss depends on every
    rank's rows through it)."""
    return _AllReduceSum.apply(t)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        return _all_reduced(t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _all_reduced(grad)


def average_gradients(params, ctx) -> None:
    """All-reduce (mean) the gradients of ``params`` across ranks, in one flat buffer."""
    if ctx is None:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(values: dict[str, float], ctx) -> dict[str, float]:
    """The global batch's mean of per-rank means (equal slices), for logging."""
    if ctx is None:
        return values
    names = sorted(values)
    t = torch.tensor([values[n] for n in names], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return {n: float(v) / ctx.world_size for n, v in zip(names, t.cpu().tolist())}


def gather_rows(t: torch.Tensor, ctx) -> torch.Tensor:
    """Every rank's ``t`` (equal shapes) concatenated in rank order: the global batch's rows, as one process has
    them (e.g. the encoder outputs a VQ-VAE's codebook update and restarts read). Not differentiable."""
    if ctx is None:
        return t
    parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the global batch (``batch_moments``'s sums,
    all-reduced with autograd, so gradients flow across ranks as in ``torch.nn.SyncBatchNorm``, which has no CPU kernel).
    ``sync=False`` (set on copies such as an EMA generator that one rank runs alone) behaves as BatchNorm2d;
    state dicts are BatchNorm2d's."""

    sync = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.sync and distributed.current() is not None):
            return super().forward(x)
        mean, var, n = _global_moments(x, (0, 2, 3))  # biased, as batch norm normalises
        c = self.num_features
        mean, var = mean.reshape(c), var.reshape(c)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        shape = (1, c, 1, 1)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def _all_reduced(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    dist.all_reduce(t)
    return t


def sync_batch_norms(module: nn.Module) -> nn.Module:
    """Turn every ``nn.BatchNorm2d`` of ``module`` into a ``SyncBatchNorm2d`` in place (same parameters and
    buffers)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
    return module


def unsync_batch_norms(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, SyncBatchNorm2d):
            m.sync = False


def check_replicas(module: nn.Module, ctx) -> None:
    """Raise on every rank unless every rank holds ``module``'s parameters and buffers bit for bit as rank 0 does
    (what rank 0 checkpoints must be what every rank trained): a float64 sum and sum of squares per tensor,
    gathered and compared. Averaged gradients, synced statistics and global-batch draws keep the ranks identical;
    a difference means one of them was missed."""
    if ctx is None:
        return
    prints = torch.stack([torch.stack([t.detach().double().sum(), t.detach().double().pow(2).sum()])
                          for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()])
    everyone = [torch.empty_like(prints) for _ in range(ctx.world_size)]
    dist.all_gather(everyone, prints)
    differ = [rank for rank, other in enumerate(everyone) if not torch.equal(other, everyone[0])]
    if differ:
        raise RuntimeError(f"after data-parallel training, the weights of rank(s) {differ} differ from rank 0's: "
                           "a gradient, batch statistic or random draw was not shared across ranks")


def broadcast_parameters(module: nn.Module, ctx) -> None:
    """Rank 0's parameters and buffers on every rank (seeded initialisation already agrees; this makes sure)."""
    if ctx is None:
        return
    for t in [*module.parameters(), *module.buffers()]:
        with torch.no_grad():
            dist.broadcast(t.data, src=0)
