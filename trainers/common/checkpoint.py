"""Atomic checkpoints: written to a temporary file in the same folder, flushed, then renamed over the old one,
so a run killed at any moment leaves either the previous checkpoint or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a save that was killed (one writer per run)
        stale.unlink(missing_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(state, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint as a dict of tensors and plain data (numbers, strings, lists, dicts), loaded with
    ``weights_only=True``: a file holding any other pickled object is refused (one line naming the file), so loading
    a checkpoint someone sent you never runs code. Checkpoints store configs and RNG states as plain data for this."""
    from geneval.errors import GenevalInputError
    from geneval.weights import load_plain

    state = load_plain(path, what="checkpoint")
    if not isinstance(state, dict):
        raise GenevalInputError(f"checkpoint: {path} holds a {type(state).__name__}, expected a dict")
    return state
