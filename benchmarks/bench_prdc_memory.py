"""Peak memory of precision/recall + density/coverage: geneval (chunked) vs prdc and torch-fidelity (full matrices).

    python benchmarks/bench_prdc_memory.py                 # N = 50,000 per side for geneval, d = 2048 (~15 min on 2 cores)
    python benchmarks/bench_prdc_memory.py --n 20000 --peer-n 5000 --check-n 2000   # quicker

Each implementation runs in its own subprocess on the same synthetic features (float32, non-negative like
Inception pool3: ReLU of a random projection of a 64-d Gaussian mixture, generated in chunks from a seed); the
parent reads that child's peak RSS from ``os.wait4``. The peers build N×N distance matrices (prdc three float32
ones at once, torch-fidelity's full mode one at a time plus comparison masks), so at 50k they need ≥ 30 GB and
≥ 10 GB; they are run at ``--peer-n`` and their full-matrix sizes at N are printed beside. Finally geneval's
chunked results are checked to be identical to its single-block computation and to the peers' at ``--check-n``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time

import numpy as np

DIM = 2048


def features(n: int, seed: int, *, dim: int = DIM, chunk: int = 5000) -> np.ndarray:
    """float32 [n, dim], built chunk by chunk so generation never holds a float64 copy."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(12345).normal(size=(64, dim)) / 8  # shared by both sides
    centres = np.random.default_rng(54321).normal(size=(20, 64)) * 2
    out = np.empty((n, dim), np.float32)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        z = centres[rng.integers(0, len(centres), m)] + rng.normal(size=(m, 64))
        out[lo : lo + m] = np.maximum(z @ proj + 0.1 * rng.normal(size=(m, dim)), 0)
    return out


def worker(impl: str, n: int, chunk: int | None) -> dict:
    gen, ref = features(n, 1), features(n, 2)
    started = time.perf_counter()
    if impl == "geneval":
        from geneval.metrics.prdc import prdc

        r = prdc(gen, ref, k_pr=3, k_dc=5, chunk_size=chunk)
        values = {"precision": r.precision, "recall": r.recall, "density": r.density, "coverage": r.coverage}
    elif impl == "geneval-strict":
        from geneval.metrics.prdc import prdc

        r = prdc(gen, ref, k_pr=5, k_dc=5, strict=True, chunk_size=chunk)
        values = {"precision": r.precision, "recall": r.recall, "density": r.density, "coverage": r.coverage}
    elif impl == "prdc":
        from prdc import compute_prdc

        with contextlib.redirect_stdout(io.StringIO()):
            values = {k: float(v) for k, v in compute_prdc(real_features=ref, fake_features=gen, nearest_k=5).items()}
    elif impl == "torch-fidelity":
        import torch
        from torch_fidelity.metric_prc import calculate_precision_recall_full

        p, r = calculate_precision_recall_full(torch.from_numpy(gen), torch.from_numpy(ref), 3, 10000)
        values = {"precision": p, "recall": r}
    else:
        raise SystemExit(f"unknown implementation {impl}")
    return {"impl": impl, "n": n, "seconds": round(time.perf_counter() - started, 1), "values": values}


def run(impl: str, n: int, chunk: int | None = None) -> dict:
    """Run one worker in a subprocess; return its JSON plus its peak RSS (kernel's ru_maxrss, KiB on Linux)."""
    cmd = [sys.executable, __file__, "--worker", impl, "--n", str(n)] + (["--chunk", str(chunk)] if chunk else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"impl": impl, "n": n, "error": f"exit {proc.returncode}", "peak_rss_gb": usage.ru_maxrss / 2**20}
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gb"] = round(usage.ru_maxrss / 2**20, 3)
    return result


def full_matrix_gb(n: int, matrices: int) -> float:
    return matrices * n * n * 4 / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="samples per side for geneval")
    parser.add_argument("--peer-n", type=int, default=10_000, help="samples per side for prdc / torch-fidelity")
    parser.add_argument("--check-n", type=int, default=3000, help="N for the equality checks")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.chunk)))
        return

    print(f"d = {DIM}, float32 features, {os.cpu_count()} CPUs, torch threads from OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    # Equality first (cheap): chunked (small chunks) vs one block vs the peers, at check-n.
    small = args.check_n
    checks = {
        "geneval chunk=257": run("geneval", small, 257), "geneval one block": run("geneval", small, small),
        "torch-fidelity": run("torch-fidelity", small),
        "geneval strict k=5 chunk=257": run("geneval-strict", small, 257), "prdc": run("prdc", small),
    }
    same_chunks = checks["geneval chunk=257"]["values"] == checks["geneval one block"]["values"]
    pr_peer = all(round(checks["geneval chunk=257"]["values"][m] * small) == round(checks["torch-fidelity"]["values"][m] * small)
                  for m in ("precision", "recall"))
    dc_peer = all(abs(checks["geneval strict k=5 chunk=257"]["values"][m] - checks["prdc"]["values"][m]) < 1e-12
                  for m in ("precision", "recall", "density", "coverage"))
    print(f"\nN = {small}: chunked == single block: {same_chunks}; precision/recall == torch-fidelity: {pr_peer}; "
          f"strict PRDC == prdc: {dc_peer}")
    for name, result in checks.items():
        print(f"  {name:30s} {result.get('values')}")

    print(f"\nPeak RSS (whole process: Python, torch, both feature sets of {2 * args.n * DIM * 4 / 2**30:.2f} GiB at "
          f"N={args.n}):")
    rows = [run("geneval", args.n), run("prdc", args.peer_n), run("torch-fidelity", args.peer_n)]
    ours = rows[0]
    for result in rows:
        print(f"  {result['impl']:15s} N={result['n']:6d}  peak RSS {result['peak_rss_gb']:6.2f} GiB  "
              f"time {result.get('seconds', '-')} s  {result.get('values', result.get('error'))}")
    print(f"\nFull-matrix sizes at N={args.n}: prdc holds 3 N×N float32 matrices = {full_matrix_gb(args.n, 3):.1f} GiB "
          f"(+ sklearn's float64 blocks); torch-fidelity (full mode) builds N×N float32 matrices one at a time = "
          f"{full_matrix_gb(args.n, 1):.1f} GiB each (+ N×N bool masks).")
    peer_at_n = {"prdc": full_matrix_gb(args.n, 3), "torch-fidelity": full_matrix_gb(args.n, 1)}
    for peer, gb in peer_at_n.items():
        print(f"  geneval / {peer} (full-matrix lower bound at N={args.n}): {ours['peak_rss_gb'] / gb:.3f}")
    verdict = "PASS" if ours.get("peak_rss_gb", 99) <= 2.0 and same_chunks and pr_peer and dc_peer else "FAIL"
    print(f"\n{verdict}: geneval peak RSS {ours.get('peak_rss_gb')} GiB at N={args.n} (limit 2 GiB); results identical "
          "to the full computation at the check size")


if __name__ == "__main__":
    main()
