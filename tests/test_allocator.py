"""geneval/features/allocator.py: freed large CPU tensors are reused instead of page-faulted in again."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt tuning is glibc/Linux only")

# Allocate, touch and free a 200 MB tensor sixteen times; print the minor page faults of the last four. glibc
# settles its heap within the first rounds, as a feature extractor does over its first batches; how many rounds
# depends on where torch's small allocations land between the big blocks: measured here over 13 processes,
# reuse began by round 3 or round 8 (e.g. faulting rounds 1-2 and 4-7, the rest free), never later.
SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    from geneval.features.allocator import keep_freed_memory_for_reuse
    active = keep_freed_memory_for_reuse() if sys.argv[1] == "tuned" else False
    def touch():
        x = torch.empty(50_000_000)
        x.fill_(1.0)
        del x
    for _ in range(12):
        touch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        touch()
    print(active, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def faults(mode: str, **env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return out[0], int(out[1])


def test_tuned_process_reuses_freed_memory():
    active, tuned = faults("tuned")
    _, default = faults("default")
    assert active == "True"
    # Untuned: each 200 MB tensor is a fresh mmap, ~49k faults of 4 KiB pages, four times over.
    assert default > 100_000
    # Tuned: reused. Slack of two tensors' faults in case glibc needs longer still on another machine, still well
    # below the untuned four.
    assert tuned < 0.6 * default


def test_opt_out_leaves_allocator_alone():
    active, untouched = faults("tuned", GENEVAL_MALLOC_TUNING="0")
    assert active == "False"
    assert untouched > 100_000
