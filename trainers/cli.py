"""``geneval train <family>``: the click group that trainer families add their commands to.

geneval's CLI finds this group through the ``geneval.cli`` entry point in ``pyproject.toml``, so the metrics
core never imports ``trainers``. A family registers itself by importing ``train`` from here and decorating
its command in ``trainers/<family>/cli.py``; every such module is imported below, so that
``geneval train --help`` lists them all without a list to keep in sync.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def train() -> None:
    """Train a reference model, then evaluate it with geneval.

    \b
    Examples:
      geneval train gan --preset dcgan --dataset fashion-mnist --out runs/dcgan
      geneval train gan --preset sngan --set n_dis=2 --set lr_d=4e-4 --out runs/sngan --resume
    """


def _load_families() -> None:
    root = Path(__file__).resolve().parent
    for info in pkgutil.iter_modules([str(root)]):
        if info.ispkg and (root / info.name / "cli.py").is_file():
            importlib.import_module(f"trainers.{info.name}.cli")


_load_families()
