"""``geneval train nice|realnvp|glow`` (the trainer modules load when a command runs)."""

from __future__ import annotations

from trainers.cli import train
from trainers.common.likelihood_cli import likelihood_command

MODELS = ("nice", "realnvp", "glow")
DATASETS = ("mnist", "fashion-mnist", "cifar10")  # 8-bit data (trainers.flows.train.FLOW_DATASETS)


def _runner(model: str):
    def run(*, budget, dataset, overrides, out, resume, stop_after_steps, progress, device="cpu"):
        from trainers.common.likelihood_training import train as train_run
        from trainers.flows.train import SPECS, make_config

        config = make_config(model, budget=budget, dataset=dataset, overrides=overrides)
        return train_run(SPECS[model], config, out=out, budget=budget, resume=resume,
                         stop_after_steps=stop_after_steps, progress=progress, device=device)

    return run


for _model in MODELS:
    likelihood_command(train, _model, budgets=("smoke", "small", "paper"), run=_runner(_model), datasets=DATASETS,
                       default_dataset="mnist")
