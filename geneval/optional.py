"""Dependencies a command needs, checked when the command starts — never after the work is done.

A training run draws its curves and sample grids at the end; a missing plotting library found there would
lose the run's record. Commands call ``require`` first, so a broken or partial installation fails in one line
naming the package and how to install it, before anything trains or is scored.
"""

from __future__ import annotations

import importlib

from geneval.errors import GenevalInputError

# import name → (distribution to install, what installs it)
PACKAGES = {
    "matplotlib": ("matplotlib", "pip install geneval (a runtime dependency) or pip install matplotlib"),
    "timm": ("timm", "pip install 'geneval[dinov2]' (timm)"),
    "open_clip": ("open_clip_torch", "pip install 'geneval[clip]' (open_clip_torch)"),
    "ray": ("ray", "pip install 'geneval[ray]' (or pip install 'ray[default]')"),
}


def require(*modules: str, what: str) -> None:
    """Raise a one-line ``GenevalInputError`` naming every module of ``modules`` that cannot be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        hints = "; ".join(PACKAGES.get(m, (m, f"pip install {m}"))[1] for m in missing)
        raise GenevalInputError(f"{what} needs {', '.join(missing)}, which cannot be imported here: {hints}")


def require_plotting(what: str) -> None:
    """The PNG plots (training curves, trade-off and metric plots): matplotlib with a file-only backend."""
    require("matplotlib", what=what)
