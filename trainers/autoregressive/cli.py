"""``geneval train fvsbn|nade|made|pixelcnn|gated-pixelcnn`` (torch is imported only when a command runs)."""

from __future__ import annotations

from trainers.cli import train
from trainers.common.likelihood_cli import likelihood_command

MODELS = ("fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn")


def _runner(model: str):
    def run(*, preset, dataset, overrides, out, resume, stop_after_steps):
        from trainers.autoregressive.train import SPECS, make_config
        from trainers.common.likelihood_training import train as train_run

        config = make_config(model, preset=preset, dataset=dataset, overrides=overrides)
        return train_run(SPECS[model], config, out=out, preset=preset, resume=resume,
                         stop_after_steps=stop_after_steps)

    return run


for _model in MODELS:
    likelihood_command(train, _model, presets=("smoke", "small", "paper"), run=_runner(_model))
