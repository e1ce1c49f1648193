"""Seconds per 1,000 samples of the autoregressive models: naive sampler (the whole network once per pixel,
``sample_uncached``) vs the cached samplers the models use (FVSBN / NADE / MADE incremental state; PixelCNN /
Gated PixelCNN: every activation once, trainers/autoregressive/fast_sampling.py).

    OMP_NUM_THREADS=1 python benchmarks/bench_ar_sampling.py                        # small presets, 28×28 8-bit
    OMP_NUM_THREADS=1 python benchmarks/bench_ar_sampling.py --models pixelcnn --fast-num 10000 --naive-num 10

The networks are the `small` presets on Fashion-MNIST (8-bit, 256-way softmax) with their initial weights:
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


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn"])
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
            fast = model.sample(args.naive_num, seed=0)
            naive_s = timed(lambda: model.sample_uncached(args.naive_num, seed=0))
            same = bool(torch.equal(fast, model.sample_uncached(args.naive_num, seed=0))) if name != "made" else None
            fast_s = timed(lambda: model.sample(args.fast_num, seed=0))
        naive_per_1000 = naive_s / args.naive_num * 1000
        fast_per_1000 = fast_s / args.fast_num * 1000
        print(json.dumps({"model": name, "dataset": args.dataset, "budget": args.budget,
                          "threads": torch.get_num_threads(),
                          "naive_s_per_1000": round(naive_per_1000, 1), "naive_timed_on": args.naive_num,
                          "fast_s_per_1000": round(fast_per_1000, 2), "fast_timed_on": args.fast_num,
                          "speedup": round(naive_per_1000 / fast_per_1000, 1),
                          "same_samples_as_naive": same}), flush=True)


if __name__ == "__main__":
    main()
