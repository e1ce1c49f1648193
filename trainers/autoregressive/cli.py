"""``geneval train fvsbn|nade|made|pixelcnn|gated-pixelcnn|pixelcnnpp|row-lstm|diagonal-bilstm`` (the trainer modules load when a command runs)."""

from __future__ import annotations

from trainers.cli import train
from trainers.common.likelihood_cli import likelihood_command

MODELS = ("fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn", "pixelcnnpp", "row-lstm", "diagonal-bilstm")


def _runner(model: str):
    def run(*, budget, dataset, overrides, out, resume, stop_after_steps, progress, device="cpu"):
        from trainers.autoregressive.train import SPECS, make_config
        from trainers.common.likelihood_training import train as train_run

        config = make_config(model, budget=budget, dataset=dataset, overrides=overrides)
        return train_run(SPECS[model], config, out=out, budget=budget, resume=resume,
                         stop_after_steps=stop_after_steps, progress=progress, device=device)

    return run


for _model in MODELS:
    likelihood_command(train, _model, budgets=("smoke", "small", "paper"), run=_runner(_model))
