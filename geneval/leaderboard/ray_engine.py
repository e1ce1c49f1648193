"""``geneval leaderboard run --engine ray``: each run folder (its (row, seed) items) is one Ray task on an existing
cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the others).

A task runs ``runner.run_group`` — the function the local pool runs — in the driver's working directory, so
relative run folders and spec paths resolve as they do locally (on several machines that directory must be
the same shared path); the driver appends the record lines as tasks finish, exactly as the local pool does.
"""

from __future__ import annotations

import logging
import os

from geneval.errors import GenevalInputError
from geneval.optional import require

log = logging.getLogger(__name__)


def _task(cwd: str, threads: int, function, *item):
    """On a Ray worker: the driver's directory and thread count, then the local pool's own work function."""
    os.chdir(cwd)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    return function(*item)


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` address must accept a connection within seconds (``auto`` and ``ray://`` are Ray's to find)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise GenevalInputError(f"no Ray cluster at {address} ({error.strerror or error}); start one with "
                                "`ray start --head` or pass --ray-address HOST:PORT") from None


def run_on_ray(work: list[tuple], function, keep, *, address: str | None, cpus_per_run: int = 1, echo=print) -> None:
    """Submit ``function(*item)`` for every item of ``work`` to the cluster at ``address`` (None: ``RAY_ADDRESS``
    or the local one ``ray start`` wrote) and ``keep()`` each result as it finishes."""
    require("ray", what="geneval leaderboard run --engine ray")
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    _check_reachable(address)  # ray.init retries an unreachable address for minutes
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as error:
        raise GenevalInputError(f"no Ray cluster at {address} ({error}); start one with `ray start --head` "
                                "or pass --ray-address HOST:PORT") from None
    remote = ray.remote(num_cpus=cpus_per_run, max_retries=0)(_task)
    pending = [remote.remote(os.getcwd(), cpus_per_run, function, *item) for item in work]
    echo(f"ray: {len(pending)} run folder(s) submitted to {ray.get_runtime_context().gcs_address} "
         f"({cpus_per_run} CPU each)")
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            keep(ray.get(done[0]))
    finally:
        for ref in pending:  # a failed task stops the rest, as the local pool does
            ray.cancel(ref)
        ray.shutdown()
