"""Safety: no code runs from a file, and caches, records and checkpoints survive SIGKILL, concurrent writers and
a full disk.

- No pickles: the code never switches ``weights_only``/``allow_pickle`` the unsafe way; every ``np.load`` and
  ``torch.load`` in ``geneval/`` says so explicitly; ``geneval likelihood`` refuses a checkpoint carrying a
  pickle payload without running it.
- Kills: a writer process is SIGKILLed at random moments (``TRIALS`` times each) while it writes reference
  cache entries, appends leaderboard records and saves checkpoints; whatever is on disk afterwards is
  readable and complete, and the rerun gives the same numbers. A damaged cache entry is detected and
  recomputed. The real ``geneval score`` is also killed at random points of its run.
- Concurrency: two ``geneval score`` processes fill the same new cache entry at once.
- Full disk, simulated with RLIMIT_FSIZE (writes fail with EFBIG; Python ignores SIGXFSZ): one-line error,
  previous files intact, nothing half-written left.
"""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_forkserver import ForkServer
from geneval import cache
from geneval.stats import GaussianStats

REPO = Path(__file__).resolve().parents[1]
GENEVAL = str(Path(sys.executable).with_name("geneval"))
TRIALS = int(os.environ.get("GENEVAL_KILL_TRIALS", "25"))
FORK = multiprocessing.get_context("fork")
RNG = np.random.default_rng(20)


def cli_env(cache_dir: Path) -> dict:
    return {"GENEVAL_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "GENEVAL_INCEPTION_URL": "file:///nonexistent/geneval-test-no-network"}


# ---- no code from files --------------------------------------------------------------------------------------------


UNSAFE = [re.compile(r"weights_only\s*=\s*False"), re.compile(r"allow_pickle\s*=\s*True")]


def _python_files(*roots: str):
    for root in roots:
        yield from sorted((REPO / root).rglob("*.py"))


def test_no_unsafe_pickle_switch_in_geneval_or_trainers():
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in _python_files("geneval", "trainers")
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if any(pattern.search(line) for pattern in UNSAFE)]
    assert not found, "\n".join(found)


