"""NDB (Richardson & Weiss 2018): z-test and JS closed forms, k-means on separated clusters, a dropped mode."""

import numpy as np
import pytest
from scipy.stats import norm

from geneval import ndb
from geneval.errors import GenevalInputError
from geneval.metrics.ndb import js_divergence, kmeans, two_proportion_z


def test_two_proportion_z_closed_form():
    # 30/100 vs 50/100: pooled 0.4, se = sqrt(0.4·0.6·0.02), z = 0.2 / se.
    z = two_proportion_z(np.array([0.3, 0.0]), 100, np.array([0.5, 0.0]), 100)
    assert z[0] == pytest.approx(0.2 / np.sqrt(0.4 * 0.6 * 0.02), rel=1e-12) and z[1] == 0.0
    assert z[0] == pytest.approx(2.88675, abs=1e-5) and 2 * norm.sf(z[0]) == pytest.approx(0.003892, abs=1e-6)


def test_js_divergence_closed_form():
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert js_divergence(p, q) == pytest.approx(np.log(2), rel=1e-12)
    assert js_divergence(p, p) == 0.0


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    x = centres[np.arange(400) % 4] + rng.normal(size=(400, 2)) * 0.3
    found = kmeans(x, k=4, seed=1)
    assert np.allclose(np.sort(found, axis=0), np.sort(centres, axis=0), atol=0.1)


def _mixture(seed, n, weights):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(len(weights), 8)) * 10
    which = rng.choice(len(weights), n, p=weights)
    return centres[which] + rng.normal(size=(n, 8)), which


def test_same_distribution_gives_few_different_bins_and_a_dropped_mode_is_counted():
    weights = np.full(10, 0.1)
    ref, _ = _mixture(1, 5000, weights)
    same, _ = _mixture(2, 3000, weights)
    fine = ndb(same, ref, bins=20, seed=0)
    assert fine.ndb_over_k <= 0.15 and fine.js_divergence < 0.01
    gen, which = _mixture(3, 3000, weights)
    dropped = ndb(gen[which != 0], ref, bins=20, seed=0)
    empty_bins = dropped.gen_proportions == 0
    assert empty_bins.any() and dropped.different[empty_bins].all() and dropped.ndb > fine.ndb
    assert dropped.js_divergence > 10 * fine.js_divergence


def test_errors():
    ref, _ = _mixture(4, 50, np.full(2, 0.5))
    with pytest.raises(GenevalInputError, match="100 bins need at least 100 reference samples; the reference has 50"):
        ndb(ref, ref)
    with pytest.raises(GenevalInputError, match="feature dimensions differ"):
        ndb(ref[:, :3], ref, bins=5)
    with pytest.raises(GenevalInputError, match="significance level must be in"):
        ndb(ref, ref, bins=5, alpha=1.5)


def test_through_score(tmp_path, monkeypatch):
    from geneval import score

    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 256, size=(400, 1, 4, 4), dtype=np.uint8)
    gen = rng.integers(0, 256, size=(300, 1, 4, 4), dtype=np.uint8)
    record = score(gen, ref, metrics=("ndb",), features="pixels", ndb_bins=10, seed=1, progress=False)
    features = lambda x: x.reshape(len(x), -1).astype(np.float32) / np.float32(255)
    expected = ndb(features(gen), features(ref), bins=10, seed=1)
    assert record["ndb"].value == expected.ndb_over_k
    assert record["ndb"].details["js_divergence_nats"] == pytest.approx(expected.js_divergence, rel=1e-12)
