"""``geneval leaderboard run --engine ray`` on a real local Ray cluster (``ray start --head``, started and
stopped by this test): the same records (timings aside) and the same table as the local pool."""

from __future__ import annotations

import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geneval.errors import GenevalInputError

ray = pytest.importorskip("ray", reason="pip install 'geneval[ray]'")

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "leaderboards" / "specs" / "smoke.toml"
BIN = Path(sys.executable).parent
TIMINGS = {"wall_time_s", "eval_wall_time_s", "created", "sampling.s_per_1000"}  # measured: differ run to run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(tmp: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "GENEVAL_CACHE": str(tmp / "cache")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster of 2 CPUs; stopped (its process group, which this fixture started) at the end."""
    tmp = tmp_path_factory.mktemp("ray")
    port = free_port()
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", "--disable-usage-stats"], env=env(tmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while subprocess.run([str(BIN / "ray"), "status", f"--address={address}"], env=env(tmp),
                             capture_output=True).returncode != 0:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(2)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # drains, then stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def leaderboard(cwd: Path, *extra) -> subprocess.CompletedProcess:
    cwd.mkdir()
    done = subprocess.run([sys.executable, "-m", "geneval", "leaderboard", "run", str(SMOKE), "--runs-dir", "runs",
                           "--records-dir", "records", "--tables-dir", "tables", "--device", "cpu", *extra],
                          cwd=cwd, env=env(cwd.parent), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def records(cwd: Path) -> dict:
    lines = [json.loads(line) for line in (cwd / "records" / "smoke.jsonl").read_text().splitlines()]
    return {(line["row"], line["seed"]): without_timings(line) for line in lines}


def test_ray_engine_records_what_the_local_pool_records(cluster, tmp_path):
    local = leaderboard(tmp_path / "local")
    on_ray = leaderboard(tmp_path / "ray", "--engine", "ray", "--ray-address", cluster, "--ray-cpus-per-run", "1")
    assert "ray: 4 run folder(s) submitted" in on_ray.stderr
    assert records(tmp_path / "ray") == records(tmp_path / "local")
    assert len(records(tmp_path / "ray")) == 4
    for name in ("smoke.md", "smoke.csv"):
        assert (tmp_path / "ray" / "tables" / name).read_text() == (tmp_path / "local" / "tables" / name).read_text()
    assert local.stdout.splitlines() == on_ray.stdout.splitlines()  # the table files it wrote


def test_ray_engine_without_a_cluster_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "geneval", "leaderboard", "run", str(SMOKE), "--engine", "ray",
                           "--ray-address", f"127.0.0.1:{free_port()}", "--runs-dir", str(tmp_path / "runs"),
                           "--records-dir", str(tmp_path / "records")], env=env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Error: no Ray cluster at" in done.stderr and "Traceback" not in done.stderr


def spec_with_resources(tmp_path: Path, resources: str) -> Path:
    """The smoke spec with a ``[resources]`` section (before its first row)."""
    text = SMOKE.read_text()
    first_row = text.index("[[rows]]")
    path = tmp_path / "smoke_resources.toml"
    path.write_text(text[:first_row] + f"[resources]\n{resources}\n\n" + text[first_row:])
    return path


@pytest.mark.parametrize("how", ["command line", "spec"])
def test_a_run_no_node_can_hold_fails_before_submitting(cluster, tmp_path, how):
    """The cluster has 2 CPUs and no GPU: a run asking for a GPU (or 3 CPUs) would wait in Ray forever; it is one
    line naming what was asked and what the largest node has, and nothing is trained or recorded."""
    if how == "spec":
        spec, extra = spec_with_resources(tmp_path, "cpus_per_run = 3"), []
        asked = "3 CPU(s) and 0 GPU(s)"
    else:
        spec, extra = SMOKE, ["--ray-gpus-per-run", "0.5"]
        asked = "1 CPU(s) and 0.5 GPU(s)"
    done = subprocess.run([sys.executable, "-m", "geneval", "leaderboard", "run", str(spec), "--engine", "ray",
                           "--ray-address", cluster, "--runs-dir", str(tmp_path / "runs"),
                           "--records-dir", str(tmp_path / "records"), *extra],
                          env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"no node of the Ray cluster at {cluster} has {asked} for one run (its largest: 2 CPUs, 0 GPUs)" \
        in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "records").exists()


def test_resources_are_checked_with_the_spec(tmp_path):
    from geneval.leaderboard.spec import load_spec

    assert load_spec(spec_with_resources(tmp_path, "cpus_per_run = 2\ngpus_per_run = 0.5")).resources == \
        {"cpus_per_run": 2, "gpus_per_run": 0.5}
    assert load_spec(SMOKE).resources == {}
    for bad, message in (("cpus_per_run = 0", "cpus_per_run = 0: expected a whole number ≥ 1"),
                         ("gpus_per_run = -1", "gpus_per_run = -1: expected a number ≥ 0"),
                         ("gpus = 1", "unknown key 'gpus' in [resources]")):
        with pytest.raises(GenevalInputError, match=re.escape(message)):
            load_spec(spec_with_resources(tmp_path, bad))


def test_ray_options_without_the_ray_engine_are_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "geneval", "leaderboard", "run", str(SMOKE), "--ray-gpus-per-run",
                           "1", "--runs-dir", str(tmp_path / "runs")], env=env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "need --engine ray" in done.stderr
    assert not (tmp_path / "runs").exists()
