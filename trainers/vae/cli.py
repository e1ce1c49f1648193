"""``geneval train vae`` (torch is imported only when the command runs)."""

from __future__ import annotations

from trainers.cli import train
from trainers.common.likelihood_cli import likelihood_command


def _run(*, preset, dataset, overrides, out, resume, stop_after_steps):
    from trainers.common.likelihood_training import train as train_run
    from trainers.vae.train import SPEC, make_config

    config = make_config(preset=preset, dataset=dataset, overrides=overrides)
    return train_run(SPEC, config, out=out, preset=preset, resume=resume, stop_after_steps=stop_after_steps)


likelihood_command(train, "vae", presets=("smoke", "small", "paper"), run=_run)
