"""FID, IS and KID as pure functions: closed forms, constructed cases, and the peers' own functions."""

import logging

import numpy as np
import pytest
import scipy.linalg
import torch

from geneval import fid, inception_score, kid
from geneval.errors import GenevalInputError
from geneval.metrics.fid import frechet_distance
from geneval.metrics.kid import polynomial_mmd2_unbiased
from geneval.stats import GaussianStats


def _random_stats(rng, n, d, scale=1.0, shift=0.0):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale / np.sqrt(d) + shift
    return x, x.mean(0), np.cov(x, rowvar=False)


# ---- FID ----------------------------------------------------------------------------------------------------

def test_fid_closed_form_for_commuting_covariances():
    # Diagonal covariances commute: FID = ‖μ₁−μ₂‖² + Σᵢ (σ₁ᵢ − σ₂ᵢ)².
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    expected = (1 + 0 + 4) + (1 - 4) ** 2 + (4 - 1) ** 2 + 0
    assert frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(expected, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 64)) + 3
    assert abs(fid(x, x)) < 1e-6
    assert abs(fid(x, x[::-1].copy())) < 1e-6  # order does not matter


def test_fid_matches_scipy_sqrtm_reference():
    rng = np.random.default_rng(2)
    _, mu1, s1 = _random_stats(rng, 4000, 128)
    _, mu2, s2 = _random_stats(rng, 4000, 128, scale=1.3, shift=0.2)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert fid((mu2, s2), (mu1, s1)) == pytest.approx(expected, rel=1e-10)
    assert fid((mu1, s1), (mu2, s2)) == pytest.approx(expected, rel=1e-10)


def test_fid_accepts_features_stats_and_tensors_alike():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 0.5
    value = fid(a, b)
    assert fid(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(value, rel=1e-12)
    assert fid(GaussianStats.from_features(a), (b.mean(0), np.cov(b, rowvar=False))) == pytest.approx(value, rel=1e-12)


def test_fid_warns_when_n_is_not_above_dimension(caplog):
    rng = np.random.default_rng(4)
    with caplog.at_level(logging.WARNING):
        value = fid(rng.normal(size=(10, 16)), rng.normal(size=(100, 16)))
    assert np.isfinite(value) and "N=10 ≤ feature dimension 16" in caplog.text


def test_fid_errors():
    with pytest.raises(GenevalInputError, match="generated set has 1 sample"):
        fid(np.ones((1, 4)), np.random.default_rng(0).normal(size=(10, 4)))
    with pytest.raises(GenevalInputError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(GenevalInputError, match="sigma2 contains NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.nan))


def test_fid_matches_torch_fidelity_and_pytorch_fid_on_the_same_statistics():
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(5)
    _, mu1, s1 = _random_stats(rng, 3000, 96)
    _, mu2, s2 = _random_stats(rng, 3000, 96, scale=0.8, shift=-0.1)
    ours = fid((mu1, s1), (mu2, s2))
    theirs = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    assert ours == pytest.approx(theirs["frechet_inception_distance"], rel=1e-9)
    assert ours == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-9)


# ---- Inception Score ----------------------------------------------------------------------------------------

def test_is_closed_form_confident_balanced_classes_gives_k():
    k, per_class = 10, 20
    logits = np.full((k * per_class, k), -1e3)
    labels = np.tile(np.arange(k), per_class)  # each split holds every class equally
    logits[np.arange(len(labels)), labels] = 0.0
    assert inception_score(logits, splits=10).mean == pytest.approx(k, rel=1e-9)


def test_is_of_identical_predictions_is_one():
    logits = np.tile(np.random.default_rng(0).normal(size=(1, 7)), (100, 1))
    estimate = inception_score(logits, splits=5)
    assert estimate.mean == pytest.approx(1.0, abs=1e-12) and estimate.std < 1e-12


@pytest.mark.parametrize("shuffle", [False, True])
def test_is_matches_torch_fidelity(shuffle):
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(6).normal(size=(250, 1008)).astype(np.float32) * 3
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=shuffle, rng_seed=2020)
    ours = inception_score(logits, splits=10, shuffle_seed=2020 if shuffle else None)
    assert ours.mean == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
    assert ours.std == pytest.approx(theirs["inception_score_std"], rel=1e-9)


def test_is_errors():
    with pytest.raises(GenevalInputError, match="15 samples cannot fill 10 splits"):
        inception_score(np.zeros((15, 3)))
    with pytest.raises(GenevalInputError, match="NaN"):
        inception_score(np.full((40, 3), np.nan))


# ---- KID ----------------------------------------------------------------------------------------------------

def test_mmd_matches_the_definition_by_explicit_loops():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 1
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(2000, 32)), rng.normal(size=(2000, 32))
    estimate = kid(a, b, subsets=50, subset_size=500)
    assert abs(estimate.mean) < 3 * estimate.std / np.sqrt(50) + 1e-4
    assert kid(a, b + 0.5, subsets=10, subset_size=500).mean > 10 * abs(estimate.mean)


def test_kid_matches_torch_fidelity_exactly_on_the_same_features():
    """Same subsets (same RandomState draws), same kernel. torch-fidelity evaluates kernels in the features'
    dtype: given float64 features both are float64 and agree to rounding; given float32 ones its float32 kernel
    sums carry ~1e-6 relative error in each MMD², which the mean averages out but the std (a difference of
    nearly equal MMD²s) does not — so on float32 input only the mean is held to the 1e-5 criterion."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(9)
    gen = (rng.random(size=(300, 2048)) * 2).astype(np.float32)
    ref = (rng.random(size=(260, 2048)) * 2.1).astype(np.float32)
    ours = kid(gen, ref, subsets=20, subset_size=200, seed=2020)

    def theirs(dtype):
        return kid_features_to_metric(
            torch.from_numpy(gen.astype(dtype)), torch.from_numpy(ref.astype(dtype)), kid_subsets=20,
            kid_subset_size=200, rng_seed=2020, verbose=False,
        )

    exact = theirs(np.float64)
    assert ours.mean == pytest.approx(exact["kernel_inception_distance_mean"], rel=1e-10)
    assert ours.std == pytest.approx(exact["kernel_inception_distance_std"], rel=1e-8)
    float32 = theirs(np.float32)
    assert ours.mean == pytest.approx(float32["kernel_inception_distance_mean"], rel=1e-5)
    assert ours.std == pytest.approx(float32["kernel_inception_distance_std"], rel=5e-3)


def test_kid_subset_size_rules():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(80, 4))
    assert len(kid(a, b, subsets=3).values) == 3  # default size min(1000, 50, 80) = 50
    with pytest.raises(GenevalInputError, match="subset size 60 exceeds the number of samples"):
        kid(a, b, subset_size=60)
    with pytest.raises(GenevalInputError, match="dimensions differ"):
        kid(a, rng.normal(size=(80, 5)))
