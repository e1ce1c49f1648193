"""GAN training data-parallel under a real ``torchrun`` (2 processes, gloo, CPU): the same first-step losses
as one process with the same global batch, rank-0 records, and exact resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON = [sys.executable, "-m", "geneval"]
TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m", "geneval"]


def train(launcher, out: Path, *extra, preset="dcgan"):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GENEVAL_CACHE": str(out.parent / "cache"),
           "PYTHONFAULTHANDLER": "1", "GENEVAL_DIST_TIMEOUT_S": "120"}
    result = subprocess.run([*launcher, "train", "gan", "--preset", preset, "--budget", "smoke", "--device", "cpu",
                             "--no-progress", "--out", str(out), *extra], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def train_lines(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "wall_time_s"} for line in lines if line["kind"] == "train"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan-ddp")
    single, parallel = root / "single", root / "ddp"
    train(PYTHON, single)
    result = train(TORCHRUN, parallel)
    return single, parallel, result


def test_ddp_matches_one_process(runs):
    single, parallel, result = runs
    one, two = train_lines(single), train_lines(parallel)
    assert [line["step"] for line in one] == [line["step"] for line in two] == [1, 2, 3, 4]
    for name in ("loss_d", "loss_g"):
        assert two[0][name] == pytest.approx(one[0][name], rel=1e-6, abs=1e-6), name
        for a, b in zip(one, two):
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-4), (name, a["step"])
    record = json.loads((parallel / "record.json").read_text())
    assert record["compute"] == {"device": "cpu", "processes": 2, "global_batch_size": 16, "per_rank_batch_size": 8}
    assert record["batch_size"] == json.loads((single / "record.json").read_text())["batch_size"] == 16
    assert len(result.stdout.strip().splitlines()) == 1  # rank 0 alone prints the summary


def test_ddp_resumes_exactly(runs, tmp_path):
    _, parallel, _ = runs
    out = tmp_path / "resumed"
    stopped = train(TORCHRUN, out, "--stop-after-steps", "2")
    assert "stopped at step 2" in stopped.stderr
    train(TORCHRUN, out, "--resume")
    assert train_lines(out) == train_lines(parallel)
    metrics = lambda p: json.loads((p / "record.json").read_text())["metrics"]  # noqa: E731
    assert metrics(out) == metrics(parallel)


def test_ddp_gradient_penalty_first_step(tmp_path):
    train(PYTHON, tmp_path / "one", "--stop-after-steps", "1", preset="wgan-gp")
    train(TORCHRUN, tmp_path / "two", "--stop-after-steps", "1", preset="wgan-gp")
    one, two = train_lines(tmp_path / "one")[0], train_lines(tmp_path / "two")[0]
    for name in ("loss_d", "loss_g"):
        assert two[name] == pytest.approx(one[name], rel=1e-6, abs=1e-6), name
