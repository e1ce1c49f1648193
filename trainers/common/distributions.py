"""Output distributions shared by the families whose decoders model 8-bit pixels (the VAE, the VQ-VAE)."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of uint8 values x under a logistic on [−1, 1] discretised into 256 bins, per pixel.

    P(x) = σ((x' + 1/255 − μ)/s) − σ((x' − 1/255 − μ)/s), x' = x/127.5 − 1; the 0 and 255 bins extend to ∓∞.
    Where the difference underflows, the density at the bin centre times the bin width (2/255) stands in
    (PixelCNN++ does the same).
    """
    xs = x.float() / 127.5 - 1.0
    inv_s = torch.exp(-log_scale)
    plus = inv_s * (xs + 1.0 / 255.0 - mean)
    minus = inv_s * (xs - 1.0 / 255.0 - mean)
    log_cdf_plus = plus - F.softplus(plus)  # log σ(plus), for the x = 0 bin
    log_one_minus_cdf_minus = -F.softplus(minus)  # log (1 − σ(minus)), for the x = 255 bin
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * (xs - mean)
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid)  # log density of the logistic at the bin centre
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid + math.log(2.0 / 255.0))
    return torch.where(x == 0, log_cdf_plus, torch.where(x == 255, log_one_minus_cdf_minus, inner))
