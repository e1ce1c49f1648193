"""Sharded scoring under a real ``torchrun`` (2 processes, gloo, CPU) and devices.

The sharded values must equal the single-process ones: statistics-based metrics to 1e-10 relative (float64
merges in another order), the k-NN metrics exactly; a rank that cannot read its shard makes both ranks exit
non-zero with its error, within a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geneval import distributed
from geneval.errors import GenevalInputError
from geneval.evaluate import score

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
METRICS = ("fid", "is", "kid", "precision", "recall", "density", "coverage")
EXACT = {"precision", "recall", "density", "coverage"}


def torchrun(args, tmp_path, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GENEVAL_CACHE": str(tmp_path / "cache"),
           "PYTHONFAULTHANDLER": "1", "GENEVAL_DIST_TIMEOUT_S": "60"}
    return subprocess.run(TORCHRUN + ["-m", "geneval", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=tmp_path)


def images(seed, n):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("count,world", [(301, 2), (10, 3), (5, 4), (0, 2), (8, 8)])
def test_shards_tile_the_items_once(count, world):
    ranges = [distributed.shard_range(count, rank=r, world_size=world) for r in range(world)]
    covered = [i for start, stop in ranges for i in range(start, stop)]
    assert covered == list(range(count))
    sizes = [stop - start for start, stop in ranges]
    assert sizes == sorted(sizes, reverse=True)  # only the last shards are short: nothing padded or repeated


def test_devices_resolve_here():
    assert distributed.resolve_device("cpu").type == "cpu"
    expected = "cuda" if __import__("torch").cuda.is_available() else "cpu"
    assert distributed.resolve_device("auto").type == expected
    with pytest.raises(GenevalInputError, match="tpu"):
        distributed.resolve_device("tpu")


def test_record_names_device_and_precision():
    record = score(images(0, 20), images(1, 20), metrics=("fid",), features="pixels", progress=False,
                   use_cache=False, device="auto")
    assert record.provenance["compute"]["precision"] == "float32"
    assert record.provenance["compute"]["processes"] == 1
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    fast = score(images(0, 20), images(1, 20), metrics=("fid",), features="pixels", progress=False, use_cache=False,
                 device="cpu", fast=True)
    assert fast.provenance["compute"]["precision"] == "tf32" and fast.provenance["options"]["fast"] is True
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before  # restored
    assert fast.results[0].value == record.results[0].value  # no TF32 on a CPU


def test_sharded_scoring_equals_one_process(tmp_path, monkeypatch):
    gen, ref = images(0, 301), images(1, 257)  # 301 = 151 + 150: an uneven last shard
    np.savez(tmp_path / "gen.npz", x=gen, labels=np.arange(301) % 10)
    np.savez(tmp_path / "ref.npz", x=ref)
    options = dict(metrics=METRICS, features="fashion-mnist-cnn", kid_subsets=10, progress=False)
    single = score(str(tmp_path / "gen.npz"), str(tmp_path / "ref.npz"), use_cache=False, **options)
    result = torchrun(["score", "gen.npz", "--ref", "ref.npz", "--features", "fashion-mnist-cnn", "--metrics",
                       ",".join(METRICS), "--kid-subsets", "10", "--device", "cpu", "--json", "-q", "-o", "out.json"],
                      tmp_path)
    assert result.returncode == 0, result.stderr
    sharded = json.loads((tmp_path / "out.json").read_text())
    assert json.loads(result.stdout) == sharded  # rank 0 alone prints the record
    values = {r["metric"]: r["value"] for r in sharded["results"]}
    for r in single.results:
        if r.metric in EXACT:
            assert values[r.metric] == r.value, r.metric
        else:
            assert values[r.metric] == pytest.approx(r.value, rel=1e-10, abs=1e-14), r.metric
    provenance = sharded["provenance"]
    assert provenance["compute"] == {"device": "cpu", "precision": "float32", "processes": 2}
    assert provenance["samples"]["fingerprint"] == single.provenance["samples"]["fingerprint"]
    assert provenance["samples"]["count"] == 301 and provenance["reference"]["count"] == 257

    # rank 0 wrote the reference cache: a sharded `stats` and a single process both read it
    again = torchrun(["stats", "ref.npz", "-o", "ref_stats.npz", "--features", "fashion-mnist-cnn", "-q"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(again.stdout.strip().splitlines()) == 1  # rank 0 alone prints
    assert json.loads(again.stdout)["reference_cache"].startswith("hit")
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    cached = score(str(tmp_path / "gen.npz"), str(tmp_path / "ref.npz"), **options)
    assert cached.provenance["reference"]["cache"].startswith("hit")
    assert [r.value for r in cached.results] == pytest.approx([r["value"] for r in sharded["results"]], rel=1e-10)
    from_stats = score(str(tmp_path / "gen.npz"), str(tmp_path / "ref_stats.npz"), use_cache=False,
                       **{**options, "metrics": ("fid",)})
    assert from_stats.results[0].value == pytest.approx(single.results[0].value, rel=1e-10)


def corrupt_pixel_data(path: Path) -> None:
    """Scramble a PNG's compressed pixels but keep every chunk CRC valid: only decoding finds it."""
    data, out, pos = path.read_bytes(), bytearray(), 8
    out += data[:8]
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], bytearray(data[pos + 8:pos + 8 + length])
        if kind == b"IDAT":
            body[2:] = bytes(b ^ 0x5A for b in body[2:])
        out += length.to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
        pos += 12 + length
    path.write_bytes(bytes(out))


