"""Bootstrap confidence intervals: the percentile interval by hand, seeded wrapping of registered metrics, tables,
each metric's own caveat."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneval import bootstrap, fid, score
from geneval.errors import GenevalInputError


def test_percentile_interval_by_hand():
    x = np.random.default_rng(0).normal(size=200)
    interval = bootstrap(lambda idx: x[idx].mean(), len(x), level=0.9, resamples=300, seed=5)
    rng = np.random.default_rng(5)
    means = [x[rng.integers(0, 200, 200)].mean() for _ in range(300)]
    assert (interval.low, interval.high) == tuple(np.quantile(means, [0.05, 0.95]))
    assert interval.low < x.mean() < interval.high
    assert interval.half_width == pytest.approx(1.645 * x.std() / np.sqrt(200), rel=0.2)  # ≈ the normal theory


def _images(seed, n=80, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120 + shift, 50, size=(n, 1, 16, 16)), 0, 255).astype(np.uint8)


def test_score_wraps_any_metric_and_shows_the_half_width(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    gen, ref = _images(0), _images(1, n=120, shift=10)
    opts = {"metrics": ("fid", "precision", "kid"), "features": "pixels", "kid_subsets": 5, "ci": 0.9, "ci_resamples": 12,
            "ci_seed": 3, "progress": False}
    record = score(gen, ref, **opts)
    for name in ("fid", "precision", "kid"):
        d = record[name].details
        assert d["ci_level"] == 0.9 and d["ci_resamples"] == 12 and d["ci_seed"] == 3
        assert d["ci_low"] <= d["ci_high"] and d["ci_half_width"] == pytest.approx((d["ci_high"] - d["ci_low"]) / 2)
    # The FID interval is the one of FID over the same resamples of the generated features, by hand.
    features = gen.reshape(len(gen), -1).astype(np.float32) / np.float32(255)
    ref_features = ref.reshape(len(ref), -1).astype(np.float32) / np.float32(255)
    by_hand = bootstrap(lambda idx: fid(features[idx], ref_features), len(gen), level=0.9, resamples=12, seed=3)
    assert record["fid"].details["ci_low"] == pytest.approx(by_hand.low, rel=1e-9)
    assert record["fid"].details["ci_high"] == pytest.approx(by_hand.high, rel=1e-9)
    row = next(line for line in record.table().splitlines() if line.startswith("FID"))
    assert f"± {record['fid'].details['ci_half_width']:.4f} (90% CI)" in row
    again = score(gen, ref, **opts)
    assert again["precision"].details["ci_low"] == record["precision"].details["ci_low"]  # seeded
    assert not any("precision" in w for w in record.warnings)  # an ordinary bootstrap: no caveat


def test_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(GenevalInputError, match="confidence level must be in"):
        bootstrap(lambda idx: 0.0, 10, level=95)
    record = score(_images(2, n=20), None, metrics=("ms_ssim",), features="pixels", ms_ssim_pairs=3, ci=0.95,
                   ci_resamples=3, progress=False)
    assert "ci_low" not in record["ms_ssim"].details and any("no bootstrap interval" in w for w in record.warnings)


def test_cli_prints_each_metrics_own_caveat(tmp_path):
    """``geneval score --ci`` warns with the caveat each metric declares where it is registered (``ci_caveat``):
    nothing about k-NN radii for Vendi, PRD or FLD, which use none; nothing for precision (an ordinary bootstrap)."""
    from geneval.metrics import METRICS

    for name, seed in (("gen", 0), ("ref", 1), ("heldout", 2)):
        np.savez(tmp_path / f"{name}.npz", x=_images(seed, n=60, shift=10 * (name == "gen")))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1",
           "GENEVAL_CACHE": str(tmp_path / "cache")}
    names = ("vendi", "prd_f8", "fld", "recall", "precision")
    result = subprocess.run(
        [sys.executable, "-m", "geneval", "score", str(tmp_path / "gen.npz"), "--ref", str(tmp_path / "ref.npz"),
         "--heldout", str(tmp_path / "heldout.npz"), "--features", "pixels", "--metrics", ",".join(names),
         "--prd-runs", "1", "--ci", "0.9", "--ci-resamples", "2", "--no-cache", "-q"],
        check=True, capture_output=True, text=True, env=env)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: --ci:")]
    for name in ("vendi", "prd_f8", "fld", "recall"):
        caveat = METRICS.get(name).ci_caveat
        assert f"warning: --ci: {name}: {caveat}" in warnings
    assert "duplicate KDE centres" in METRICS.get("fld").ci_caveat and "re-runs the k-means" in METRICS.get(
        "prd_f8").ci_caveat and "not distinct" in METRICS.get("vendi").ci_caveat
    assert not any("k-NN radii" in line for line in warnings if "recall" not in line)
    assert not any("precision" in line for line in warnings) and METRICS.get("precision").ci_caveat is None
    assert len(warnings) == 4
