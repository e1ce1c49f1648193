"""SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to structural
similarity") and the paired-output metrics built with it: per-sample L1, PSNR and SSIM of outputs against targets.

SSIM is the paper's: an 11×11 Gaussian window with σ = 1.5 applied separably without padding (so the mean is over
the valid region only), K1 = 0.01, K2 = 0.03, data range 255, population (not sample) variances, the map averaged
over positions and then over channels. That is scikit-image's ``structural_similarity(a, b, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)`` (tests/test_ssim.py compares them). MS-SSIM
(``ms_ssim.py``) uses these same terms. Arithmetic is float64.

PSNR = 10 log10(255² / MSE) per image (MSE over all pixels and channels; identical images → +inf); L1 is the mean
absolute difference per image, in 0…255 units.

As ``geneval score --metrics l1,psnr,ssim --targets T``: each sample against its target (``geneval.paired``), the
mean over pairs ± its standard error; PSNR averages the finite values and counts identical pairs apart.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, register_metric

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _window() -> torch.Tensor:
    x = torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(image, channel) mean SSIM and mean contrast-structure term, each ``[B, C]``."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    var_x = _blur(x * x, g) - mu_x**2
    var_y = _blur(y * y, g) - mu_y**2
    cov = _blur(x * y, g) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def _pairs(outputs, targets, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(np.asarray(outputs)).double(), torch.as_tensor(np.asarray(targets)).double()
    if x.ndim != 4 or x.shape != y.shape:
        raise GenevalInputError(f"{what}: outputs have shape {list(x.shape)} and targets {list(y.shape)}; "
                                "expected two equal [N, C, H, W] batches")
    return x, y


def ssim(outputs, targets, *, data_range: float = 255.0) -> np.ndarray:
    """SSIM of each pair ``outputs[i], targets[i]`` (``[N, C, H, W]``, uint8 or float in [0, data_range]) → ``[N]``."""
    x, y = _pairs(outputs, targets, "SSIM")
    if min(x.shape[2:]) < WINDOW:
        raise GenevalInputError(f"SSIM: images of {x.shape[2]}×{x.shape[3]} are smaller than the {WINDOW}-pixel window")
    return _ssim_terms(x, y, _window(), data_range)[0].mean(dim=1).numpy()


def psnr(outputs, targets, *, data_range: float = 255.0) -> np.ndarray:
    """PSNR in dB of each pair → ``[N]`` (inf where the images are identical)."""
    x, y = _pairs(outputs, targets, "PSNR")
    mse = ((x - y) ** 2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse.numpy())


def l1(outputs, targets) -> np.ndarray:
    """Mean absolute difference of each pair, in the images' units → ``[N]``."""
    x, y = _pairs(outputs, targets, "L1")
    return (x - y).abs().flatten(1).mean(1).numpy()


# ---------------------------------------------------------------------------------- as registered metrics

PAIR_BATCH = 256


def _per_pair(inputs: MetricInputs) -> dict[str, np.ndarray]:
    """L1, PSNR and SSIM of every (sample, target) pair, in one pass over both sources (shared by the three)."""

    def compute():
        parts: dict[str, list] = {"l1": [], "psnr": [], "ssim": []}
        small = min(inputs.gen_source.image_shape[1:]) < WINDOW
        for (x, _), (y, _) in zip(inputs.gen_source.batches(PAIR_BATCH), inputs.targets_source.batches(PAIR_BATCH)):
            parts["l1"].append(l1(x, y))
            parts["psnr"].append(psnr(x, y))
            if not small:
                parts["ssim"].append(ssim(x, y))
        return {k: np.concatenate(v) for k, v in parts.items() if v}

    return inputs.cache.get("paired_images", compute)


def _mean_and_error(values: np.ndarray, details: dict | None = None) -> MetricValue:
    finite = values[np.isfinite(values)]
    value = float(finite.mean()) if len(finite) else float("inf")  # all pairs identical: PSNR is infinite
    std = float(finite.std(ddof=1) / np.sqrt(len(finite))) if len(finite) > 1 else None
    return MetricValue(value, std, {"pairs": int(len(values)), "std": "standard error over pairs", **(details or {})})


def _paired(name: str):
    def compute(inputs: MetricInputs) -> MetricValue:
        values = _per_pair(inputs)
        if name not in values:
            raise GenevalInputError(f"SSIM: images of {list(inputs.gen_source.image_shape[1:])} are smaller than the "
                                    f"{WINDOW}-pixel window")
        details = {"identical_pairs": int((~np.isfinite(values[name])).sum())} if name == "psnr" else {}
        return _mean_and_error(values[name], details)

    return compute


for _name, _label, _higher in (("l1", "L1 to target", False), ("psnr", "PSNR to target (dB)", True),
                               ("ssim", "SSIM to target", True)):
    register_metric(MetricSpec(
        _name, _label, higher_is_better=_higher, needs_reference=False, reference_needs_features=False,
        compute=_paired(_name), layer_role="images", needs_targets=True,
        reference="Wang et al. 2004 (SSIM); scikit-image structural_similarity" if _name == "ssim" else
        "per-pair definition (Isola et al. 2017 report L1 and per-pixel scores)",
    ))
