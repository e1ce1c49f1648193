"""Per-step time of geneval's GAN training loop vs a plain PyTorch loop of the same networks (target: ratio ≤ 1.05).

    OMP_NUM_THREADS=1 python benchmarks/bench_gan_step.py                      # dcgan, small budget widths
    OMP_NUM_THREADS=1 python benchmarks/bench_gan_step.py --preset sngan --steps 10 --rounds 5

Both loops train the *same* generator and discriminator (built by ``trainers.gan.models.build_models`` from the
preset, so the architecture cannot differ) on the same Fashion-MNIST images with the same batch size and
n_dis. The plain loop is what one writes by hand: a random index batch from the global RNG, ``torch.randn``
latents, the preset's loss written inline, Adam. geneval's loop adds what it needs for exact resume and
per-step seeding (a derived generator per step, an epoch permutation, loss read-out). Steps alternate
between the two loops in one process; the ratio of the median per-step times (and of the totals) is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.nn import functional as F

from trainers.common.data import load_split, to_signed_unit
from trainers.gan.config import build_config
from trainers.gan.models import build_models
from trainers.gan.train import GanTraining


def plain_loop(cfg, images: torch.Tensor):
    """A hand-written loop for the unconditional non-saturating/hinge recipes (no labels, no penalty)."""
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg, shape=cfg.shape, num_classes=cfg.num_classes)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    hinge = cfg.loss == "hinge"

    def step():
        for _ in range(cfg.n_dis):
            x = to_signed_unit(images[torch.randint(0, len(images), (cfg.batch_size,))])
            with torch.no_grad():
                fake = G(torch.randn(cfg.batch_size, cfg.z_dim))
            real_score, _ = D(x)
            fake_score, _ = D(fake)
            if hinge:
                loss_d = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
            else:
                loss_d = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        fake_score, _ = D(G(torch.randn(cfg.batch_size, cfg.z_dim)))
        loss_g = -fake_score.mean() if hinge else F.softplus(-fake_score).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return step


def timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="dcgan", choices=["dcgan", "mlp", "sngan"],
                        help="an unconditional recipe without gradient penalty or clipping")
    parser.add_argument("--budget", default="small")
    parser.add_argument("--steps", type=int, default=20, help="generator steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = build_config(preset=args.preset, budget=args.budget)
    images, labels, _ = load_split(cfg.dataset, "train")
    images, labels = images[:55_000], labels[:55_000]
    ours = GanTraining(cfg, images=images, labels=labels)
    plain = plain_loop(cfg, images)
    ours.train_step(), plain()  # warm-up (allocator, oneDNN kernels)
    # Steps alternate one by one, so that load from other processes on a shared machine hits both loops alike.
    times = {"geneval": [], "plain": []}
    for _ in range(args.rounds * args.steps):
        times["geneval"].append(timed(ours.train_step))
        times["plain"].append(timed(plain))
    median = {k: statistics.median(v) for k, v in times.items()}
    total = {k: sum(v) for k, v in times.items()}
    print(json.dumps({
        "preset": args.preset, "budget": args.budget, "batch_size": cfg.batch_size, "n_dis": cfg.n_dis,
        "threads": args.threads, "steps_per_round": args.steps, "rounds": args.rounds,
        "geneval_ms_per_step": round(1000 * median["geneval"], 2), "plain_ms_per_step": round(1000 * median["plain"], 2),
        "ratio": round(median["geneval"] / median["plain"], 4),
        "ratio_of_totals": round(total["geneval"] / total["plain"], 4),
        "geneval_min_ms": round(1000 * min(times["geneval"]), 2), "plain_min_ms": round(1000 * min(times["plain"]), 2),
    }))


if __name__ == "__main__":
    main()
