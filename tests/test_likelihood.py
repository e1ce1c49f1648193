"""geneval.likelihood: bits/dim arithmetic, dequantisation, conventions and the streaming evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geneval import likelihood
from geneval.errors import GenevalInputError
from geneval.likelihood import (
    EIGHT_BIT,
    DataConvention,
    binary_dynamic,
    binary_static,
    dequantize,
    discrete_log_prob,
    evaluate,
    nats_to_bits_per_dim,
)


class Uniform256:
    """Every 8-bit image equally likely: log P(x) = −D·log 256."""

    kind = "exact"
    convention = EIGHT_BIT

    def log_prob(self, x, labels=None):
        return torch.full((len(x),), -x[0].numel() * math.log(256), dtype=torch.float64)


def test_uniform_model_over_256_levels_is_exactly_8_bits_per_dim(fashion_mnist_dir):
    result = evaluate(Uniform256(), "fashion-mnist:test", batch_size=999)
    assert result.num_examples == 10_000 and result.num_dims == 784
    assert result.bits_per_dim == 8.0
    assert f"{result.bits_per_dim:.3f}" == "8.000"
    assert result.nats_std_err == 0.0
    assert result.nats == pytest.approx(784 * math.log(256), rel=1e-15)
    assert result.kind == "exact" and not result.bound


class PixelCategorical:
    """A factorised model: pixel d takes value v with probability q[d, v] (Laplace-smoothed train counts)."""

    kind = "exact"
    convention = EIGHT_BIT

    def __init__(self, train_uint8: np.ndarray):
        n, d = len(train_uint8), train_uint8[0].size
        flat = train_uint8.reshape(n, d).astype(np.int64)
        counts = np.bincount((np.arange(d) * 256 + flat).ravel(), minlength=d * 256).reshape(d, 256)
        self.log_q = torch.from_numpy(np.log((counts + 1.0) / (n + 256.0)))  # float64 [D, 256]

    def log_prob(self, x, labels=None):
        flat = x.reshape(len(x), -1).long()
        return self.log_q.gather(1, flat.T).sum(0)  # [B]


def test_factorised_categorical_fitted_on_train_matches_an_independent_computation(fashion_mnist_dir):
    from geneval.datasets import open_dataset

    train, _, _ = open_dataset("fashion-mnist", "train")
    test, _, _ = open_dataset("fashion-mnist", "test")
    model = PixelCategorical(train)
    result = evaluate(model, "fashion-mnist:test", batch_size=3333)  # 3333 does not divide 10000

    # Independently: test counts per (pixel, value), weighted by the same smoothed log-probabilities.
    n, d = len(train), 784
    train_counts = np.stack([np.bincount(train.reshape(n, d)[:, j], minlength=256) for j in range(d)])
    log_q = np.log((train_counts + 1.0) / (n + 256.0))
    test_counts = np.stack([np.bincount(test.reshape(len(test), d)[:, j], minlength=256) for j in range(d)])
    expected_nats = -(test_counts * log_q).sum() / len(test)
    expected_bpd = expected_nats / (d * math.log(2))
    assert result.num_examples == 10_000
    assert result.nats == pytest.approx(expected_nats, rel=1e-12)
    assert result.bits_per_dim == pytest.approx(expected_bpd, rel=1e-12)
    assert 4.0 < result.bits_per_dim < 6.0  # a sanity range for Fashion-MNIST under an independent-pixel model
    per_example = -model.log_prob(torch.from_numpy(test.copy())).numpy()
    assert result.nats_std_err == pytest.approx(per_example.std(ddof=1) / math.sqrt(len(test)), rel=1e-9)


@pytest.mark.parametrize("value_range,low,high", [("0,1", 0.0, 1.0), ("-1,1", -1.0, 1.0)])
def test_dequantised_density_equals_discrete_likelihood_for_a_piecewise_constant_density(value_range, low, high):
    """p(y) = q[cell(y)] / cell width per dimension: the dequantised log-density plus the cell volume term
    is exactly log P(x) = Σ_d log q_d[x_d], for any dequantisation noise u."""
    g = torch.Generator().manual_seed(0)
    num_dims = 12
    q = torch.rand(num_dims, 256, generator=g, dtype=torch.float64) + 0.01
    q = q / q.sum(1, keepdim=True)
    x = torch.randint(0, 256, (50, 1, 3, 4), generator=g).to(torch.uint8)
    width = (high - low) / 256.0

    def log_density(y):  # the piecewise-constant density on [low, high]^D
        cell = torch.floor((y - low) / width).long().clamp(0, 255).reshape(len(y), -1)
        return (q.log().gather(1, cell.T).T - math.log(width)).sum(1)

    exact = q.log().gather(1, x.reshape(50, -1).long().T).T.sum(1)
    for trial in range(3):
        y = dequantize(x, value_range=value_range, generator=torch.Generator().manual_seed(trial))
        assert y.dtype == torch.float64 and y.min() >= low and y.max() < high
        got = discrete_log_prob(log_density(y), num_dims=num_dims, value_range=value_range)
        torch.testing.assert_close(got, exact, rtol=0, atol=1e-10)
    # the constant term itself: −D·log 256 on [0, 1], −D·log 128 on [−1, 1]
    zero = discrete_log_prob(torch.zeros(1), num_dims=num_dims, value_range=value_range)
    assert float(zero) == pytest.approx(-num_dims * math.log(256 / (high - low)), rel=1e-15)


def test_bits_per_dim_and_bad_inputs():
    assert nats_to_bits_per_dim(784 * math.log(2), num_dims=784) == pytest.approx(1.0, rel=1e-15)
    assert likelihood.bits_per_dim_to_nats(1.0, num_dims=784) == pytest.approx(784 * math.log(2))
    with pytest.raises(GenevalInputError, match="num_dims"):
        nats_to_bits_per_dim(1.0, num_dims=0)
    with pytest.raises(GenevalInputError, match="0,1"):
        dequantize(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), value_range="0,255")
    for kind in ("exact", "elbo", "vlb", "iwae-1", "iwae-1000"):
        assert likelihood.check_kind(kind) == kind
    for kind in ("iwae", "iwae-0", "bound", None):
        with pytest.raises(GenevalInputError, match="kind"):
            likelihood.check_kind(kind)
    with pytest.raises(GenevalInputError, match="threshold"):
        DataConvention("binary", "static")
    with pytest.raises(GenevalInputError, match="seed"):
        DataConvention("binary", "dynamic")
    with pytest.raises(GenevalInputError, match="8-bit"):
        DataConvention("8bit", seed=1)


class Recorder:
    """Returns −(index encoded in the image) and remembers which examples it was shown."""

    kind = "elbo"
    convention = EIGHT_BIT

    def __init__(self):
        self.seen: list[int] = []

    def log_prob(self, x, labels=None):
        index = x[:, 0, 0, 0].long() * 256 + x[:, 0, 0, 1].long()
        self.seen.extend(index.tolist())
        return -index.double()


@pytest.mark.parametrize("batch_size", [1, 7, 100, 1003, 5000])
def test_streaming_evaluation_counts_every_example_once(batch_size):
    n = 1003
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) // 256
    images[:, 0, 0, 1] = torch.arange(n) % 256
    model = Recorder()
    result = evaluate(model, images, batch_size=batch_size)
    assert sorted(model.seen) == list(range(n))
    assert result.num_examples == n
    assert result.nats == pytest.approx((n - 1) / 2, rel=1e-14)  # mean of 0..n-1
    assert result.nats_std_err == pytest.approx(np.arange(n).std(ddof=1) / math.sqrt(n), rel=1e-12)
    assert result.bound and result.kind == "elbo"


def test_a_model_that_drops_examples_is_an_error():
    class Dropper(Recorder):
        def log_prob(self, x, labels=None):
            return super().log_prob(x)[: max(1, len(x) - 1)]

    with pytest.raises(GenevalInputError, match="returned 9 values for a batch of 10"):
        evaluate(Dropper(), torch.zeros(20, 1, 2, 2, dtype=torch.uint8), batch_size=10)


def test_binarisation_conventions_are_per_example_and_recorded():
    x = torch.randint(0, 256, (40, 1, 5, 5), generator=torch.Generator().manual_seed(3)).to(torch.uint8)
    dyn = binary_dynamic(seed=7)
    whole = dyn.prepare(x, first_index=0)
    parts = torch.cat([dyn.prepare(x[:13], first_index=0), dyn.prepare(x[13:], first_index=13)])
    assert torch.equal(whole, parts) and set(whole.unique().tolist()) <= {0, 1}
    assert not torch.equal(whole, binary_dynamic(seed=8).prepare(x, first_index=0))
    # Bernoulli(x/255): black pixels stay 0, white pixels stay 1
    x[:, :, 0, 0], x[:, :, 0, 1] = 0, 255
    out = dyn.prepare(x, first_index=0)
    assert out[:, :, 0, 0].eq(0).all() and out[:, :, 0, 1].eq(1).all()
    static = binary_static(0.5).prepare(x, first_index=0)
    assert torch.equal(static, (x >= 128).to(torch.uint8))
    assert "seed 7" in dyn.as_dict()["description"] and dyn.as_dict()["levels"] == 2
