"""Seconds per 1,000 samples of the autoregressive models: naive sampler (the network once per pixel,
``sample_uncached``; for Row LSTM / Diagonal BiLSTM once per channel of every pixel on rows ≤ i, for PixelCNN++
on rows ≤ i rounded up to a multiple of 4 — what they sampled with before their cached samplers) vs the cached
samplers the models use (FVSBN / NADE / MADE incremental state; PixelCNN / Gated PixelCNN: every activation once,
trainers/autoregressive/fast_sampling.py; Row LSTM / Diagonal BiLSTM: every LSTM state once,
fast_sampling_rnn.py; PixelCNN++: every activation once, fast_sampling_pp.py).

    OMP_NUM_THREADS=1 python benchmarks/bench_ar_sampling.py                        # small presets, 28×28 8-bit
    OMP_NUM_THREADS=1 python benchmarks/bench_ar_sampling.py --models pixelcnn --fast-num 10000 --naive-num 10
    OMP_NUM_THREADS=1 python benchmarks/bench_ar_sampling.py --models row-lstm diagonal-bilstm pixelcnnpp \
        --fast-num 200 --naive-num 4

The networks are the `small` presets on Fashion-MNIST (8-bit: a 256-way softmax per pixel, for PixelCNN++ a
discretised logistic mixture) with their initial weights:
sampling time does not depend on the weights' values. The naive sampler is timed on ``--naive-num`` samples
and scaled (it is linear in the count), the cached one on ``--fast-num``; the first naive sample batch is also
compared with the cached sampler's (same seed: same images). One JSON line per model on stdout.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from trainers.autoregressive.train import SPECS, make_config
from trainers.common.likelihood_training import TrainingData


def timed(fn):
    """(wall seconds, this process's CPU seconds, the result). With one thread the CPU seconds are what the run
    would take on a core of its own: on a machine shared with other jobs the wall time can be many times more."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn",
                                                         "row-lstm", "diagonal-bilstm", "pixelcnnpp"])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--budget", default="small")
    parser.add_argument("--fast-num", type=int, default=1000)
    parser.add_argument("--naive-num", type=int, default=20)
    args = parser.parse_args()
    data = TrainingData(args.dataset, seed=0, train_num=2)
    for name in args.models:
        config = make_config(name, budget=args.budget, dataset=args.dataset, overrides={})
        torch.manual_seed(0)
        model = SPECS[name].build(config, data).eval()
        with torch.inference_mode():
            naive_s, naive_cpu, naive = timed(lambda: model.sample_uncached(args.naive_num, seed=0))
            fast_s, fast_cpu, fast = timed(lambda: model.sample(args.fast_num, seed=0))
        same = bool(torch.equal(fast[:args.naive_num], naive)) if name != "made" else None
        naive_per_1000, fast_per_1000 = naive_s / args.naive_num * 1000, fast_s / args.fast_num * 1000
        print(json.dumps({"model": name, "dataset": args.dataset, "budget": args.budget,
                          "threads": torch.get_num_threads(),
                          "naive_s_per_1000": round(naive_per_1000, 1), "naive_timed_on": args.naive_num,
                          "fast_s_per_1000": round(fast_per_1000, 2), "fast_timed_on": args.fast_num,
                          "speedup": round(naive_per_1000 / fast_per_1000, 1),
                          "naive_cpu_s_per_1000": round(naive_cpu / args.naive_num * 1000, 1),
                          "fast_cpu_s_per_1000": round(fast_cpu / args.fast_num * 1000, 2),
                          "cpu_speedup": round(naive_cpu / args.naive_num / (fast_cpu / args.fast_num), 1),
                          "same_samples_as_naive": same}), flush=True)


if __name__ == "__main__":
    main()
