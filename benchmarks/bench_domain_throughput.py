"""Throughput of a geneval domain classifier's embedding on 10,000 real test images (target ≥ 2,000 images/s).

    python benchmarks/bench_domain_throughput.py                       # fashion-mnist-cnn, batch 500
    python benchmarks/bench_domain_throughput.py --extractor cifar10-cnn --batch-size 250 --repeats 5

Times ``extractor.features(batch, ("embedding",))`` over the whole test split (uint8 in, float32 out, the
preprocessing included), after one warm-up pass; prints one JSON line with the best and median rate. Timings
on a shared machine are noisy: look at the best of several repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from geneval.datasets import open_dataset
from geneval.features.domain import NETS, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extractor", default="fashion-mnist-cnn", choices=sorted(NETS))
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--num-images", type=int, default=10_000)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    extractor = build(args.extractor)
    images, _, info = open_dataset(NETS[args.extractor].dataset, "test")
    images = torch.tensor(images[:args.num_images])
    batches = torch.split(images, args.batch_size)

    def one_pass() -> float:
        start = time.perf_counter()
        for batch in batches:
            extractor.features(batch, ("embedding",))
        return len(images) / (time.perf_counter() - start)

    one_pass()  # warm-up: oneDNN picks its kernels on the first batches
    rates = [one_pass() for _ in range(args.repeats)]
    print(json.dumps({
        "extractor": args.extractor, "layer": "embedding", "images": len(images), "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "best_images_per_s": round(max(rates)),
        "median_images_per_s": round(statistics.median(rates)), "target_images_per_s": 2000,
        "torch": torch.__version__, "dataset_fingerprint": info["fingerprint"][:16],
    }))


if __name__ == "__main__":
    main()
