"""Authenticity (Alaa et al. 2022) as dgm-eval's AuthPct: its formula re-derived, constructed cases, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geneval import authenticity
from geneval.errors import GenevalInputError

ROOT = Path(__file__).resolve().parents[1]


def _dgm_eval_authpct(train_feat, gen_feat):
    """dgm-eval ``compute_authpct`` (layer6ai-labs/dgm-eval, dgm_eval/metrics/authpct.py), in float64."""
    train, gen = torch.from_numpy(train_feat), torch.from_numpy(gen_feat)
    real_dists = torch.cdist(train, train, compute_mode="donot_use_mm_for_euclid_dist")
    real_dists.fill_diagonal_(float("inf"))
    gen_dists = torch.cdist(train, gen, compute_mode="donot_use_mm_for_euclid_dist")
    real_min, gen_min = real_dists.min(axis=0), gen_dists.min(dim=0)
    authen = real_min.values[gen_min.indices] < gen_min.values
    return (100 * torch.sum(authen) / len(authen)).item(), authen.numpy()


@pytest.mark.parametrize("chunk", [29, 4096])
def test_equals_dgm_eval(chunk):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(400, 12)) + 20.0
    gen = np.concatenate([rng.normal(size=(250, 12)) * 0.9 + 20.0, ref[:50] + 1e-3 * rng.normal(size=(50, 12))])
    pct, authen = _dgm_eval_authpct(ref, gen)
    ours = authenticity(gen, ref, chunk_size=chunk)
    assert np.array_equal(ours.authentic, authen)
    assert 100 * ours.fraction == pytest.approx(pct, rel=1e-6)  # theirs is a float32 division
    assert not ours.authentic[250:].any()  # the near-copies


def test_constructed_cases():
    ref = np.arange(10.0)[:, None] * 2  # real samples 2 apart: d2 = 2 for every one
    assert authenticity(ref.copy(), ref).fraction == 0.0  # exact copies: d1 = 0
    assert authenticity(ref + 0.5, ref).fraction == 0.0  # d1 = 0.5 < 2
    assert authenticity(np.array([[30.0], [-5.0], [7.0]]), ref).authentic.tolist() == [True, True, False]
    assert authenticity(np.array([[21.0]]), ref).authentic.tolist() == [True]  # r* = 18: d1 = 3 > d2 = 2
    # d2 < d1 is strict: a sample exactly as far from r* as r*'s real neighbour is not authentic.
    assert authenticity(np.array([[20.0]]), ref).authentic.tolist() == [False]


def test_errors():
    with pytest.raises(GenevalInputError, match="needs more than 1 samples in the reference set"):
        authenticity(np.zeros((3, 2)), np.zeros((1, 2)))


def _images(seed, n):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 50, size=(n, 1, 2, 2)), 0, 255).astype(np.uint8)


def test_cli(tmp_path):
    gen, ref = _images(0, 40), _images(1, 60)
    gen[:10] = ref[:10]  # copies
    np.savez(tmp_path / "gen.npz", x=gen)
    np.savez(tmp_path / "ref.npz", x=ref)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENEVAL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "geneval", "score", str(tmp_path / "gen.npz"), "--ref",
                             str(tmp_path / "ref.npz"), "--features", "pixels", "--metrics", "authenticity",
                             "--json", "-q", "--no-cache", "--ci", "0.9", "--ci-resamples", "4"],
                            check=True, capture_output=True, text=True, env=env)
    row = next(r for r in json.loads(result.stdout)["results"] if r["metric"] == "authenticity")
    to_features = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)  # noqa: E731
    expected = authenticity(to_features(gen), to_features(ref))
    assert row["value"] == expected.fraction and row["value"] <= 0.75
    assert row["details"]["authpct"] == 100 * expected.fraction
    assert row["details"]["ci_low"] <= row["details"]["ci_high"]
