"""Scoring throughput of ``geneval score`` in 1 process and sharded over 2 (``torchrun --nproc_per_node=2``).

    python benchmarks/bench_scale_out.py                                  # fashion-mnist test vs train, CPU
    python benchmarks/bench_scale_out.py --samples cifar10:test --ref cifar10:train --device cuda --num 10000

Each run is the real command line in a fresh process with one thread per process (``OMP_NUM_THREADS=1``), the
reference cache off, so both sides are extracted every time. The time is the record's ``wall_time_s`` (inside
``score``: reading, features, gathering, metrics; interpreter start-up and imports excluded); images/s counts
generated + reference images. Prints one line per process count, then the ratio, and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def run(processes: int, args, out: Path) -> dict:
    launcher = [sys.executable, "-m", "geneval"] if processes == 1 else \
        [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={processes}", "-m", "geneval"]
    command = [*launcher, "score", args.samples, "--ref", args.ref, "--metrics", args.metrics, "--no-cache", "-q",
               "--device", args.device, "--num-samples", str(args.num), "--num-ref", str(args.num_ref), "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(done.stderr)
    record = json.loads(out.read_text())
    images = record["provenance"]["samples"]["count"] + record["provenance"]["reference"]["count"]
    return {"processes": processes, "images": images, "seconds": record["provenance"]["wall_time_s"],
            "images_per_s": images / record["provenance"]["wall_time_s"],
            "values": {r["metric"]: r["value"] for r in record["results"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", default="fashion-mnist:test")
    parser.add_argument("--ref", default="fashion-mnist:train")
    parser.add_argument("--num", type=int, default=10_000)
    parser.add_argument("--num-ref", type=int, default=10_000)
    parser.add_argument("--metrics", default="fid,is,kid")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs per process count")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, 2):
            best = max((run(processes, args, Path(tmp) / f"r{processes}-{i}.json") for i in range(args.repeats)),
                       key=lambda r: r["images_per_s"])
            rows.append(best)
            print(f"{processes} process(es): {best['images']} images in {best['seconds']:.2f} s = "
                  f"{best['images_per_s']:.0f} images/s")
    ratio = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    print(f"2 processes / 1 process: {ratio:.2f}x")
    print(json.dumps({"device": args.device, "threads_per_process": args.threads, "rows": rows, "ratio": ratio}))


if __name__ == "__main__":
    main()
