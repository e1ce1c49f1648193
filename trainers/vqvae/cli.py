"""``geneval train vqvae`` (the trainer module loads when the command runs)."""

from __future__ import annotations

from trainers.cli import train
from trainers.common.likelihood_cli import likelihood_command

DATASETS = ("cifar10", "mnist", "fashion-mnist")  # 8-bit data (trainers.vqvae.train.VQVAE_DATASETS)


def run(*, budget, dataset, overrides, out, resume, stop_after_steps, progress, device="cpu"):
    from trainers.common.likelihood_training import train as train_run
    from trainers.vqvae.train import SPECS, make_config

    config = make_config(budget=budget, dataset=dataset, overrides=overrides)
    return train_run(SPECS["vqvae"], config, out=out, budget=budget, resume=resume,
                     stop_after_steps=stop_after_steps, progress=progress, device=device)


likelihood_command(train, "vqvae", budgets=("smoke", "small", "paper"), run=run, datasets=DATASETS,
                   default_dataset="cifar10")
