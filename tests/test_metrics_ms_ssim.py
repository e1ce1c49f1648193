"""MS-SSIM: closed forms (identical, constant images), SSIM by explicit loops, within-set diversity, errors.

No MS-SSIM peer is installed in the test environment (pytorch_msssim, torchmetrics); the formulation follows theirs
and is checked here against the definition instead."""

import numpy as np
import pytest

from geneval import ms_ssim, ms_ssim_diversity, score
from geneval.errors import GenevalInputError
from geneval.metrics.ms_ssim import WEIGHTS, num_scales


def test_identical_images_give_one():
    x = np.random.default_rng(0).integers(0, 256, size=(4, 3, 32, 32), dtype=np.uint8)
    assert np.allclose(ms_ssim(x, x), 1.0, atol=1e-12)


def test_constant_images_closed_form():
    a, b = np.full((1, 1, 28, 28), 100, np.uint8), np.full((1, 1, 28, 28), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    luminance = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    exponent = WEIGHTS[1] / (WEIGHTS[0] + WEIGHTS[1])  # 28×28 holds 2 scales; contrast-structure terms are 1
    assert num_scales(28, 28) == 2
    assert ms_ssim(a, b)[0] == pytest.approx(luminance**exponent, rel=1e-12)


def test_single_scale_equals_ssim_by_explicit_loops():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 255, size=(2, 1, 1, 13, 12))
    t = np.arange(11) - 5
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / g.sum() ** 2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(3):
        for j in range(2):
            px, py = x[0, 0, i : i + 11, j : j + 11], y[0, 0, i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy, cxy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2, (w * px * py).sum() - mx * my
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    assert ms_ssim(x, y, scales=1)[0] == pytest.approx(np.mean(values), rel=1e-10)


def test_diversity_orders_sets_and_keeps_classes():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, size=(1, 1, 32, 32))
    collapsed = np.clip(base + rng.normal(0, 3, size=(40, 1, 32, 32)), 0, 255).astype(np.uint8)
    diverse = rng.integers(0, 256, size=(40, 1, 32, 32), dtype=np.uint8)
    low, high = ms_ssim_diversity(diverse, pairs=20), ms_ssim_diversity(collapsed, pairs=20)
    assert high.mean > 0.9 and low.mean < 0.2
    both = ms_ssim_diversity(np.concatenate([collapsed, diverse]), np.repeat([0, 1], 40), pairs=20, seed=3)
    assert both.per_class[0] > 0.9 and both.per_class[1] < 0.2
    assert both.mean == pytest.approx((both.per_class[0] + both.per_class[1]) / 2)


def test_through_score(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    images = np.random.default_rng(4).integers(0, 256, size=(30, 1, 16, 16), dtype=np.uint8)
    record = score(images, None, metrics=("ms_ssim",), features="pixels", ms_ssim_pairs=10, progress=False)
    expected = ms_ssim_diversity(images, pairs=10, seed=2020).mean  # pairs drawn with the run's seed
    assert record["ms_ssim"].value == pytest.approx(expected, rel=1e-12)
    assert record.provenance["extractor"]["layers"] == {"ms_ssim": None}


def test_errors():
    with pytest.raises(GenevalInputError, match="smaller than the 11-pixel window"):
        ms_ssim(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)))
    with pytest.raises(GenevalInputError, match="expected two equal"):
        ms_ssim(np.zeros((1, 1, 16, 16)), np.zeros((2, 1, 16, 16)))
    with pytest.raises(GenevalInputError, match="class 1 has 1 sample"):
        ms_ssim_diversity(np.zeros((3, 1, 16, 16), np.uint8), np.array([0, 0, 1]))
