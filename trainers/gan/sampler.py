"""Sampling from a trained generator: ``sample(num, seed, labels=None) -> uint8 [N, C, H, W]``.

Sample ``i`` depends only on ``(seed, i)`` (its latent comes from its own generator, its default class is
``i mod K``) and on the truncation threshold, never on the batch it is drawn in: the generator runs in eval
mode (batch norm uses its running statistics). This is the protocol the leaderboards and ``geneval score``
consume (``GanSampler.from_run(run_dir)``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from geneval.errors import GenevalInputError
from geneval.images import quantize_to_uint8
from trainers.common.checkpoint import load_checkpoint
from trainers.gan.layers import balanced_labels, truncated_latents

LATENT_STREAM = 7  # stream id of evaluation latents in derived_seed(seed, stream, i)


class GanSampler:
    def __init__(self, generator: torch.nn.Module, *, z_dim: int, num_classes: int, conditional: bool,
                 batch_size: int = 500):
        self.generator = generator.eval()
        self.z_dim, self.num_classes, self.conditional = z_dim, num_classes, conditional
        self.batch_size = batch_size

    def labels_for(self, num: int, labels=None) -> torch.Tensor | None:
        """The classes of ``num`` samples: ``labels`` as given (checked) or ``i mod K``; None if unconditional."""
        if not self.conditional:
            if labels is not None:
                raise GenevalInputError("this generator is unconditional: labels must be None")
            return None
        if labels is None:
            return balanced_labels(num, self.num_classes)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (num,) or (labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes)):
            raise GenevalInputError(f"labels: expected {num} ints in [0, {self.num_classes}), got shape "
                                    f"{list(labels.shape)}")
        return labels

    @torch.no_grad()
    def sample(self, num: int, seed: int, labels=None, *, truncation: float | None = None) -> torch.Tensor:
        """``num`` samples as uint8 ``[N, C, H, W]``; ``truncation``: resample latent coordinates beyond it."""
        y = self.labels_for(num, labels)
        z = truncated_latents(num, self.z_dim, seed=seed, threshold=truncation, stream=LATENT_STREAM)
        device = next(self.generator.parameters()).device  # the latents are drawn on the CPU, then moved
        out = []
        for start in range(0, num, self.batch_size):
            yb = y[start:start + self.batch_size].to(device) if y is not None else None
            out.append(quantize_to_uint8(self.generator(z[start:start + self.batch_size].to(device), yb), "-1,1",
                                         what="generator output").cpu())
        return torch.cat(out) if out else torch.zeros((0, 0, 0, 0), dtype=torch.uint8)

    __call__ = sample

    @classmethod
    def from_run(cls, run_dir, *, which: str = "final", ema: bool = True, device: str = "cpu") -> "GanSampler":
        """Load ``<run_dir>/checkpoint.pt`` (``which="final"``) or ``best.pt`` (``"best"``); ``ema``: use the
        EMA generator when the run kept one."""
        from trainers.gan.config import GanConfig
        from trainers.gan.models import build_models

        run_dir = Path(run_dir)
        path = run_dir / {"final": "checkpoint.pt", "best": "best.pt"}.get(which, "?")
        if not path.is_file():
            raise GenevalInputError(f"{path} does not exist; expected a GAN run folder with checkpoint.pt/best.pt")
        cfg = config_from_json(json.loads((run_dir / "config.json").read_text()), GanConfig)
        state = load_checkpoint(path)
        state = state.get("trainer", state)  # checkpoint.pt nests the training state; best.pt does not
        generator, _ = build_models(cfg, shape=cfg.shape, num_classes=cfg.num_classes)
        key = "G_ema" if ema and state.get("G_ema") is not None else "G"
        generator.load_state_dict(state[key])
        return cls(generator.to(device), z_dim=cfg.z_dim, num_classes=cfg.num_classes, conditional=cfg.conditional)


def config_from_json(values: dict, cls):
    """A frozen config from its ``config.json`` (JSON lists back to tuples)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in fields})
