"""Devices and torch.distributed for scoring and training: shards, collectives, failures every rank sees.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), ``geneval score`` and ``geneval stats`` split
every source into contiguous index ranges, one per rank (rank ``r`` of ``W`` reads items
``[r·⌈N/W⌉, min((r+1)·⌈N/W⌉, N))``: the last shard is shorter, nothing is padded or read twice — unlike
``DistributedSampler``, which repeats items to even the shards out). The float64 Gaussian statistics are
merged with ``all_reduce`` sums; feature banks for KID and the k-NN metrics are gathered in index order;
rank 0 computes the metrics and writes the record and the cache.

A rank that fails (an unreadable shard, any exception inside ``agree``) tells the others at the next
agreement point: every rank then raises the same error, so ``torchrun`` exits non-zero with that message
instead of hanging in a collective. A rank that dies outright is caught by the process group's timeout
(``GENEVAL_DIST_TIMEOUT_S``, default 600) and by ``torchrun`` itself, which stops the other workers.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from geneval.errors import GenevalInputError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- devices

def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` → CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU; ``cpu``, ``cuda``,
    ``cuda:N`` as given (``cuda`` under torchrun → this rank's local GPU)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GenevalInputError(f"device {name!r} is invalid; expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise GenevalInputError(f"device {name!r} is not supported; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GenevalInputError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GenevalInputError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(device)
    return device


def set_precision(*, fast: bool = False) -> str:
    """TF32 off (the default) so GPU features agree with the CPU's to float32 rounding; ``fast`` allows TF32
    matmuls and convolutions. Returns the precision the record names: ``float32`` or ``tf32``."""
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast
    return "tf32" if fast else "float32"


@contextlib.contextmanager
def precision(*, fast: bool = False):
    """``set_precision`` for the duration of a block (a trainer's own settings come back after it scores)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        yield set_precision(fast=fast)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------- process group

@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True under a launcher (torchrun) that asked for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def refuse_launch(command: str) -> None:
    """For a trainer that runs in one process: a ``torchrun`` launch would have every rank train the same run into
    the same folder, so it fails at start with one line."""
    if launched():
        raise GenevalInputError(f"{command} runs in one process; start it without torchrun "
                                "(--device cuda trains on one GPU)")


FINISH_TIMEOUT = datetime.timedelta(hours=24)  # how long ranks that are done wait for the others (``shutdown``)
_FINISH_GROUP: list = []  # the group ``shutdown`` waits on, made by ``init``


def init(device: torch.device) -> Context | None:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA); None for a single process."""
    if not launched():
        return None
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get("GENEVAL_DIST_TIMEOUT_S", 600)))
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=timeout, **kwargs)
        # a second (CPU) group, only for ``shutdown``'s wait: it must not time out while rank 0 alone scores a run
        _FINISH_GROUP[:] = [dist.new_group(backend="gloo", timeout=FINISH_TIMEOUT)]
    return current()


_LOCAL = [0]  # > 0 inside ``single_process()``


def current() -> Context | None:
    """This process's rank and the world size in an initialised process group; None for one process (or inside
    ``single_process``)."""
    if not _LOCAL[0] and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Context(dist.get_rank(), dist.get_world_size())
    return None


@contextlib.contextmanager
def single_process():
    """Work that one rank does alone (a trainer's validation and final scoring on rank 0): ``current()`` is
    None inside, so ``score`` and synced batch norm use no collective."""
    _LOCAL[0] += 1
    try:
        yield
    finally:
        _LOCAL[0] -= 1


def shutdown(*, finished: bool = True) -> None:
    """Leave the process group. ``finished`` (this rank got to the end of the command without an error): first
    wait until every rank has got there, so that no rank tears down its connections while another is still working
    (CI once saw rank 0 abort inside gloo at the end of a 2-process run, "terminate called without an active
    exception", while rank 1 was still alive). The wait is a barrier on a group of its own, with a timeout of
    ``FINISH_TIMEOUT``: the other ranks wait there while rank 0 alone scores a trained run, which may outlast the
    main group's timeout. After an error (a rank may have stopped early) leave without waiting."""
    if dist.is_available() and dist.is_initialized():
        if finished and _FINISH_GROUP:
            dist.barrier(group=_FINISH_GROUP[0])
        _FINISH_GROUP.clear()
        dist.destroy_process_group()


def shard_range(count: int, *, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous items ``[start, stop)`` of ``rank``: ⌈count / world_size⌉ each, the last shard shorter (or
    empty); the shards tile ``range(count)`` exactly once."""
    per_rank = -(-count // world_size)
    start = min(rank * per_rank, count)
    return start, min(start + per_rank, count)


# ---------------------------------------------------------------------------------------------- failures

class RankFailed(GenevalInputError):
    """Raised on every rank when one of them failed; the message is the failing rank's own."""


def agree(ctx: Context | None, work, *args, **kwargs):
    """Run ``work(*args, **kwargs)`` on this rank, then learn whether every rank succeeded. If one failed,
    every rank raises its error (the first failing rank's message), so no rank waits in a later collective."""
    if ctx is None:
        return work(*args, **kwargs)
    result, message = None, None
    try:
        result = work(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 — reported to every rank below, then raised again here
        message = f"{type(error).__name__}: {error}" if not isinstance(error, GenevalInputError) else str(error)
        failed = error
    messages: list = [None] * ctx.world_size
    dist.all_gather_object(messages, message)
    failures = [(rank, m) for rank, m in enumerate(messages) if m is not None]
    if failures:
        rank, first = failures[0]
        if message is not None and rank == ctx.rank:
            raise RankFailed(f"rank {rank}: {first}") from failed
        raise RankFailed(f"rank {rank}: {first}")
    return result


# ---------------------------------------------------------------------------------------------- collectives

def _device_for_collectives() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_gaussian(stats, dim: int):
    """Merge every rank's ``GaussianStats`` exactly (Chan et al.): ``all_reduce`` sums of the counts and Σx give
    the global mean; each rank's scatter about it, ``S_r + n_r (m_r − m)(m_r − m)ᵀ``, then sums to the global
    scatter. float64 throughout; a rank with an empty shard contributes zeros."""
    from geneval.stats import GaussianStats

    device = _device_for_collectives()
    count = 0 if stats is None else stats.count
    mean_r = np.zeros(dim) if stats is None or stats.count == 0 else stats.mean
    scatter_r = np.zeros((dim, dim)) if stats is None or stats.count == 0 else stats.scatter
    sums = torch.from_numpy(np.concatenate([[float(count)], mean_r * count])).to(device)
    dist.all_reduce(sums)
    total = int(round(float(sums[0])))
    mean = sums[1:].cpu().numpy() / total
    delta = mean_r - mean
    scatter = torch.from_numpy(scatter_r + np.outer(delta, delta) * count if count else scatter_r).to(device)
    dist.all_reduce(scatter)
    return GaussianStats(total, mean, scatter.cpu().numpy())


def all_gather_rows(array: np.ndarray) -> np.ndarray:
    """Concatenate every rank's rows in rank order (variable lengths: padded for transport, then trimmed)."""
    device = _device_for_collectives()
    local = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    shapes = [None] * dist.get_world_size()
    dist.all_gather_object(shapes, tuple(local.shape))
    width = max(shapes, key=lambda s: s[0])[1:] if local.ndim > 1 else ()
    width = next((s[1:] for s in shapes if s[0] > 0), width)
    longest = max(s[0] for s in shapes)
    padded = torch.zeros((longest, *width), dtype=local.dtype, device=device)
    if len(local):
        padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in shapes]
    dist.all_gather(parts, padded)
    return np.concatenate([p[:s[0]].cpu().numpy() for p, s in zip(parts, shapes)])


def broadcast_object(ctx: Context | None, value):
    """Rank 0's ``value`` on every rank."""
    if ctx is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