def test_a_failing_rank_stops_every_rank(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    for i, image in enumerate(images(2, 41)):
        Image.fromarray(image[0]).save(folder / f"{i:04d}.png")
    corrupt_pixel_data(folder / "0035.png")  # in rank 1's shard (21..40); passes the open-time checks
    np.savez(tmp_path / "ref.npz", x=images(3, 30))
    result = torchrun(["score", "samples", "--ref", "ref.npz", "--features", "fashion-mnist-cnn", "--metrics",
                       "fid,kid", "--kid-subsets", "2", "--device", "cpu", "-q"], tmp_path, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: rank 1:")]
    assert len(errors) == 2, result.stderr  # both ranks exit with rank 1's error
    assert all("0035.png" in line for line in errors), errors
    assert result.stdout == ""


LEAVE_LATE = """
import json, os, sys, time
import torch
from geneval import distributed
ctx = distributed.init(torch.device("cpu"))
if ctx.rank == 0:
    time.sleep(float(sys.argv[1]))  # rank 0 alone scoring a trained run, while the others have finished
done = time.time()
distributed.shutdown(finished=True)
# One write(2) per line: print() may issue the text and its newline as two writes (unbuffered stdout), and the two
# ranks share the pipe, so their lines could interleave; a write under PIPE_BUF bytes is atomic.
os.write(1, (json.dumps({"rank": ctx.rank, "done": done, "left": time.time()}) + "\\n").encode())
"""


def test_ranks_leave_together_even_when_rank_0_finishes_after_the_group_timeout(tmp_path):
    """``shutdown(finished=True)`` waits for every rank before tearing the group down, with its own timeout: rank 1,
    done first, leaves only after rank 0 is done (8 s later), past the group's 3 s timeout, and without an error."""
    script = tmp_path / "leave_late.py"
    script.write_text(LEAVE_LATE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1",
           "GENEVAL_DIST_TIMEOUT_S": "3"}
    result = subprocess.run([*TORCHRUN, str(script), "8"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = {line["rank"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert sorted(ranks) == [0, 1]
    assert ranks[1]["done"] < ranks[0]["done"] - 5  # rank 1 was done first ...
    assert ranks[1]["left"] >= ranks[0]["done"]  # ... and left only once rank 0 was done too
