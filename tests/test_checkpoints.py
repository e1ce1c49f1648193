"""The run folders committed under leaderboards/checkpoints/ (restored by scripts/restore_runs.sh): every file
matches its SHA256SUMS, each names a destination under runs/, and each checkpoint loads as plain data."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from geneval.weights import load_plain

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p for p in (ROOT / "leaderboards" / "checkpoints").iterdir() if p.is_dir())


def test_there_are_committed_run_folders():
    assert FOLDERS


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_committed_run_folder_is_intact(folder):
    sums = [line.split() for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip()]
    assert any(name == "checkpoint.pt" for _, name in sums)
    for digest, name in sums:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{folder.name}/{name}"
    destination = (folder / "DESTINATION").read_text().strip()
    assert destination.startswith("runs/") and ".." not in destination
    state = load_plain(folder / "checkpoint.pt")  # weights_only: refuses pickled code
    assert isinstance(state, dict) and state


def test_restore_refuses_a_tampered_folder(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "restore_runs.sh", repo / "scripts")
    folder = repo / "leaderboards" / "checkpoints" / "x"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"good")
    (folder / "DESTINATION").write_text("runs/x\n")
    (folder / "SHA256SUMS").write_text(f"{hashlib.sha256(b'good').hexdigest()}  checkpoint.pt\n")
    ok = subprocess.run(["bash", "scripts/restore_runs.sh"], cwd=repo, capture_output=True, text=True)
    assert ok.returncode == 0 and (repo / "runs" / "x" / "checkpoint.pt").read_bytes() == b"good"
    shutil.rmtree(repo / "runs")
    (folder / "checkpoint.pt").write_bytes(b"evil")
    bad = subprocess.run(["bash", "scripts/restore_runs.sh"], cwd=repo, capture_output=True, text=True)
    assert bad.returncode != 0 and "sha256 mismatch" in bad.stderr and not (repo / "runs").exists()


def test_keep_then_restore_round_trip(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for script in ("keep_run.sh", "restore_runs.sh"):
        shutil.copy(ROOT / "scripts" / script, repo / "scripts")
    run = repo / "runs" / "leaderboards" / "diffusion-x"
    (run / "evaluations").mkdir(parents=True)
    files = {"checkpoint.pt": b"weights", "config.json": b"{}", "evaluations/ab.json": b"[1]", "log.jsonl": b""}
    for name, data in files.items():
        (run / name).write_bytes(data)
    (run / "samples.npz").write_bytes(b"big")  # left out: samples are regenerated, not kept
    subprocess.run(["bash", "scripts/keep_run.sh", "runs/leaderboards/diffusion-x"], cwd=repo, check=True)
    kept = repo / "leaderboards" / "checkpoints" / "diffusion-x"
    assert (kept / "DESTINATION").read_text().strip() == "runs/leaderboards/diffusion-x"
    assert not (kept / "samples.npz").exists()
    shutil.rmtree(repo / "runs")
    subprocess.run(["bash", "scripts/restore_runs.sh"], cwd=repo, check=True)
    for name, data in files.items():
        assert (run / name).read_bytes() == data


def test_keep_refuses_a_file_too_large_for_git(tmp_path):
    """A 150 MB checkpoint (the `paper` MADE's, with Adam's moments) cannot be committed: keep_run says which file
    and its size, and writes nothing."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "keep_run.sh", repo / "scripts")
    run = repo / "runs" / "made"
    run.mkdir(parents=True)
    (run / "config.json").write_bytes(b"{}")
    with open(run / "checkpoint.pt", "wb") as big:  # sparse: 150 MB long, nothing written to disk
        big.truncate(150 * 1024 * 1024)
    result = subprocess.run(["bash", "scripts/keep_run.sh", "runs/made"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == ("keep_run: runs/made/checkpoint.pt is 150 MB, over the 95 MB a git host takes "
                                     "per file; not kept")
    assert not (repo / "leaderboards").exists()
