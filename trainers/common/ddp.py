"""Data-parallel training under ``torchrun``: each rank takes its slice of every global batch.

What DistributedDataParallel does, made explicit so that it also covers what a GAN step does and DDP's
reducer does not support (a discriminator called several times before one backward, the gradient penalty's
double backward, a discriminator frozen with ``requires_grad_(False)`` for the generator's update):

* the global batch (its indices, latents and labels, drawn exactly as a single process draws them) is cut
  into ``world_size`` equal contiguous slices (``rank_rows``);
* each rank's loss is the mean over its slice; ``average_gradients`` all-reduces the gradients (one flat
  float buffer) and divides by the world size, so every rank applies the gradient of the global mean;
* batch-norm layers normalise with the statistics of the *global* batch (``SyncBatchNorm2d``, which works
  with gloo on CPU as well as NCCL), so the forward pass equals the single-process one to rounding.

Rank 0 alone validates, logs, checkpoints and writes records (``trainers.common.harness``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from geneval import distributed


def rank_rows(batch_size: int, ctx) -> slice:
    """This rank's rows of a global batch (``slice(None)`` for a single process); equal slices only."""
    if ctx is None:
        return slice(None)
    if batch_size % ctx.world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by {ctx.world_size} processes; expected a "
                         "global batch that splits into equal per-rank slices")
    per_rank = batch_size // ctx.world_size
    return slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)


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


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the global batch (sums all-reduced with
    autograd, so gradients flow across ranks as in ``torch.nn.SyncBatchNorm``, which has no CPU kernel).
    ``sync=False`` (set on copies such as an EMA generator that one rank runs alone) behaves as BatchNorm2d;
    state dicts are BatchNorm2d's."""

    sync = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.sync and distributed.current() is not None):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        count = torch.tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])
        stats = all_reduce(stats) if torch.is_grad_enabled() else _all_reduced(stats)
        c = self.num_features
        n = stats[2 * c]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean  # biased, as batch norm normalises
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


def broadcast_parameters(module: nn.Module, ctx) -> None:
    """Rank 0's parameters and buffers on every rank (seeded initialisation already agrees; this makes sure)."""
    if ctx is None:
        return
    for t in [*module.parameters(), *module.buffers()]:
        with torch.no_grad():
            dist.broadcast(t.data, src=0)
