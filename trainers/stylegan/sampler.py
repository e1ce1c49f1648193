"""Sampling a trained ProGAN / StyleGAN: ``sample(num, seed, labels=None, truncation=, truncation_cutoff=) -> uint8``.

Sample ``i`` depends only on ``(seed, i)``: its z comes from ``generator(seed, LATENT_STREAM, i)`` and its noise
images from ``generator(seed, NOISE_STREAM, i)``, never from the batch it is drawn in (the generator has no
batch statistics). Samples come from the EMA generator at the schedule's level and α of the checkpoint; a run
stopped before it reached full resolution is upsampled (nearest) to the data's size so it can be scored. The
generator runs where its weights are (``from_run(..., device=)``); z and noise are drawn on the CPU and moved, so
the samples of a seed do not depend on the device beyond float rounding; the images come back on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from geneval.images import quantize_to_uint8
from trainers.common.checkpoint import load_checkpoint
from trainers.common.runs import module_device
from trainers.common.seeding import generator, per_sample_normal

LATENT_STREAM, NOISE_STREAM = 7, 8


def check_truncation(psi, cutoff, *, num_layers: int) -> None:
    """ψ in [0, 1] (1 or None: no truncation) and a cut-off layer in 1 … num_layers (None: every layer)."""
    if psi is not None and not (isinstance(psi, (int, float)) and 0.0 <= psi <= 1.0):
        raise GenevalInputError(f"truncation ψ = {psi!r} must be in [0, 1] (1: none, 0: every sample is w̄'s image)")
    if cutoff is not None and not (isinstance(cutoff, int) and 1 <= cutoff <= num_layers):
        raise GenevalInputError(f"truncation_cutoff = {cutoff!r} must be a layer in 1 … {num_layers} "
                                f"(layers before it are truncated; the generator has {num_layers})")


class StyleGanSampler:
    def __init__(self, generator_: torch.nn.Module, *, level: int, alpha: float, out_size: int, batch_size: int = 250):
        self.G = generator_.eval()
        self.level, self.alpha, self.out_size, self.batch_size = level, alpha, out_size, batch_size

    @property
    def num_layers(self) -> int:
        return self.G.num_layers

    # ------------------------------------------------------------------------------------------ pieces
    def latents(self, num: int, seed: int) -> torch.Tensor:
        return per_sample_normal(num, (self.G.z_dim,), seed=seed, stream=LATENT_STREAM)

    @torch.no_grad()
    def styles(self, num: int, seed: int, *, truncation: float | None = None,
               truncation_cutoff: int | None = None) -> torch.Tensor:
        """``[num, num_layers, w_dim]``: per-layer w of samples 0 … num − 1 of ``seed``, truncated toward w̄."""
        check_truncation(truncation, truncation_cutoff, num_layers=self.num_layers)
        z = self.latents(num, seed).to(module_device(self.G))
        return self.G.truncate(self.G.styles(z), truncation, truncation_cutoff)

    def noise(self, num: int, seed: int, *, first: int = 0) -> list | None:
        """Per-sample noise images (one list entry per layer), or None when the generator has no noise inputs."""
        if not self.G.noise_inputs:
            return None
        shapes = self.G.noise_shapes(self.level)
        per_sample = []
        for i in range(first, first + num):
            g = generator(seed, NOISE_STREAM, i)
            per_sample.append([torch.randn(shape, generator=g) for shape in shapes])
        return [torch.stack([s[k] for s in per_sample]) for k in range(len(shapes))]

    @torch.no_grad()
    def synthesize(self, ws: torch.Tensor, noise: list | None = None) -> torch.Tensor:
        """uint8 ``[N, C, H, W]`` images of per-layer styles ``ws`` (noise: as ``noise()``; None: no noise)."""
        out, device = [], module_device(self.G)
        for start in range(0, len(ws), self.batch_size):
            part = slice(start, start + self.batch_size)
            x = self.G(ws[part].to(device), level=self.level, alpha=self.alpha,
                       noise=[n[part].to(device) for n in noise] if noise is not None else None)
            if x.shape[-1] != self.out_size:
                x = F.interpolate(x, size=(self.out_size, self.out_size), mode="nearest")
            # ProGAN and StyleGAN end in a linear toRGB (no tanh) and clip when converting to 8 bits
            # (``misc.convert_to_pil_image`` / ``convert_images_to_uint8``): the clip is the papers' own
            out.append(quantize_to_uint8(x.clamp(-1.0, 1.0), "-1,1", what="generator output").cpu())
        return torch.cat(out) if out else torch.zeros((0, 0, 0, 0), dtype=torch.uint8)

    # ------------------------------------------------------------------------------------------ protocol
    def sample(self, num: int, seed: int, labels=None, *, truncation: float | None = None,
               truncation_cutoff: int | None = None, noise: bool = True) -> torch.Tensor:
        """``num`` samples as uint8 ``[N, C, H, W]``. ``truncation``: ψ toward w̄ (StyleGAN §3.3) on the layers
        before ``truncation_cutoff``; ``noise=False``: the noise inputs get zeros (a function of w only)."""
        if labels is not None:
            raise GenevalInputError("this generator is unconditional: labels must be None")
        ws = self.styles(num, seed, truncation=truncation, truncation_cutoff=truncation_cutoff)
        return self.synthesize(ws, self.noise(num, seed) if noise else None)

    __call__ = sample

    @classmethod
    def from_run(cls, run_dir, *, which: str = "final", device: torch.device | str = "cpu") -> "StyleGanSampler":
        """The EMA generator of ``checkpoint.pt`` (``which="final"``) or ``best.pt`` (``"best"``), on ``device``."""
        from trainers.gan.sampler import config_from_json
        from trainers.stylegan.config import StyleGanConfig
        from trainers.stylegan.model import build_models

        run_dir = Path(run_dir)
        path = run_dir / {"final": "checkpoint.pt", "best": "best.pt"}.get(which, "?")
        if not path.is_file():
            raise GenevalInputError(f"{path} does not exist; expected a stylegan run folder with checkpoint.pt/best.pt")
        cfg = config_from_json(json.loads((run_dir / "config.json").read_text()), StyleGanConfig)
        state = load_checkpoint(path)
        state = state.get("trainer", state)  # checkpoint.pt nests the training state; best.pt does not
        G, _ = build_models(cfg)
        G.load_state_dict(state["G_ema"])
        return cls(G.to(device), level=state["growth"]["level"], alpha=state["growth"]["alpha"], out_size=cfg.shape[1])