def _loads(tree: ast.AST):
    """(call, module name) for every ``np.load``/``numpy.load``/``torch.load`` call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy", "torch"):
            yield node, node.func.value.id


def test_every_load_in_geneval_refuses_pickles_explicitly():
    """Defaults change between versions (torch < 2.6 unpickled by default), so each call says it."""
    wrong = []
    for path in _python_files("geneval"):
        for call, module in _loads(ast.parse(path.read_text(encoding="utf-8"))):
            keyword, safe = ("weights_only", True) if module == "torch" else ("allow_pickle", False)
            given = {k.arg: k.value for k in call.keywords}
            if not (keyword in given and isinstance(given[keyword], ast.Constant) and given[keyword].value is safe):
                wrong.append(f"{path.relative_to(REPO)}:{call.lineno}: {module}.load without {keyword}={safe}")
    assert not wrong, "\n".join(wrong)


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_geneval_likelihood_refuses_a_checkpoint_with_a_pickle_payload(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "sent-to-me.pt"
    torch.save({"family": "pixelcnn", "model": {"w": torch.zeros(2)}, "payload": _RunsCode(marker)}, evil)
    result = subprocess.run([GENEVAL, "likelihood", str(evil)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **cli_env(tmp_path / "cache")})
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "sent-to-me.pt" in errors[0] and "pickled Python objects" in errors[0], errors[0]
    assert not marker.exists()  # refused, never run


def test_stats_file_with_a_pickle_payload_is_refused_without_running_it(tmp_path):
    from geneval.errors import GenevalInputError
    from geneval.stats_io import read_stats_npz

    marker = tmp_path / "code-ran"
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3), sigma=np.eye(3),
             geneval_provenance=np.array([_RunsCode(marker)], dtype=object))
    with pytest.raises(GenevalInputError, match="Python objects"):
        read_stats_npz(tmp_path / "stats.npz")
    assert not marker.exists()


# ---- kill-safety: helpers ------------------------------------------------------------------------------------------


def _kill_at_random(target, args, *, max_delay_s: float, rng) -> None:
    """Start ``target(ready, *args)`` in a forked process, wait until it signals ``ready``, SIGKILL it after a
    random delay in [0, max_delay_s]."""
    ready = FORK.Event()
    process = FORK.Process(target=target, args=(ready, *args), daemon=True)
    process.start()
    assert ready.wait(30), "the writer did not start"
    time.sleep(rng.uniform(0, max_delay_s))
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert process.exitcode == -signal.SIGKILL


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


# ---- kill-safety: the reference cache ------------------------------------------------------------------------------


FEATURES = RNG.standard_normal((6000, 256)).astype(np.float32)  # 6 MB: a write takes a while
LABELS = RNG.integers(0, 10, len(FEATURES))
STATS = GaussianStats.from_features(FEATURES.astype(np.float64))
PROVENANCE = {"extractor": "test", "weights_sha256": "none", "mode": "native", "count": len(FEATURES),
              "source_fingerprint": "kill-test", "layer": "embedding"}


def _cache_writer(ready, cache_dir):
    os.environ["GENEVAL_CACHE"] = str(cache_dir)
    ready.set()
    while True:
        cache.save_layer(PROVENANCE, FEATURES, STATS, LABELS)


def _assert_entry_complete(loaded) -> None:
    assert loaded is not None
    features, stats, labels = loaded
    np.testing.assert_array_equal(features, FEATURES)
    np.testing.assert_array_equal(labels, LABELS)
    assert stats.count == STATS.count and np.array_equal(stats.mean, STATS.mean)


def test_sigkill_during_cache_writes_leaves_no_readable_half_entry(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    entry = cache.entry_path(PROVENANCE)
    mid_write = complete = 0
    for trial in range(TRIALS):
        if entry.exists() and trial % 2:
            entry.unlink()  # half the trials start from no entry, half overwrite a complete one
        _kill_at_random(_cache_writer, (tmp_path / "cache",), max_delay_s=0.3, rng=rng)
        leftovers = _leftovers(entry.parent)
        mid_write += bool(leftovers)
        for leftover in leftovers:
            leftover.unlink()
        if entry.exists():
            complete += 1
            _assert_entry_complete(cache.load_layer(PROVENANCE))  # complete and exactly right, or absent
        assert [p.name for p in entry.parent.iterdir()] in ([], [entry.name])
    assert mid_write > 0, "no trial killed a writer in the middle of a write; the test proves nothing"
    cache.save_layer(PROVENANCE, FEATURES, STATS, LABELS)  # the rerun
    _assert_entry_complete(cache.load_layer(PROVENANCE))


def test_a_damaged_or_truncated_cache_entry_is_detected_and_never_read(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    path = cache.save_layer(PROVENANCE, FEATURES, STATS, LABELS)
    good = path.read_bytes()
    for cut in (0, 100, len(good) // 3, len(good) // 2, len(good) - 10):  # a copy that stopped early
        path.write_bytes(good[:cut])
        assert cache.load_layer(PROVENANCE) is None
    with h5py.File(path, "w") as handle:  # an entry that lacks a dataset
        handle.attrs["provenance"] = json.dumps({"format_version": cache.FORMAT_VERSION, **PROVENANCE}, sort_keys=True)
    assert cache.load_layer(PROVENANCE) is None
    path.write_bytes(good)
    with h5py.File(path, "r+") as handle:  # bits flipped inside the features: only the content hash sees it
        handle["features"][17, 3] = handle["features"][17, 3] + 1.0
    assert cache.load_layer(PROVENANCE) is None
    assert "damaged" in caplog.text and "unreadable" in caplog.text
    path.write_bytes(good)
    _assert_entry_complete(cache.load_layer(PROVENANCE))


def _score_inputs(folder: Path, num_ref: int = 20000) -> list:
    rng = np.random.default_rng(3)
    np.savez(folder / "gen.npz", x=rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8))
    np.savez(folder / "ref.npz", x=rng.integers(0, 256, (num_ref, 8, 8, 3), dtype=np.uint8))
    return ["score", "gen.npz", "--ref", "ref.npz", "--features", "pixels", "--metrics", "fid,kid",
            "--kid-subsets", "3", "--json", "-q"]


def _values(stdout: str) -> dict:
    return {r["metric"]: r["value"] for r in json.loads(stdout)["results"]}


def _valid_entries(cache_dir: Path) -> list[Path]:
    """Every ``*.h5`` entry under ``cache_dir``, each checked against the sha256 of its content."""
    entries = sorted((cache_dir / "features").glob("*.h5")) if (cache_dir / "features").is_dir() else []
    for path in entries:
        with h5py.File(path, "r") as handle:
            labels = handle["labels"][()] if "labels" in handle else None
            digest = cache.content_sha256(handle["features"][()], int(handle["count"][()]), handle["mean"][()],
                                          handle["scatter"][()], labels)
            assert digest == handle.attrs["content_sha256"], path
    return entries


def test_sigkill_at_random_points_of_geneval_score_then_the_rerun_gives_the_same_numbers(tmp_path):
    rng = np.random.default_rng(2)
    args = _score_inputs(tmp_path)
    with ForkServer() as server:
        baseline, _ = server.run(args, cwd=tmp_path, env=cli_env(tmp_path / "baseline-cache"))
        assert baseline.returncode == 0, baseline.stderr
        started = time.monotonic()
        server.run(args, cwd=tmp_path, env=cli_env(tmp_path / "baseline-cache"))
        hit_s = time.monotonic() - started
        started = time.monotonic()
        server.run(args, cwd=tmp_path, env=cli_env(tmp_path / "timing-cache"))
        miss_s = time.monotonic() - started
        expected = _values(baseline.stdout)
        killed_mid_write = 0
        for trial in range(TRIALS // 2 + 1):  # each trial is a kill and a rerun
            cache_dir = tmp_path / f"cache-{trial}"
            result, status = server.run(args, cwd=tmp_path, env=cli_env(cache_dir),
                                        kill_after_s=rng.uniform(0.2 * miss_s, miss_s))
            if (cache_dir / "features").is_dir():
                killed_mid_write += bool(_leftovers(cache_dir / "features"))
            _valid_entries(cache_dir)  # whatever is there is complete
            rerun, _ = server.run(args, cwd=tmp_path, env=cli_env(cache_dir))
            assert rerun.returncode == 0, rerun.stderr
            assert _values(rerun.stdout) == expected
            assert len(_valid_entries(cache_dir)) == 1
    print(f"score: {miss_s:.2f} s on a miss, {hit_s:.2f} s on a hit; {killed_mid_write} kills hit a cache write")


# ---- kill-safety: leaderboard records ------------------------------------------------------------------------------


def _record(i: int) -> dict:
    return {"row": f"row-{i % 7}", "seed": i, "config_hash": f"{i:08x}", "metrics": {"fid": i / 3},
            "provenance": {"notes": "x" * 1500}}  # about the size of a real record line


def _record_appender(ready, path, start):
    from geneval.leaderboard.records import append_line

    ready.set()
    i = start
    while True:
        append_line(path, _record(i))
        i += 1


def _kill_appenders(tmp_path: Path, *, check_rerun: bool) -> None:
    from geneval.leaderboard.records import append_line, read_lines

    rng = np.random.default_rng(4)
    kills: dict[str, int] = {}
    for trial in range(TRIALS):
        path = tmp_path / "records" / f"table-{trial % 5}.jsonl"  # a few files, each appended to after kills
        _kill_at_random(_record_appender, (path, trial * 1_000_000), max_delay_s=0.02, rng=rng)
        kills[path.name] = kills.get(path.name, 0) + 1
        lines = read_lines(path)  # never raises: an incomplete line is skipped
        assert all(set(line) == set(_record(0)) for line in lines)
        broken = 0
        for text in path.read_bytes().split(b"\n"):
            try:
                json.loads(text) if text else None
            except ValueError:
                broken += 1
        assert broken <= kills[path.name], "more broken lines than kills: a kill damaged an earlier line"
        rerun = _record(10**9 + trial)
        append_line(path, rerun)  # the next run appends after whatever the killed one left
        if check_rerun:
            assert rerun in read_lines(path), "the line appended after a kill was lost"
        assert len(read_lines(path)) >= len(lines) - 1
    assert not list((tmp_path / "records").glob(".*.tmp"))


def test_sigkill_during_record_appends_leaves_readable_records(tmp_path):
    _kill_appenders(tmp_path, check_rerun=False)


def test_the_record_appended_after_a_kill_is_never_lost(tmp_path):
    _kill_appenders(tmp_path, check_rerun=True)


# ---- kill-safety: checkpoints --------------------------------------------------------------------------------------


STATES = [{"step": step, "weights": torch.full((1_000_000,), float(step)), "config": {"lr": 1e-3, "name": f"s{step}"}}
          for step in range(3)]


def _checkpoint_saver(ready, path):
    from trainers.common.checkpoint import save_checkpoint

    ready.set()
    i = 0
    while True:
        save_checkpoint(path, STATES[i % len(STATES)])
        i += 1


def _assert_one_of_the_states(state: dict) -> None:
    step = state["step"]
    assert state["config"] == STATES[step]["config"]
    assert torch.equal(state["weights"], STATES[step]["weights"])


def test_sigkill_during_checkpoint_saves_leaves_a_loadable_checkpoint(tmp_path):
    from trainers.common.checkpoint import load_checkpoint, save_checkpoint

    rng = np.random.default_rng(5)
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, STATES[0])
    mid_write = 0
    for trial in range(TRIALS):
        _kill_at_random(_checkpoint_saver, (path,), max_delay_s=0.3, rng=rng)
        _assert_one_of_the_states(load_checkpoint(path))
        leftovers = _leftovers(path.parent)
        mid_write += bool(leftovers)
        for leftover in leftovers:  # what a killed trainer leaves; never read
            leftover.unlink()
    assert mid_write > 0, "no trial killed a save in the middle; the test proves nothing"
    save_checkpoint(path, STATES[2])  # the rerun
    _assert_one_of_the_states(load_checkpoint(path))
    assert load_checkpoint(path)["step"] == 2


# ---- concurrency ---------------------------------------------------------------------------------------------------


def test_two_scores_fill_the_same_new_cache_entry_at_once(tmp_path):
    args = _score_inputs(tmp_path)
    cache_dir = tmp_path / "cache"
    env = {**os.environ, **cli_env(cache_dir)}
    processes = [subprocess.Popen([GENEVAL, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    assert _values(outputs[0][0]) == _values(outputs[1][0])
    assert len(_valid_entries(cache_dir)) == 1
    assert not _leftovers(cache_dir / "features")


def test_several_rounds_of_concurrent_scores_through_two_fork_servers(tmp_path):
    args = _score_inputs(tmp_path, num_ref=8000)
    with ForkServer() as first, ForkServer() as second:
        expected = None
        for round_ in range(4):
            cache_dir = tmp_path / f"cache-{round_}"
            results = [None, None]

            def go(index, server):
                results[index] = server.run(args, cwd=tmp_path, env=cli_env(cache_dir))[0]
            threads = [threading.Thread(target=go, args=(i, s)) for i, s in enumerate((first, second))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
            values = [_values(r.stdout) for r in results]
            assert values[0] == values[1] == (expected or values[0])
            expected = values[0]
            assert len(_valid_entries(cache_dir)) == 1 and not _leftovers(cache_dir / "features")


def _concurrent_writer(ready, cache_dir):
    _cache_writer(ready, cache_dir)


def test_concurrent_cache_writers_and_readers_never_see_a_wrong_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    ready = [FORK.Event() for _ in range(3)]
    writers = [FORK.Process(target=_concurrent_writer, args=(r, tmp_path / "cache"), daemon=True) for r in ready]
    for writer in writers:
        writer.start()
    try:
        deadline, reads = time.monotonic() + 3, 0
        while time.monotonic() < deadline:
            loaded = cache.load_layer(PROVENANCE)
            if loaded is not None:
                _assert_entry_complete(loaded)
                reads += 1
        assert reads > 0
    finally:
        for writer in writers:
            os.kill(writer.pid, signal.SIGKILL)
            writer.join(30)


# ---- a full disk (simulated with RLIMIT_FSIZE) ---------------------------------------------------------------------


def _limit_file_size(limit_bytes: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def _run_limited(args, cwd, cache_dir, limit_bytes):
    return subprocess.run([GENEVAL, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **cli_env(cache_dir)}, preexec_fn=_limit_file_size(limit_bytes))


def _all_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_full_disk_fails_in_one_line_and_keeps_the_previous_files(tmp_path):
    args = _score_inputs(tmp_path, num_ref=2000)
    (tmp_path / "record.json").write_text("previous record\n")
    before = _all_files(tmp_path)
    result = _run_limited([*args, "-o", "record.json"], tmp_path, tmp_path / "cache", limit_bytes=1024)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr and "HDF5-DIAG" not in result.stderr, result.stderr
    assert "record.json" in errors[0] and "File too large" in errors[0] and len(errors[0]) <= 200, errors[0]
    assert "could not write the reference cache" in result.stderr  # the cache is a warning, not the error
    assert _values(result.stdout)  # the result was still shown
    assert (tmp_path / "record.json").read_text() == "previous record\n"
    assert _all_files(tmp_path) == before  # no temporary file, no half cache entry

    result = _run_limited(["stats", "ref.npz", "-o", "ref_stats.npz", "--features", "pixels", "--no-cache", "-q"],
                          tmp_path, tmp_path / "cache", limit_bytes=1024)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Error: cannot write ref_stats.npz (File too large)" in result.stderr
    assert _all_files(tmp_path) == before


def test_a_cache_that_cannot_be_written_is_a_warning_and_the_score_is_unchanged(tmp_path):
    args = _score_inputs(tmp_path, num_ref=2000)
    full = _run_limited(args, tmp_path, tmp_path / "cache-full", limit_bytes=64 * 1024)  # the entry needs ~1.6 MB
    free = _run_limited(args, tmp_path, tmp_path / "cache-free", limit_bytes=resource.RLIM_INFINITY)
    assert full.returncode == 0 and free.returncode == 0, full.stderr + free.stderr
    assert "Traceback" not in full.stderr and "HDF5-DIAG" not in full.stderr, full.stderr
    warnings = [line for line in full.stderr.splitlines() if "could not write the reference cache" in line]
    assert len(warnings) == 1 and "File too large" in warnings[0], full.stderr
    assert _values(full.stdout) == _values(free.stdout)
    assert not _all_files(tmp_path / "cache-full") if (tmp_path / "cache-full").exists() else True
    assert len(_valid_entries(tmp_path / "cache-free")) == 1
