"""Peak memory of the post-FID metrics that touch pairwise distances or feature banks, at N generated × N reference.

    python benchmarks/bench_post_fid_memory.py          # N = 50,000 per side, d = 2048 (~15 min of CPU, 1 thread)
    python benchmarks/bench_post_fid_memory.py --n 5000 --metrics rarity,prd   # quicker

Each metric runs in its own subprocess on the synthetic float32 features of bench_prdc_memory.py (non-negative like
Inception pool3, generated chunk by chunk); the parent reads the child's peak RSS from ``os.wait4``. The row
``banks`` is the floor: Python, geneval's imports (NumPy, SciPy, torch) and the two float32 banks (2 × N × d × 4
bytes), nothing computed.
FLD also reads ``--heldout-n`` held-out features (its test set) and uses at most 10,000 generated samples.

The shapes are the real ones; to keep the run short, two iterative metrics do less work than a real call, which
changes their time and value but not their peak (every run of PRD's k-means and every epoch of FLD's fit allocate
the same blocks again): PRD runs 1 k-means (``--prd-runs``; 10 by default in geneval) and FLD's two fits stop
after 1 epoch (``--fld-epochs``; up to 50). Vendi's polynomial kernel needs an n×n matrix: it runs on the largest
n it accepts (``geneval.metrics.vendi.POLYNOMIAL_MAX_SAMPLES``), not on N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prdc_memory import DIM, features  # noqa: E402

METRICS = ("banks", "rarity", "authenticity", "vendi", "vendi-polynomial", "prd", "fld")
LIMIT_GB = 2.0


def worker(metric: str, args: argparse.Namespace) -> dict:
    gen, ref = features(args.n, 1, dim=args.dim), features(args.n, 2, dim=args.dim)
    started = time.perf_counter()
    shapes = f"{args.n} × {args.n} × {args.dim}"
    if metric == "banks":
        import geneval.metrics  # noqa: F401  (what every metric imports: NumPy, SciPy, torch)

        value = None
    elif metric == "rarity":
        from geneval.metrics.rarity import rarity

        value = rarity(gen, ref).mean
    elif metric == "authenticity":
        from geneval.metrics.authenticity import authenticity

        value = authenticity(gen, ref).fraction
    elif metric == "vendi":
        from geneval.metrics.vendi import vendi

        value, shapes = vendi(gen), f"{args.n} × {args.dim} (cosine)"
    elif metric == "vendi-polynomial":
        from geneval.metrics.vendi import POLYNOMIAL_MAX_SAMPLES, vendi

        n = min(args.n, POLYNOMIAL_MAX_SAMPLES)
        value, shapes = vendi(gen[:n], kernel="polynomial"), f"{n} × {args.dim} (polynomial, n×n)"
    elif metric == "prd":
        from geneval.metrics.prd import prd

        curve = prd(gen, ref, num_runs=args.prd_runs)
        value, shapes = [curve.f_beta, curve.f_beta_inv], shapes + f", {args.prd_runs} k-means run(s)"
    elif metric == "fld":
        import importlib

        fld_module = importlib.import_module("geneval.metrics.fld")  # the module (geneval.metrics.fld is the function)
        fld_module.NUM_EPOCHS = args.fld_epochs
        test = features(args.heldout_n, 3, dim=args.dim)
        result = fld_module.fld(gen, ref, test)
        value = result.fld
        shapes = (f"{args.n} gen ({result.num_gen_used} used) × {args.n} train × {args.heldout_n} held-out × "
                  f"{args.dim}, {args.fld_epochs} epoch(s), cache {fld_module.DEFAULT_CACHE_MB} MiB")
    else:
        raise SystemExit(f"unknown metric {metric}")
    return {"metric": metric, "shapes": shapes, "seconds": round(time.perf_counter() - started, 1), "value": value}


def run(metric: str, args: argparse.Namespace) -> dict:
    """One worker in a subprocess; its JSON plus its peak RSS (the kernel's ru_maxrss, KiB on Linux)."""
    cmd = [sys.executable, __file__, "--worker", metric, "--n", str(args.n), "--dim", str(args.dim),
           "--heldout-n", str(args.heldout_n), "--prd-runs", str(args.prd_runs), "--fld-epochs", str(args.fld_epochs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    peak = round(usage.ru_maxrss / 2**20, 3)
    if os.waitstatus_to_exitcode(status) != 0:
        return {"metric": metric, "error": f"exit {os.waitstatus_to_exitcode(status)}", "peak_rss_gb": peak}
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_gb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="samples per side (generated, reference)")
    parser.add_argument("--dim", type=int, default=DIM, help="feature dimension (2048: Inception pool3)")
    parser.add_argument("--heldout-n", type=int, default=10_000, help="FLD's held-out (test) samples")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated, of {', '.join(METRICS)}")
    parser.add_argument("--prd-runs", type=int, default=1, help="PRD k-means runs (memory does not depend on it)")
    parser.add_argument("--fld-epochs", type=int, default=1, help="FLD epochs per fit (memory does not depend on it)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    print(f"float32 features, d = {args.dim}; two banks = {2 * args.n * args.dim * 4 / 2**30:.2f} GiB at N = {args.n}; "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print(f"| metric | shapes | peak RSS (GiB) | time (s) | value |\n|---|---|---:|---:|---|")
    rows = []
    for metric in args.metrics.split(","):
        result = run(metric, args)
        rows.append(result)
        value = result.get("value", result.get("error"))
        value = [round(v, 4) for v in value] if isinstance(value, list) else (
            round(value, 4) if isinstance(value, float) else value)
        print(f"| {metric} | {result.get('shapes', '')} | {result['peak_rss_gb']:.2f} | {result.get('seconds', '-')} "
              f"| {value} |", flush=True)
    worst = max(r["peak_rss_gb"] for r in rows)
    failed = [r["metric"] for r in rows if "error" in r]
    verdict = "PASS" if worst <= LIMIT_GB and not failed else "FAIL"
    print(f"\n{verdict}: largest peak RSS {worst:.2f} GiB (limit {LIMIT_GB} GiB)"
          + (f"; failed: {failed}" if failed else ""))


if __name__ == "__main__":
    main()
