"""``geneval train vae`` (the trainer modules load when the command runs)."""

from __future__ import annotations

from trainers.cli import train
from trainers.common.likelihood_cli import likelihood_command


def _run(*, budget, dataset, overrides, out, resume, stop_after_steps, progress, device="cpu"):
    from trainers.common.likelihood_training import train as train_run
    from trainers.vae.train import SPEC, make_config

    config = make_config(budget=budget, dataset=dataset, overrides=overrides)
    return train_run(SPEC, config, out=out, budget=budget, resume=resume, stop_after_steps=stop_after_steps,
                     progress=progress, device=device)


likelihood_command(train, "vae", budgets=("smoke", "small", "paper"), run=_run)
