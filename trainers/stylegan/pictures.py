"""The pictures a finished StyleGAN run draws (Karras et al. 2019):

* ``style_mixing.png`` (Figure 3): source A images across the top, source B images down the left; each cell is
  A's styles with B's copied into one group of layers — coarse (the first level, 7×7), middle (the levels
  between) or fine (the last level, 28×28) — two B rows per group. Drawn when the generator has styles (C on).
* ``noise_resampling.png`` (Figure 4): per row one w, the image under several noise draws, then the per-pixel
  standard deviation over 32 draws (scaled to its maximum). Drawn when the generator has noise inputs (E on).
* ``psi_sweep.png`` (Figure 8): per row one w, truncated toward w̄ with ψ = 1, 0.75, 0.5, 0.25, 0 (same noise).
"""

from __future__ import annotations

from pathlib import Path

import torch

from geneval.grid import save_grid

PSI_SWEEP = (1.0, 0.75, 0.5, 0.25, 0.0)


def layer_groups(num_layers: int) -> dict[str, range]:
    """Coarse / middle / fine style layers: the first level's two, the last level's two, the rest."""
    groups = {"coarse": range(0, 2), "middle": range(2, num_layers - 2), "fine": range(num_layers - 2, num_layers)}
    return {k: v for k, v in groups.items() if len(v) and (k != "fine" or num_layers > 2)}


def style_mixing(sampler, path: Path, *, seed: int, psi: float, columns: int = 5, rows_per_group: int = 2) -> None:
    groups = layer_groups(sampler.num_layers)
    n_b = rows_per_group * len(groups)
    ws_a = sampler.styles(columns, seed, truncation=psi)
    ws_b = sampler.styles(n_b, seed + 1, truncation=psi)
    noise_a, noise_b = sampler.noise(columns, seed), sampler.noise(n_b, seed + 1)
    images_a, images_b = sampler.synthesize(ws_a, noise_a), sampler.synthesize(ws_b, noise_b)
    cells = [torch.full_like(images_a[0], 255), *images_a]
    for r, layers in enumerate(layers for layers in groups.values() for _ in range(rows_per_group)):
        mixed = ws_a.clone()
        mixed[:, list(layers)] = ws_b[r, list(layers)]
        cells += [images_b[r], *sampler.synthesize(mixed, noise_a)]
    save_grid(path, torch.stack(cells), ncols=columns + 1, scale=3)


def noise_resampling(sampler, path: Path, *, seed: int, psi: float, rows: int = 4, shown: int = 6,
                     draws: int = 32) -> None:
    ws = sampler.styles(rows, seed, truncation=psi)
    cells = []
    for r in range(rows):
        same_w = ws[r:r + 1].expand(draws, -1, -1)
        images = sampler.synthesize(same_w, sampler.noise(draws, seed + 1000 + r))
        std = images.float().std(dim=0, keepdim=True)
        cells += [*images[:shown], (std / std.max().clamp_min(1e-8) * 255).round().to(torch.uint8)]
    save_grid(path, torch.cat([c if c.ndim == 4 else c[None] for c in cells]), ncols=shown + 1, scale=3)


def psi_sweep(sampler, path: Path, *, seed: int, rows: int = 8, psis=PSI_SWEEP) -> None:
    noise = sampler.noise(rows, seed)
    per_psi = [sampler.synthesize(sampler.styles(rows, seed, truncation=psi), noise) for psi in psis]
    save_grid(path, torch.stack(per_psi, dim=1).flatten(0, 1), ncols=len(psis), scale=2)


def draw_all(sampler, out_dir, *, seed: int, psi: float) -> dict[str, str]:
    """Draw what this generator has ingredients for; ``{artifact: file name}``."""
    out_dir, written = Path(out_dir), {}
    if sampler.G.mapping is not None:
        style_mixing(sampler, out_dir / "style_mixing.png", seed=seed, psi=psi)
        written["style_mixing"] = "style_mixing.png"
    if sampler.G.noise_inputs:
        noise_resampling(sampler, out_dir / "noise_resampling.png", seed=seed, psi=psi)
        written["noise_resampling"] = "noise_resampling.png"
    psi_sweep(sampler, out_dir / "psi_sweep.png", seed=seed)
    written["psi_sweep"] = "psi_sweep.png"
    return written
