"""Streaming statistics: chunked/merged == one pass == numpy's covariance."""

import numpy as np
import pytest

from geneval.errors import GenevalInputError
from geneval.stats import GaussianStats
from geneval.stats_io import is_stats_file, read_stats_npz, write_stats_npz


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    # A large common offset: raw Σx/Σxxᵀ sums would lose digits here; the pairwise update must not.
    return rng.normal(size=(1000, 16)) * 0.1 + 1e4


def test_one_pass_matches_numpy(features):
    stats = GaussianStats.from_features(features)
    np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-14)
    np.testing.assert_allclose(stats.cov, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 7, 128, 999])
def test_streaming_equals_one_pass(features, chunk):
    streamed = GaussianStats.empty(features.shape[1])
    for start in range(0, len(features), chunk):
        streamed.update(features[start : start + chunk])
    whole = GaussianStats.from_features(features)
    assert streamed.count == whole.count
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(streamed.cov, whole.cov, rtol=1e-8, atol=1e-13)


def test_merge_of_shards_is_order_independent(features):
    shards = [GaussianStats.from_features(part) for part in np.array_split(features, 5)]
    left = shards[0]
    for shard in shards[1:]:
        left = left.merge(shard)
    right = shards[-1]
    for shard in reversed(shards[:-1]):
        right = shard.merge(right)
    np.testing.assert_allclose(left.cov, right.cov, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(left.cov, np.cov(features, rowvar=False), rtol=1e-8, atol=1e-13)


def test_bad_features_are_named():
    with pytest.raises(GenevalInputError, match="NaN"):
        GaussianStats.from_features(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(GenevalInputError, match="2-D"):
        GaussianStats.from_features(np.zeros(5))
    with pytest.raises(GenevalInputError, match="dimension 3 and 4"):
        GaussianStats.empty(3).merge(GaussianStats.from_features(np.ones((2, 4))))
    with pytest.raises(GenevalInputError, match="at least 2"):
        _ = GaussianStats.from_features(np.ones((1, 4))).cov


def test_stats_npz_round_trip_is_readable_by_pytorch_fid_convention(tmp_path, features):
    stats = GaussianStats.from_features(features)
    path = write_stats_npz(tmp_path / "ref.npz", stats, {"extractor": "pixels"})
    assert is_stats_file(path) and not list(tmp_path.glob(".*tmp"))
    with np.load(path) as data:  # exactly what pytorch-fid and TTUR read
        np.testing.assert_array_equal(data["mu"], stats.mean)
        np.testing.assert_array_equal(data["sigma"], stats.cov)
    loaded, provenance = read_stats_npz(path)
    assert loaded.count == 1000 and provenance["extractor"] == "pixels"
    np.testing.assert_array_equal(loaded.cov, stats.cov)


def test_stats_npz_with_wrong_keys(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, mean=np.zeros(3))
    assert not is_stats_file(path)
    with pytest.raises(GenevalInputError, match=r"bad.npz: keys \['mean'\]; expected 'mu' and 'sigma'"):
        read_stats_npz(path)
