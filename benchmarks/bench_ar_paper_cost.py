"""What the `paper` presets of the autoregressive models would cost on this CPU: CPU seconds per image of one
training step (loss, backward, Adam) and of the test likelihood (the loss without gradients), measured on a small
batch and extrapolated to the budget's nominal steps × batch, one epoch of the training split, and the 10,000
test images the likelihood tables score. The evidence behind "no paper-size CIFAR-10 row is trained on this CPU"
(leaderboards/specs/likelihood_cifar10.toml).

    OMP_NUM_THREADS=1 python benchmarks/bench_ar_paper_cost.py                  # CIFAR-10, the five image models
    OMP_NUM_THREADS=1 python benchmarks/bench_ar_paper_cost.py --dataset binarized-mnist --models pixelcnn

Convolutions and LSTMs cost time linear in the batch, so a batch of ``--batch`` (after one warm-up step) stands
for the budget's batch. CPU seconds of this process (one thread): what a run would take on a core of its own,
however loaded the machine is. One JSON line per model on stdout.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from trainers.autoregressive.train import SPECS, make_config
from trainers.common.likelihood_training import TrainingData

TEST_IMAGES = 10_000
HOUR = 3600.0


def cpu_seconds(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(SPECS),
                        default=["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm", "pixelcnnpp"])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--budget", default="paper")
    parser.add_argument("--batch", type=int, default=8, help="images per measured step (≥ 1)")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error(f"--batch must be ≥ 1, got {args.batch}")
    data = TrainingData(args.dataset, seed=0, train_num=None)  # the whole training split: an epoch's size
    x, labels = data.batch(0, args.batch)
    for name in args.models:
        config = make_config(name, budget=args.budget, dataset=args.dataset, overrides={})
        torch.manual_seed(0)
        model = SPECS[name].build(config, data)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            model.loss(x, labels, generator=torch.Generator().manual_seed(0)).backward()
            optimizer.step()

        def test_pass():
            with torch.no_grad():
                model.loss(x, labels, generator=torch.Generator().manual_seed(0))

        model.train()
        train_step()  # warm-up: allocations, oneDNN kernel selection
        train_per_image = cpu_seconds(train_step) / args.batch
        model.eval()
        test_per_image = cpu_seconds(test_pass) / args.batch
        nominal_images = config.steps * config.batch_size
        print(json.dumps({
            "model": name, "dataset": args.dataset, "budget": args.budget, "threads": torch.get_num_threads(),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3), "measured_batch": args.batch,
            "train_cpu_s_per_image": round(train_per_image, 4),
            "train_cpu_s_per_step": round(train_per_image * config.batch_size, 2), "batch_size": config.batch_size,
            "nominal_steps": config.steps, "nominal_cpu_h": round(nominal_images * train_per_image / HOUR, 1),
            "epoch_cpu_h": round(len(data.images) * train_per_image / HOUR, 1),
            "test_likelihood_cpu_h": round(TEST_IMAGES * test_per_image / HOUR, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
