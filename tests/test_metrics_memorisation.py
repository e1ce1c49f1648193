"""Memorisation: copies are flagged, fresh samples sit at the calibrated rate, the PNG of closest pairs is written."""

import numpy as np
import pytest
from PIL import Image

from geneval import memorisation, score
from geneval.errors import GenevalInputError


def _images(seed, n):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 1, 6, 6), dtype=np.uint8)


def _features(images):
    return images.reshape(len(images), -1).astype(np.float64) / 255


def test_copies_are_flagged_and_fresh_samples_are_not():
    train, heldout = _features(_images(0, 2000)), _features(_images(1, 1000))
    fresh = memorisation(_features(_images(2, 1000)), train, heldout, quantile=0.05, chunk_size=300)
    assert 0.01 < fresh.fraction_below < 0.1 and 0.2 < fresh.ratio < 2
    copies = np.concatenate([train[:500], _features(_images(3, 500))])
    copied = memorisation(copies, train, heldout, quantile=0.05)
    assert copied.fraction_below >= 0.5 and copied.ratio > 9
    pairs = copied.closest_pairs(5)
    assert all(d == 0.0 and t == g for g, t, d in pairs)  # exact copies: distance 0, nearest is the original


def test_nearest_training_distances_are_exact():
    rng = np.random.default_rng(4)
    gen, train, held = rng.normal(size=(60, 5)), rng.normal(size=(90, 5)), rng.normal(size=(40, 5))
    result = memorisation(gen, train, held, quantile=0.1, chunk_size=16)
    d = np.sqrt(((gen[:, None] - train[None]) ** 2).sum(-1))
    assert np.array_equal(result.gen_nearest, d.argmin(1))
    assert np.allclose(result.gen_distances, d.min(1), rtol=1e-14, atol=0)


def test_score_writes_the_closest_pairs_png(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    train, heldout = _images(5, 400), _images(6, 200)
    gen = np.concatenate([train[:20], _images(7, 80)])
    record = score(gen, train, metrics=("memorisation",), features="pixels", heldout=heldout,
                   memorisation_quantile=0.05, out_dir=str(tmp_path / "out"), progress=False)
    result = record["memorisation"]
    assert result.value >= 0.2 and result.details["closest_pairs"][0]["distance"] == 0.0
    png = Image.open(result.details["pairs_png"])
    assert png.size == ((16 * 8 + 2) * 2, (2 * 8 + 2) * 2)  # 16 pairs: generated row above training row, scale 2
    with pytest.raises(GenevalInputError, match="needs held-out real samples"):
        score(gen, train, metrics=("memorisation",), features="pixels", progress=False)


def test_errors():
    x = np.zeros((10, 3))
    with pytest.raises(GenevalInputError, match="quantile 0.01 of 10 held-out samples is less than one sample"):
        memorisation(x, x, x)
    with pytest.raises(GenevalInputError, match="feature dimensions differ: generated 3, training 3, held-out 2"):
        memorisation(x, x, x[:, :2], quantile=0.5)
