"""FLD (Jiralerspong et al. 2023): the reference's algorithm transcribed (autograd, float64), constructed cases, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geneval import fld
from geneval.errors import GenevalInputError

ROOT = Path(__file__).resolve().parents[1]


# ---- marcojira/fld (fld/MoG.py, fld/metrics/FLD.py, eval_feat="test"), transcribed in float64 on the CPU, with
# its np.random.choice shuffles drawn from one seeded Generator in the same order.

def _preprocess(train, test, gen):
    mean, std = test.mean(dim=0), test.std(dim=0)
    return (train - mean) / std, (test - mean) / std, (gen - mean) / std


def _dists(x, g):
    return torch.cdist(x, g) ** 2


class _MoG:
    def __init__(self, mus):
        self.mus, self.m, self.dim = mus, mus.shape[0], mus.shape[1]
        self.log_sigmas = torch.full((self.m,), 0.0, dtype=torch.float64, requires_grad=True)
        self.origin_log_sigma = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)

    def pairwise(self, dists, log_sigmas):
        e = (-0.5 * dists) / torch.exp(log_sigmas)
        e -= (self.dim / 2) * log_sigmas
        e -= (self.dim / 2) * np.log(2 * np.pi)
        return e

    def lls_from_pairwise(self, pairwise, origin=None):
        if origin is None:
            return torch.logsumexp(pairwise - np.log(self.m), dim=1)
        pairwise -= np.log(self.m)
        return torch.logsumexp(torch.cat([pairwise, origin], dim=1), dim=1)

    def fit(self, x, rng, batch_size=10000):
        losses = []
        mean_x = x.mean(dim=0).unsqueeze(0)
        optim = torch.optim.Adam([self.log_sigmas, self.origin_log_sigma], lr=0.5)
        x = x[rng.choice(len(x), len(x), replace=False)]
        cached = _dists(x, self.mus)
        self.log_sigmas.data = ((cached.min(dim=0).values + 1e-3) / x.shape[1]).log()
        for epoch in range(50):
            epoch_losses = []
            for i, batch in enumerate(x.split(batch_size)):
                optim.zero_grad()
                pairwise = self.pairwise(cached[i * batch_size:(i + 1) * batch_size], self.log_sigmas)
                origin = self.pairwise(0.81 * _dists(batch, mean_x), self.origin_log_sigma)
                loss = -self.lls_from_pairwise(pairwise, origin).mean() / self.dim
                loss.backward()
                optim.step()
                with torch.no_grad():
                    self.log_sigmas.data = self.log_sigmas.clamp(-40, 40).data
                epoch_losses.append(loss.item())
            losses.append(sum(epoch_losses) / len(epoch_losses))
            if epoch > 5 and max(abs(losses[-1] - losses[-j]) for j in range(1, 6)) < 5e-4:
                break
        self.log_sigmas = self.log_sigmas.detach()

    def nlls(self, x):
        return -self.lls_from_pairwise(self.pairwise(_dists(x, self.mus), self.log_sigmas)) / self.dim


def _reference_fld(train, test, gen, seed, gen_size=10000, batch_size=10000):
    rng = np.random.default_rng(seed)
    train, test, gen = (torch.from_numpy(a) for a in (train, test, gen))
    if len(gen) > gen_size:
        gen = gen[rng.choice(len(gen), gen_size, replace=False)]
    train, test, gen = _preprocess(train, test, gen)
    mog = _MoG(gen)
    mog.fit(train, rng, batch_size)
    nll = mog.nlls(test).mean().item()
    train_b, test_b, _ = _preprocess(train, test, train)  # get_baseline_nll standardises again
    train_b = train_b[rng.choice(len(train_b), len(train_b), replace=False)]
    split = min(len(gen), len(train_b) // 2)
    baseline = _MoG(train_b[:split])
    baseline.fit(train_b[split:], rng, batch_size)
    return (nll - baseline.nlls(test_b).mean().item()) * 100, nll


def _sets(seed, n_train=600, n_test=300, n_gen=250, dim=8, gen_shift=0.3):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(3, dim)) * 2
    draw = lambda n: mix[rng.integers(0, 3, n)] + rng.normal(size=(n, dim))  # noqa: E731
    return draw(n_train), draw(n_test), draw(n_gen) + gen_shift


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_reference_algorithm(seed):
    train, test, gen = _sets(seed)
    expected, expected_nll = _reference_fld(train, test, gen, seed=seed)
    ours = fld(gen, train, test, seed=seed)
    assert ours.fld == pytest.approx(expected, rel=1e-9)
    assert ours.test_nll == pytest.approx(expected_nll, rel=1e-9)


def test_several_batches_and_a_generated_subset(monkeypatch):
    module = sys.modules["geneval.metrics.fld"]  # the package exports the function fld under the module's name
    monkeypatch.setattr(module, "BATCH_SIZE", 128)  # several Adam steps per epoch, as with > 10,000 train samples
    monkeypatch.setattr(module, "ROWS", 50)
    train, test, gen = _sets(2, n_gen=400)
    expected, _ = _reference_fld(train, test, gen, seed=3, gen_size=300, batch_size=128)
    ours = fld(gen, train, test, gen_size=300, seed=3)
    assert ours.num_gen_used == 300 and ours.fld == pytest.approx(expected, rel=1e-9)


def test_memorised_samples_score_worse_than_fresh_ones():
    train, test, fresh = _sets(4, n_gen=300, gen_shift=0.0)
    copies = train[:300] + 1e-3 * np.random.default_rng(5).normal(size=(300, train.shape[1]))
    good, bad = fld(fresh, train, test, seed=0), fld(copies, train, test, seed=0)
    assert abs(good.fld) < 15 and bad.fld > good.fld + 20


def test_errors():
    train, test, gen = _sets(6, n_train=20, n_test=10, n_gen=10)
    with pytest.raises(GenevalInputError, match="feature dimensions differ"):
        fld(gen[:, :3], train, test)
    with pytest.raises(GenevalInputError, match="all 8 feature dimensions are constant over the test set"):
        fld(gen, train, np.ones_like(test))


def test_dimensions_constant_over_the_test_set():
    """The reference divides by the test set's zero standard deviation there: NaN. geneval leaves those dimensions
    out and equals the reference on the features without them; with none constant nothing changes (tests above)."""
    train, test, gen = _sets(7)
    test[:, [2, 5]] = 0.0  # dead ReLU units over the held-out set
    train[:40, 2], gen[:10, 5] = 0.0, 0.0  # and sometimes elsewhere
    with np.errstate(all="ignore"):
        undefined, _ = _reference_fld(train, test, gen, seed=1)
    assert np.isnan(undefined)
    keep = [0, 1, 3, 4, 6, 7]
    expected, expected_nll = _reference_fld(train[:, keep], test[:, keep], gen[:, keep], seed=1)
    ours = fld(gen, train, test, seed=1)
    assert ours.dropped_dims == (2, 5)
    assert ours.fld == pytest.approx(expected, rel=1e-9) and ours.test_nll == pytest.approx(expected_nll, rel=1e-9)
    test[:, 5] = 1e-9 * np.random.default_rng(0).normal(size=len(test))
    assert fld(gen, train, test, seed=1).dropped_dims == (2,)  # only an exactly constant column is left out


def _images(seed, n):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 50, size=(n, 1, 2, 2)), 0, 255).astype(np.uint8)


def test_cli(tmp_path):
    gen, train, test = _images(0, 40), _images(1, 80), _images(2, 50)
    for name, x in (("gen", gen), ("train", train), ("test", test)):
        np.savez(tmp_path / f"{name}.npz", x=x)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENEVAL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "geneval", "score", str(tmp_path / "gen.npz"), "--ref", str(tmp_path / "train.npz"),
            "--features", "pixels", "--metrics", "fld", "--json", "-q", "--no-cache", "--seed", "4"]
    result = subprocess.run(base + ["--heldout", str(tmp_path / "test.npz"), "--ci", "0.9", "--ci-resamples", "3"],
                            check=True, capture_output=True, text=True, env=env)
    row = next(r for r in json.loads(result.stdout)["results"] if r["metric"] == "fld")
    to_features = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)  # noqa: E731
    expected = fld(to_features(gen), to_features(train), to_features(test), seed=4)
    assert row["value"] == pytest.approx(expected.fld, rel=1e-12) and row["details"]["num_heldout"] == 50
    assert row["details"]["ci_low"] <= row["details"]["ci_high"]
    missing = subprocess.run(base, check=False, capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "fld needs held-out real samples" in missing.stderr


def test_score_warns_about_dropped_dimensions(tmp_path, monkeypatch):
    from geneval import score

    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    gen, train, test = _images(0, 40), _images(1, 80), _images(2, 50)
    test[:, 0, 0, 0] = 0  # pixel (0, 0) is black in every held-out image
    np.savez(tmp_path / "test.npz", x=test)
    record = score(gen, train, metrics=("fld",), features="pixels", heldout=str(tmp_path / "test.npz"),
                   use_cache=False, progress=False, seed=4)
    assert record["fld"].details["dims_dropped_constant_over_test"] == [0] and np.isfinite(record["fld"].value)
    assert any("fld: 1 feature dimensions are constant over the held-out set" in w and "other 3" in w
               for w in record.warnings)


def test_the_distance_cache_budget_changes_nothing(monkeypatch):
    """Distances kept between epochs (``cache_mb``) or recomputed from the same row blocks: the same FLD, bit for
    bit — here with 3 batches of 128 train rows in blocks of 50 (blocks do not align across batches)."""
    module = sys.modules["geneval.metrics.fld"]
    monkeypatch.setattr(module, "BATCH_SIZE", 128)
    monkeypatch.setattr(module, "ROWS", 50)
    train, test, gen = _sets(9, n_train=330)
    block_mb = 50 * 250 * 8 / 2**20  # one block of distances to the 250 centres
    results = [fld(gen, train, test, seed=2, cache_mb=mb) for mb in (0, 2.5 * block_mb, 5.5 * block_mb, 64)]
    assert len({(r.fld, r.test_nll, r.baseline_nll, r.epochs) for r in results}) == 1
    expected, _ = _reference_fld(train, test, gen, seed=2, batch_size=128)
    assert results[0].fld == pytest.approx(expected, rel=1e-9)
    with pytest.raises(GenevalInputError, match="cache_mb must be ≥ 0"):
        fld(gen, train, test, cache_mb=-1)
