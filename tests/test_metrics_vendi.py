"""Vendi score (Friedman & Dieng 2023): parity with the vendi-score package, constructed cases, per-class, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneval import vendi
from geneval.errors import GenevalInputError
from geneval.metrics.vendi import vendi_per_class

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # vendi-score imports scipy.sparse.csr


def _features(seed, n=300, dim=24):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) + rng.normal(size=dim)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cosine_equals_the_vendi_score_package(dtype):
    from vendi_score import vendi as reference

    x = _features(0).astype(dtype)
    ours = vendi(x)
    assert ours == pytest.approx(reference.score_dual(x.astype(np.float64)), rel=1e-9)
    assert ours == pytest.approx(reference.score_X(x.astype(np.float64)), rel=1e-6)  # via the n×n kernel


def test_polynomial_equals_the_vendi_score_package_on_sklearns_kernel():
    from sklearn.metrics.pairwise import polynomial_kernel
    from vendi_score import vendi as reference

    x = _features(1, n=200)
    for degree in (2, 3):
        expected = reference.score_K(polynomial_kernel(x, degree=degree), normalize=True)
        assert vendi(x, kernel="polynomial", degree=degree) == pytest.approx(expected, rel=1e-9)


def test_constructed_cases():
    # k groups of identical samples along orthogonal directions: exactly k, whatever the group sizes' common value.
    for k in (1, 3, 7):
        x = np.repeat(np.eye(16)[:k] * 5.0, 20, axis=0)
        assert vendi(x) == pytest.approx(k, rel=1e-12)
    # Identical samples: 1 with either kernel. Orthonormal samples: n.
    same = np.tile(np.arange(1.0, 9.0), (50, 1))
    assert vendi(same) == pytest.approx(1.0, rel=1e-12)
    assert vendi(same, kernel="polynomial") == pytest.approx(1.0, rel=1e-9)
    assert vendi(np.eye(10)) == pytest.approx(10.0, rel=1e-12)
    # Chunking of the d×d Gram does not change the value (more rows than one chunk).
    from vendi_score import vendi as reference

    big = _features(2, n=9000, dim=8)
    assert vendi(big) == pytest.approx(reference.score_dual(big), rel=1e-9)


def test_per_class():
    x = np.concatenate([np.repeat(np.eye(8)[:2], 10, axis=0), np.repeat(np.eye(8)[2:7], 4, axis=0)])
    labels = np.array([0] * 20 + [1] * 20)
    assert vendi_per_class(x, labels) == pytest.approx({0: 2.0, 1: 5.0}, rel=1e-12)


def test_errors():
    x = _features(3, n=20)
    with pytest.raises(GenevalInputError, match="unknown kernel 'rbf'"):
        vendi(x, kernel="rbf")
    zero = x.copy()
    zero[4] = 0
    with pytest.raises(GenevalInputError, match="row 4 is all zeros"):
        vendi(zero)
    with pytest.raises(GenevalInputError, match="degree must be a positive integer"):
        vendi(x, kernel="polynomial", degree=0)


def _images(seed, n):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 50, size=(n, 1, 4, 4)), 0, 255).astype(np.uint8)


def test_cli_and_score(tmp_path):
    from geneval import score

    gen = _images(0, 40)
    labels = np.arange(40) % 2
    np.savez(tmp_path / "gen.npz", x=gen, y=labels)
    np.savez(tmp_path / "ref.npz", x=_images(1, 30))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENEVAL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "geneval", "score", str(tmp_path / "gen.npz"), "--ref",
                             str(tmp_path / "ref.npz"), "--features", "pixels", "--metrics", "vendi", "--json", "-q",
                             "--no-cache", "--ci", "0.9", "--ci-resamples", "5"],
                            check=True, capture_output=True, text=True, env=env)
    record = json.loads(result.stdout)
    row = next(r for r in record["results"] if r["metric"] == "vendi")
    features = gen.reshape(40, -1).astype(np.float32) / np.float32(255)
    assert row["value"] == pytest.approx(vendi(features), rel=1e-12)
    assert row["details"]["kernel"] == "cosine" and set(row["details"]["per_class"]) == {"0", "1"}
    assert row["details"]["ci_low"] <= row["details"]["ci_high"]
    poly = score(str(tmp_path / "gen.npz"), str(tmp_path / "ref.npz"), features="pixels", metrics=("vendi",),
                 vendi_kernel="polynomial", vendi_degree=2, use_cache=False, progress=False)
    assert poly["vendi"].value == pytest.approx(vendi(features, kernel="polynomial", degree=2), rel=1e-12)
