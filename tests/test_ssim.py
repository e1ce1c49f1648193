"""Paired-output metrics (geneval/metrics/ssim.py): SSIM equals scikit-image's Wang et al. 2004 SSIM, PSNR and L1
their definitions, and MS-SSIM's last scale is that same SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geneval.errors import GenevalInputError
from geneval.metrics.ms_ssim import ms_ssim
from geneval.metrics.ssim import l1, psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (the test extra) is not installed")


def pairs(n, c, h, w, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    noise = rng.normal(0, 25, (n, c, h, w))
    b = np.clip(a.astype(np.float64) * 0.8 + 20 + noise, 0, 255).astype(np.uint8)  # related, not equal
    return a, b


def reference(a, b):
    """scikit-image, exactly the options the issue names; channels last for RGB."""
    out = []
    for x, y in zip(a, b):
        if x.shape[0] == 1:
            out.append(skimage_metrics.structural_similarity(
                x[0], y[0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255))
        else:
            out.append(skimage_metrics.structural_similarity(
                x.transpose(1, 2, 0), y.transpose(1, 2, 0), gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, data_range=255, channel_axis=-1))
    return np.array(out)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 17, 23)])
def test_ssim_equals_scikit_image(shape):
    a, b = pairs(5, *shape)
    ours, theirs = ssim(a, b), reference(a, b)
    assert np.max(np.abs(ours - theirs)) <= 1e-6
    assert np.all(ours < 0.99) and np.all(ours > 0.05)  # a non-trivial case: neither identical nor unrelated


def test_ssim_of_identical_images_is_one_and_ms_ssim_last_scale_is_ssim():
    a, b = pairs(3, 1, 28, 28)
    assert np.allclose(ssim(a, a), 1.0, atol=1e-12)
    assert np.allclose(ms_ssim(a, b, scales=1), np.maximum(ssim(a, b), 0), atol=1e-12)  # one scale: SSIM itself


def test_psnr_and_l1_are_their_definitions():
    a, b = pairs(4, 3, 8, 8)
    x, y = a.astype(np.float64), b.astype(np.float64)
    for i in range(4):
        mse = np.mean((x[i] - y[i]) ** 2)
        assert psnr(a, b)[i] == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-12)
        assert l1(a, b)[i] == pytest.approx(np.mean(np.abs(x[i] - y[i])), rel=1e-12)
    assert np.all(np.isinf(psnr(a, a))) and np.all(l1(a, a) == 0)


def test_mismatched_batches_fail_with_both_shapes():
    a, _ = pairs(4, 1, 28, 28)
    with pytest.raises(GenevalInputError, match=r"SSIM: outputs have shape \[4, 1, 28, 28\] and targets \[3, 1, 28, 28\]"):
        ssim(a, a[:3])
    with pytest.raises(GenevalInputError, match="smaller than the 11-pixel window"):
        ssim(a[:, :, :8, :8], a[:, :, :8, :8])
