"""Keep freed activation memory in the process instead of handing it back to the kernel after every layer.

A forward pass of the FID Inception at batch 32 allocates and frees activations of 50–180 MB per layer.
glibc serves blocks above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns them with
``munmap`` on free, so every layer of every batch page-faults its output into existence again and the kernel
zeroes it: on the 2-core reference machine about a million minor faults per 128 images, ~20% of the wall
time spent in the kernel. PyTorch has no caching allocator on CPU; the usual advice (Intel's and PyTorch's
CPU tuning guides) is to preload jemalloc or tcmalloc. This module does the glibc equivalent from inside
the process with ``mallopt``: serve large blocks from the heap, never trim it, and grow it in large steps.

Effect: the FID Inception on CPU ~31 → ~40 images/s (``benchmarks/bench_inception_throughput.py``); the
domain classifiers +27% (fashion-mnist-cnn) and +42% (cifar10-cnn) at batch 500 on one thread.
Numbers are unchanged — only where memory comes from. The cost: the process keeps its peak heap resident
until it exits (FID Inception, batch 32: peak RSS 1.21 → 1.43 GB). ``GENEVAL_MALLOC_TUNING=0`` leaves the allocator alone. Non-glibc platforms are untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_SETTINGS = {
    _M_MMAP_THRESHOLD: 1 << 30,  # blocks below 1 GiB come from the heap, so freed ones are reused
    _M_TRIM_THRESHOLD: 2**31 - 1,  # keep up to 2 GiB of free heap top instead of returning it to the kernel
    _M_TOP_PAD: 512 << 20,  # grow the heap 512 MiB at a time (untouched pages cost nothing)
}

_state: dict[str, bool] = {}


def keep_freed_memory_for_reuse() -> bool:
    """Tune glibc malloc once per process for repeated large CPU tensors; True when the tuning is active."""
    if "active" not in _state:
        _state["active"] = _apply()
    return _state["active"]


def _apply() -> bool:
    if os.environ.get("GENEVAL_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS.items())
