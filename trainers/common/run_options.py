"""The options and the launch that ``geneval train gan``, ``stylegan`` and ``ddpm`` share: one place for what a
training command takes besides its recipe (``--set``, ``--seed``, ``--out``, ``--resume``, ``--threads``,
``--stop-after-steps``, ``--print-config``, ``--progress``, ``--device``) and for what it does with them before
the trainer runs (threads, device, ``torchrun``). The likelihood models share theirs through
``trainers.common.likelihood_cli``. torch is imported only when a command runs.
"""

from __future__ import annotations

import json

import click


def training_options(*, set_example: str, out_files: str, torchrun: bool, stop_note: str = ""):
    """Decorate a command with the shared options. ``set_example``: ``--set`` examples of the family's keys;
    ``out_files``: what its run folder holds; ``torchrun``: whether it trains data-parallel under ``torchrun``
    (else it refuses a launch, one process); ``stop_note``: what resumes besides the weights."""
    device_help = ("auto (CUDA when available), cpu, cuda or cuda:N; "
                   + ("under torchrun each rank its local GPU." if torchrun else "one process (no torchrun)."))
    options = [
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help=f"Override a config key (repeatable), e.g. {set_example}."),
        click.option("--seed", type=int, default=None, help="Training seed (default 0)."),
        click.option("--out", required=True, metavar="DIR", type=click.Path(file_okay=False),
                     help=f"Run folder ({out_files})."),
        click.option("--resume", is_flag=True, help="Continue the checkpoint in --out if there is one."),
        click.option("--threads", type=int, default=0, show_default=True, help="torch threads (0: torch's default)."),
        click.option("--stop-after-steps", type=click.IntRange(1), default=None, metavar="N",
                     help=f"Checkpoint and stop after N steps (to test resumption{stop_note})."),
        click.option("--print-config", is_flag=True, help="Print the resolved config as JSON and exit."),
        click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal]."),
        click.option("--device", default="auto", show_default=True, metavar="DEV", help=device_help),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def resolved_config(build_config, *, command: str, torchrun: bool, preset: str, budget: str, dataset: str,
                    overrides: tuple[str, ...], seed: int | None, print_config: bool):
    """The family's config from the command line, or None when ``--print-config`` printed it. A command that
    trains one process refuses a ``torchrun`` launch first (each rank would train the same folder)."""
    from geneval import distributed
    from trainers.common.config import config_dict, parse_overrides

    if not torchrun:
        distributed.refuse_launch(command)
    cfg = build_config(preset=preset, budget=budget, dataset=dataset, overrides=parse_overrides(overrides), seed=seed)
    if print_config:
        click.echo(json.dumps(config_dict(cfg), indent=2))
        return None
    return cfg


def launch(run_training, cfg, *, torchrun: bool, out: str, resume: bool, threads: int, stop_after_steps: int | None,
           progress: bool | None, device: str) -> dict | None:
    """Run ``run_training(cfg, out=, resume=, stop_after_steps=, progress=, device=)`` on the chosen device
    (under ``torchrun``: each rank's own, after the process group is up). Returns the trainer's result on the
    main process; None on the other ranks and when training stopped early (a line on stderr says so)."""
    import logging

    import torch

    from geneval import distributed

    logging.getLogger("trainers").setLevel(logging.INFO)  # geneval's CLI set up the handler (stderr)
    if threads:
        torch.set_num_threads(threads)
    resolved = distributed.resolve_device(device)
    ctx = distributed.init(resolved) if torchrun else None
    result = run_training(cfg, out=out, resume=resume, stop_after_steps=stop_after_steps, progress=progress,
                          device=str(resolved))
    if ctx is not None and not ctx.is_main:
        return None
    if "stopped" in result:
        state = {k: v for k, v in result.items() if k != "stopped"}  # e.g. StyleGAN's growth schedule
        click.echo(f"stopped at step {result['stopped']}" + (f" ({json.dumps(state)})" if state else "")
                   + "; continue with --resume", err=True)
        return None
    return result
