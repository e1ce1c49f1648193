"""Rarity score (Han et al. 2022): the reference's formula re-derived with full matrices, a constructed case, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneval import rarity
from geneval.errors import GenevalInputError

ROOT = Path(__file__).resolve().parents[1]


def _reference_rarity(gen, ref, k):
    """hichoe95/Rarity-Score ``MANIFOLD.rarity`` in float64: radius = column k of the sorted real×real distances
    (column 0 is the sample itself), in-ball ⇔ radius − distance > 0, score = smallest such radius, 0 if none."""
    d_rr = np.sqrt(((ref[:, None] - ref[None]) ** 2).sum(-1))
    d_rg = np.sqrt(((ref[:, None] - gen[None]) ** 2).sum(-1))
    r = np.sort(d_rr, axis=1)[:, k]
    dist_radi = r[:, None] - d_rg
    out_ball_ids = np.where((dist_radi > 0).any(axis=0) == False)[0]  # noqa: E712  (as the reference)
    scores = np.zeros(len(gen))
    for i in range(len(gen)):
        if i not in out_ball_ids:
            scores[i] = r[dist_radi[:, i] > 0].min()
    return scores, out_ball_ids


def _pair(seed, n_gen=350, n_ref=300, dim=16):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_gen, dim)) * 1.3 + 50.0, rng.normal(size=(n_ref, dim)) + 50.0  # offset: float32 rechecks


@pytest.mark.parametrize("chunk", [31, 128, 4096])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_equals_the_reference_formula(chunk, k):
    gen, ref = _pair(k)
    expected, outside = _reference_rarity(gen, ref, k)
    ours = rarity(gen, ref, k=k, chunk_size=chunk)
    assert np.array_equal(np.flatnonzero(~ours.inside), outside) and 0 < len(outside) < len(gen)
    assert np.allclose(ours.scores[ours.inside], expected[ours.inside], rtol=1e-12, atol=0)
    assert ours.fraction_outside == len(outside) / len(gen)
    assert ours.mean == pytest.approx(expected[ours.inside].mean(), rel=1e-12)


def test_constructed_case():
    # Real samples on a line: 0..9 (spacing 1: 1-NN radius 1) and 100, 110, 120, 130 (spacing 10: radius 10).
    ref = np.concatenate([np.arange(10.0), [100.0, 110.0, 120.0, 130.0]])[:, None]
    gen = np.array([[4.5], [105.0], [50.0], [3.0]])
    result = rarity(gen, ref, k=1)
    assert np.array_equal(result.scores, [1.0, 10.0, np.nan, 1.0], equal_nan=True)
    assert result.mean == 4.0 and result.fraction_outside == 0.25
    # A sample exactly on a ball's boundary is outside (strict <, as the reference).
    assert np.isnan(rarity(np.array([[60.0]]), ref, k=1).scores[0])
    assert rarity(np.array([[90.0 + 1e-9]]), ref, k=1).scores[0] == 10.0


def test_errors():
    gen, ref = _pair(7, n_gen=10, n_ref=3)
    with pytest.raises(GenevalInputError, match="k=3 needs more than 3 samples in the reference set"):
        rarity(gen, ref, k=3)
    with pytest.raises(GenevalInputError, match="feature dimensions differ"):
        rarity(gen, ref[:, :5], k=1)


def _images(seed, n):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 50, size=(n, 1, 2, 2)), 0, 255).astype(np.uint8)


def test_cli(tmp_path):
    gen, ref = _images(0, 40), _images(1, 60)
    np.savez(tmp_path / "gen.npz", x=gen)
    np.savez(tmp_path / "ref.npz", x=ref)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENEVAL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "geneval", "score", str(tmp_path / "gen.npz"), "--ref",
                             str(tmp_path / "ref.npz"), "--features", "pixels", "--metrics", "rarity",
                             "--rarity-k", "2", "--json", "-q", "--no-cache", "--ci", "0.9", "--ci-resamples", "4"],
                            check=True, capture_output=True, text=True, env=env)
    row = next(r for r in json.loads(result.stdout)["results"] if r["metric"] == "rarity")
    to_features = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)  # noqa: E731
    expected = rarity(to_features(gen), to_features(ref), k=2)
    assert row["value"] == pytest.approx(expected.mean, rel=1e-12)
    assert row["details"]["k"] == 2 and row["details"]["fraction_outside"] == expected.fraction_outside
    assert row["details"]["ci_low"] <= row["details"]["ci_high"]
