"""FD∞ (Chong & Forsyth 2020): the reference procedure reproduced step by step, and the 1/N bias removed on Gaussians."""

import numpy as np
import pytest

from geneval import fd_infinity, fid
from geneval.errors import GenevalInputError
from geneval.stats import GaussianStats


def test_equals_the_reference_procedure_with_the_same_subsets():
    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(2000, 8)) + 0.3, rng.normal(size=(3000, 8))
    result = fd_infinity(gen, ref, num_points=5, seed=7)
    draw = np.random.default_rng(7)
    sizes = np.linspace(200, 2000, 5).astype(int)
    fids = [fid(gen[draw.permutation(2000)[:n]], ref) for n in sizes]
    slope, intercept = np.polyfit(1 / sizes, fids, 1)  # = sklearn LinearRegression on (1/N, FID_N)
    assert result.sizes == tuple(sizes) and result.fids == pytest.approx(fids, rel=1e-12)
    assert result.value == pytest.approx(intercept, rel=1e-10) and result.slope == pytest.approx(slope, rel=1e-10)
    assert fd_infinity(gen, GaussianStats.from_features(ref), num_points=5, seed=7).value == pytest.approx(result.value)


def test_removes_the_finite_sample_bias_on_gaussians():
    dim, shift = 32, 0.25
    rng = np.random.default_rng(1)
    gen = rng.normal(size=(4000, dim)) + shift
    true_fid = dim * shift**2  # N(shift·1, I) vs N(0, I), with the reference statistics exact
    ref = (np.zeros(dim), np.eye(dim))
    result = fd_infinity(gen, ref, num_points=10, seed=0)
    assert result.fids[0] - true_fid > 0.1  # FID at N = 400 is biased upwards …
    assert abs(result.value - true_fid) < 0.3 * abs(result.fids[-1] - true_fid)  # … FD∞ much less so


def test_errors():
    x = np.random.default_rng(2).normal(size=(100, 4))
    with pytest.raises(GenevalInputError, match="need at least 2 points"):
        fd_infinity(x, x, num_points=1)
    with pytest.raises(GenevalInputError, match=r"smallest subset \(100\) must be ≥ 2 and below the number of samples"):
        fd_infinity(x, x, min_num=100)
    with pytest.raises(GenevalInputError, match="feature dimensions differ"):
        fd_infinity(x, x[:, :3])


def test_through_score_with_a_statistics_file(tmp_path, monkeypatch):
    from geneval import score
    from geneval.stats_io import write_stats_npz

    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    gen = rng.integers(0, 256, size=(500, 1, 2, 2), dtype=np.uint8)
    ref_features = rng.normal(0.5, 0.2, size=(800, 4))
    path = write_stats_npz(tmp_path / "ref.npz", GaussianStats.from_features(ref_features), {"extractor": "pixels"})
    record = score(gen, str(path), metrics=("fd_infinity",), features="pixels", fd_inf_points=4, seed=2,
                   progress=False)
    features = gen.reshape(500, -1).astype(np.float32) / np.float32(255)
    expected = fd_infinity(features, GaussianStats.from_features(ref_features), num_points=4, seed=2)
    assert record["fd_infinity"].value == pytest.approx(expected.value, rel=1e-9)
    assert record["fd_infinity"].details["sizes"] == list(expected.sizes)
