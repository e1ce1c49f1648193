"""MS-SSIM within-set diversity (Odena et al. 2017, "Conditional image synthesis with auxiliary classifier GANs", §4.2).

MS-SSIM (Wang, Simoncelli & Bovik 2003) of random pairs of samples from one set: high means the samples look
alike (low diversity). AC-GAN reports the mean over 100 random pairs per class and compares it with real data's.

MS-SSIM here follows the reference formulation, built on the one SSIM of ``geneval/metrics/ssim.py`` (and ``pytorch_msssim`` / ``tf.image.ssim_multiscale``): 11-tap
Gaussian window with σ = 1.5 applied separably without padding, K1 = 0.01, K2 = 0.03, data range 255, 2×2 average
pooling between scales, contrast-structure terms of scales 1…M−1 and the full SSIM of scale M, each averaged over
positions, clipped at 0, raised to the weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), then averaged over
channels. Small images cannot hold 5 scales of an 11-pixel window (28×28 holds 2), so M is the largest number of
scales whose coarsest image is still ≥ 11 pixels and the first M weights are renormalised to sum to 1; the record
states M. Arithmetic is float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.ssim import WINDOW, _ssim_terms, _window

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DEFAULT_PAIRS = 100


def num_scales(height: int, width: int) -> int:
    scales, size = 0, min(height, width)
    while scales < len(WEIGHTS) and size >= WINDOW:
        scales += 1
        size //= 2
    if scales == 0:
        raise GenevalInputError(f"MS-SSIM: images of {height}×{width} are smaller than the {WINDOW}-pixel window")
    return scales


def ms_ssim(a, b, *, data_range: float = 255.0, scales: int | None = None) -> np.ndarray:
    """MS-SSIM of image pairs ``a[i], b[i]`` (``[B, C, H, W]``, uint8 or float in [0, data_range]) → float64 ``[B]``."""
    x, y = torch.as_tensor(np.asarray(a)).double(), torch.as_tensor(np.asarray(b)).double()
    if x.ndim != 4 or x.shape != y.shape:
        raise GenevalInputError(f"MS-SSIM: image batches have shapes {list(x.shape)} and {list(y.shape)}; "
                                "expected two equal [B, C, H, W]")
    m = scales or num_scales(x.shape[2], x.shape[3])
    if m > num_scales(x.shape[2], x.shape[3]):
        raise GenevalInputError(f"MS-SSIM: {m} scales do not fit {x.shape[2]}×{x.shape[3]} images "
                                f"(at most {num_scales(x.shape[2], x.shape[3])})")
    weights = torch.tensor(WEIGHTS[:m], dtype=torch.float64)
    weights = weights / weights.sum()
    g = _window()
    factors = []
    for j in range(m):
        ssim, cs = _ssim_terms(x, y, g, data_range)
        factors.append(torch.relu(ssim if j == m - 1 else cs))
        if j < m - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(factors)  # [M, B, C]
    per_channel = torch.prod(stacked ** weights.view(-1, 1, 1), dim=0)
    return per_channel.mean(dim=1).numpy()


@dataclass(frozen=True)
class Diversity:
    mean: float  # over classes (or the whole set), lower = more diverse
    per_class: dict[int, float]
    pairs: int
    scales: int


def draw_pairs(labels: np.ndarray, *, pairs: int, seed: int) -> dict[int, np.ndarray]:
    """For each class, ``pairs`` random pairs of distinct indices ``[pairs, 2]`` (numpy generator ``seed``)."""
    rng = np.random.default_rng(seed)
    out = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise GenevalInputError(f"MS-SSIM diversity: class {int(c)} has {len(members)} sample(s); need at least 2")
        out[int(c)] = np.stack([members[rng.choice(len(members), 2, replace=False)] for _ in range(pairs)])
    return out


def ms_ssim_diversity(images, labels=None, *, pairs: int = DEFAULT_PAIRS, seed: int = 0) -> Diversity:
    """Mean MS-SSIM of ``pairs`` random pairs per class (the whole set is one class when ``labels`` is None)."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise GenevalInputError(f"MS-SSIM diversity: images have shape {list(x.shape)}; expected [N, C, H, W]")
    lab = np.zeros(len(x), np.int64) if labels is None else np.asarray(labels)
    if len(lab) != len(x):
        raise GenevalInputError(f"MS-SSIM diversity: {len(lab)} labels for {len(x)} images")
    per_class = {c: float(ms_ssim(x[idx[:, 0]], x[idx[:, 1]]).mean())
                 for c, idx in draw_pairs(lab, pairs=pairs, seed=seed).items()}
    return Diversity(float(np.mean(list(per_class.values()))), per_class, pairs, num_scales(x.shape[2], x.shape[3]))


def _score_ms_ssim(inputs: MetricInputs) -> MetricValue:
    from geneval.metrics.memorisation import images_at

    pairs, seed = inputs.params["ms_ssim_pairs"], inputs.options.seed
    labels = inputs.gen.labels if inputs.gen.labels is not None else np.zeros(inputs.gen.count, np.int64)
    chosen = draw_pairs(labels, pairs=pairs, seed=seed)
    wanted = sorted({int(i) for idx in chosen.values() for i in idx.ravel()})
    images = dict(zip(wanted, images_at(inputs.gen_source, wanted)))
    per_class = {}
    for c, idx in chosen.items():
        a = np.stack([images[int(i)] for i in idx[:, 0]])
        b = np.stack([images[int(i)] for i in idx[:, 1]])
        per_class[c] = float(ms_ssim(a, b).mean())
    h, w = next(iter(images.values())).shape[1:]
    details = {"per_class": {str(c): v for c, v in per_class.items()} if inputs.gen.labels is not None else None,
               "pairs_per_class": pairs, "seed": seed, "scales": num_scales(h, w)}
    return MetricValue(float(np.mean(list(per_class.values()))), None, details)


register_metric(MetricSpec(
    "ms_ssim", "MS-SSIM (within set)", higher_is_better=False, needs_reference=False, reference_needs_features=False,
    compute=_score_ms_ssim, layer_role="images",
    params=(Param("ms_ssim_pairs", int, DEFAULT_PAIRS, "MS-SSIM diversity: random pairs per class.", min=1),),
    reference="Odena et al. 2017 (AC-GAN §4.2); MS-SSIM of Wang et al. 2003 as in pytorch_msssim",
))
