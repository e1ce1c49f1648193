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


def _check_fits(resources: list[tuple[int, float]], address: str) -> None:
    """Every task must fit on one live node: Ray would otherwise keep an unplaceable task pending forever."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    largest = (max((n.get("CPU", 0) for n in nodes), default=0), max((n.get("GPU", 0) for n in nodes), default=0))
    for cpus, gpus in sorted(set(resources), reverse=True):
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            raise GenevalInputError(
                f"no node of the Ray cluster at {address} has {cpus} CPU(s) and {gpus:g} GPU(s) for one run (its "
                f"largest: {largest[0]:g} CPUs, {largest[1]:g} GPUs); lower --ray-cpus-per-run / --ray-gpus-per-run "
                "or the spec's [resources], or add such a node")


def run_on_ray(work: list[tuple], function, keep, *, address: str | None, resources: list[tuple[int, float]],
               echo=print) -> None:
    """Submit ``function(*item)`` for every item of ``work`` to the cluster at ``address`` (None: ``RAY_ADDRESS``
    or the local one ``ray start`` wrote), item i reserving ``resources[i]`` = (CPUs, GPUs), and ``keep()`` each
    result as it finishes. A task with GPUs sees only its own (Ray sets ``CUDA_VISIBLE_DEVICES``), so
    ``--device auto`` trains there on CUDA."""
    require("ray", what="geneval leaderboard run --engine ray")
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    _check_reachable(address)  # ray.init retries an unreachable address for minutes
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as error:
        raise GenevalInputError(f"no Ray cluster at {address} ({error}); start one with `ray start --head` "
                                "or pass --ray-address HOST:PORT") from None
    try:
        _check_fits(resources, address)
    except GenevalInputError:
        ray.shutdown()
        raise
    remote = ray.remote(max_retries=0)(_task)
    pending = [remote.options(num_cpus=cpus, num_gpus=gpus).remote(os.getcwd(), cpus, function, *item)
               for item, (cpus, gpus) in zip(work, resources)]
    shown = ", ".join(f"{cpus} CPU" + (f" + {gpus:g} GPU" if gpus else "") for cpus, gpus in sorted(set(resources)))
    echo(f"ray: {len(pending)} run folder(s) submitted to {ray.get_runtime_context().gcs_address} ({shown} each)")
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            keep(ray.get(done[0]))
    finally:
        for ref in pending:  # a failed task stops the rest, as the local pool does
            ray.cancel(ref)
        ray.shutdown()
