"""PRD (Sajjadi et al. 2018): the reference's formulas re-derived, constructed cases, the plot, CLI."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneval import plot_prd, prd
from geneval.errors import GenevalInputError
from geneval.metrics.prd import cluster_histograms, f_beta_max, load_prd_curve, prd_curve

ROOT = Path(__file__).resolve().parents[1]


# msmsajjadi/precision-recall-distributions prd_score.py, re-derived: compute_prd, _prd_to_f_beta,
# prd_to_max_f_beta_pair, and the averaging of compute_prd_from_embedding.
def _ref_compute_prd(eval_dist, ref_dist, num_angles=1001, epsilon=1e-10):
    angles = np.linspace(epsilon, math.pi / 2 - epsilon, num=num_angles)
    slopes = np.tan(angles)
    slopes_2d = np.expand_dims(slopes, 1)
    ref_dist_2d = np.expand_dims(ref_dist, 0)
    eval_dist_2d = np.expand_dims(eval_dist, 0)
    precision = np.minimum(ref_dist_2d * slopes_2d, eval_dist_2d).sum(axis=1)
    recall = precision / slopes
    return np.clip(precision, 0, 1), np.clip(recall, 0, 1)


def _ref_f_beta(precision, recall, beta=1, epsilon=1e-10):
    return (1 + beta**2) * (precision * recall) / ((beta**2 * precision) + recall + epsilon)


def _ref_max_pair(precision, recall, beta=8):
    return np.max(_ref_f_beta(precision, recall, beta)), np.max(_ref_f_beta(precision, recall, 1 / beta))


def _ref_histogram(labels, num_clusters):
    return np.histogram(labels, bins=num_clusters, range=[0, num_clusters], density=True)[0]


def test_curve_and_f_beta_equal_the_reference_on_the_same_histograms():
    rng = np.random.default_rng(0)
    for _ in range(5):
        eval_dist, ref_dist = rng.dirichlet(np.ones(20)), rng.dirichlet(np.ones(20) * 0.3)
        ours = prd_curve(eval_dist, ref_dist)
        theirs = _ref_compute_prd(eval_dist, ref_dist)
        assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])
        assert f_beta_max(*ours) == _ref_max_pair(*theirs)


def test_whole_pipeline_equals_the_reference_given_our_clusters():
    rng = np.random.default_rng(1)
    gen, ref = rng.normal(size=(300, 6)) + 0.7, rng.normal(size=(300, 6))
    result = prd(gen, ref, num_clusters=10, num_runs=3, seed=5)
    precisions, recalls = [], []
    for run in range(3):  # the reference's loop, with our (seeded) k-means labels in place of MiniBatchKMeans
        from geneval.metrics.ndb import assign, kmeans

        union = np.vstack([gen, ref])
        labels = assign(union, kmeans(union, k=10, seed=5 + run))
        eval_bins, ref_bins = _ref_histogram(labels[:300], 10), _ref_histogram(labels[300:], 10)
        assert np.allclose((eval_bins, ref_bins), cluster_histograms(gen, ref, num_clusters=10, seed=5 + run),
                           rtol=1e-15, atol=0)
        p, r = _ref_compute_prd(eval_bins, ref_bins)
        precisions.append(p)
        recalls.append(r)
    precision, recall = np.mean(precisions, axis=0), np.mean(recalls, axis=0)
    assert np.allclose(result.precision, precision, rtol=1e-14, atol=0)
    assert np.allclose(result.recall, recall, rtol=1e-14, atol=0)
    f8, f1_8 = _ref_max_pair(precision, recall)
    assert result.f_beta == pytest.approx(f8, rel=1e-12) and result.f_beta_inv == pytest.approx(f1_8, rel=1e-12)


def test_constructed_cases():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 5))
    same = prd(x, x.copy(), num_runs=2)
    assert same.f_beta == pytest.approx(1.0, abs=1e-9) and same.f_beta_inv == pytest.approx(1.0, abs=1e-9)
    far = prd(x, x + 1000.0, num_runs=2)  # disjoint supports: every cluster holds one set only
    assert far.f_beta == 0.0 and far.f_beta_inv == 0.0
    # A closed form: p = (1, 0), q = (1/2, 1/2): α(λ) = min(λ/2, 1), β(λ) = min(1/2, 1/λ).
    precision, recall = prd_curve(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    slopes = np.tan(np.linspace(1e-10, np.pi / 2 - 1e-10, 1001))
    assert np.allclose(precision, np.minimum(slopes / 2, 1), rtol=1e-15)
    assert np.allclose(recall, np.minimum(0.5, 1 / slopes), rtol=1e-12) and recall.max() == pytest.approx(0.5)
    # Mode dropping lowers the recall-like F8 more than the precision-like F1/8.
    centres = rng.normal(size=(4, 5)) * 20
    ref = centres[np.arange(400) % 4] + rng.normal(size=(400, 5))
    gen = centres[np.arange(400) % 2] + rng.normal(size=(400, 5))
    dropped = prd(gen, ref, num_clusters=8, num_runs=3)
    assert dropped.f_beta < 0.7 < dropped.f_beta_inv


def test_unbalanced_sets_are_subsampled_and_errors():
    rng = np.random.default_rng(3)
    result = prd(rng.normal(size=(120, 4)), rng.normal(size=(300, 4)), num_runs=1)
    assert result.num_used == 120
    with pytest.raises(GenevalInputError, match="20 clusters need at least 20 samples"):
        prd(rng.normal(size=(5, 4)), rng.normal(size=(50, 4)))
    with pytest.raises(GenevalInputError, match="feature dimensions differ"):
        prd(rng.normal(size=(50, 4)), rng.normal(size=(50, 3)))


def test_plot_several_models(tmp_path):
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(150, 4))
    curves = {"good": prd(rng.normal(size=(150, 4)), ref, num_runs=1),
              "shifted": prd(rng.normal(size=(150, 4)) + 2, ref, num_runs=1),
              "raw tuple": prd_curve(np.array([0.5, 0.5]), np.array([0.9, 0.1]))}
    path = plot_prd(curves, tmp_path / "sub" / "prd.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _images(seed, n, shift=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120 + shift, 50, size=(n, 1, 2, 2)), 0, 255).astype(np.uint8)


def test_cli(tmp_path):
    gen, ref = _images(0, 60, shift=30), _images(1, 60)
    np.savez(tmp_path / "gen.npz", x=gen)
    np.savez(tmp_path / "ref.npz", x=ref)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENEVAL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "geneval", "score", str(tmp_path / "gen.npz"), "--ref",
                             str(tmp_path / "ref.npz"), "--features", "pixels", "--metrics", "prd_f8,prd_f1_8",
                             "--prd-runs", "3", "--prd-clusters", "5", "--seed", "7",
                             "--out-dir", str(tmp_path / "out"), "--json", "-q", "--no-cache", "--ci", "0.9",
                             "--ci-resamples", "3"],
                            check=True, capture_output=True, text=True, env=env)
    rows = {r["metric"]: r for r in json.loads(result.stdout)["results"]}
    to_features = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)  # noqa: E731
    expected = prd(to_features(gen), to_features(ref), num_clusters=5, num_runs=3, seed=7)
    assert rows["prd_f8"]["value"] == pytest.approx(expected.f_beta, rel=1e-12)
    assert rows["prd_f1_8"]["value"] == pytest.approx(expected.f_beta_inv, rel=1e-12)
    assert rows["prd_f8"]["details"]["beta"] == 8 and rows["prd_f1_8"]["details"]["beta"] == 1 / 8
    assert rows["prd_f8"]["details"]["ci_low"] <= rows["prd_f8"]["details"]["ci_high"]
    assert (tmp_path / "out" / "prd_curve.png").read_bytes()[:4] == b"\x89PNG"
    saved = load_prd_curve(tmp_path / "out" / "prd_curve.npz")  # the point estimate's curve, not a resample's
    assert saved.f_beta == expected.f_beta and np.array_equal(saved.recall, expected.recall)

    # several models on one plot: a second model scored the same way, then `geneval prd-plot`
    np.savez(tmp_path / "gen2.npz", x=_images(2, 60, shift=80))
    subprocess.run([sys.executable, "-m", "geneval", "score", str(tmp_path / "gen2.npz"), "--ref",
                    str(tmp_path / "ref.npz"), "--features", "pixels", "--metrics", "prd_f8", "--prd-runs", "3",
                    "--prd-clusters", "5", "--seed", "7", "--out-dir", str(tmp_path / "out2"), "-q", "--no-cache"],
                   check=True, capture_output=True, text=True, env=env)
    curves = [str(tmp_path / d / "prd_curve.npz") for d in ("out", "out2")]
    plotted = subprocess.run([sys.executable, "-m", "geneval", "prd-plot", *curves, "--labels", "near,far", "-o",
                              str(tmp_path / "both.png"), "--json"], capture_output=True, text=True, env=env)
    assert plotted.returncode == 0 and plotted.stderr == "", plotted.stderr
    rows = {r["label"]: r for r in json.loads(plotted.stdout)["curves"]}
    far = prd(to_features(_images(2, 60, shift=80)), to_features(ref), num_clusters=5, num_runs=3, seed=7)
    assert rows["near"]["f8"] == expected.f_beta and rows["far"]["f8"] == far.f_beta
    assert rows["far"]["f8"] < rows["near"]["f8"]  # shifted further from the reference: less recall
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"

    # a file that is not a curve, and labels that do not match the curves: one line each, nothing written
    for args, needle in (([str(tmp_path / "gen.npz")], "gen.npz: no precision, recall"),
                         ([*curves, "--labels", "one"], "--labels has 1 labels for 2 curves")):
        bad = subprocess.run([sys.executable, "-m", "geneval", "prd-plot", *args, "-o", str(tmp_path / "bad.png")],
                             capture_output=True, text=True, env=env)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and needle in bad.stderr, bad.stderr
        assert not (tmp_path / "bad.png").exists()


# The single-matrix k-means that geneval.metrics.kmeans replaced (it built the float64 union: ≈ 5 GB at 50k × 50k ×
# 2048), frozen here: the blockwise one must give the same centres and labels bit for bit.
def _old_assign(x, centres, chunk=4096):
    c_norms = (centres**2).sum(1)
    out = np.empty(len(x), np.int64)
    for lo in range(0, len(x), chunk):
        out[lo : lo + chunk] = np.argmin(c_norms[None, :] - 2 * x[lo : lo + chunk] @ centres.T, axis=1)
    return out


def _old_kmeans(x, *, k, seed, iterations=100):
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(len(x))]
    closest = ((x - centres[0]) ** 2).sum(1)
    for i in range(1, k):
        total = closest.sum()
        pick = rng.choice(len(x), p=closest / total) if total > 0 else rng.integers(len(x))
        centres[i] = x[pick]
        closest = np.minimum(closest, ((x - centres[i]) ** 2).sum(1))
    labels = _old_assign(x, centres)
    for _ in range(iterations):
        for c in range(k):
            members = labels == c
            if members.any():
                centres[c] = x[members].mean(axis=0)
        new = _old_assign(x, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return centres


@pytest.mark.parametrize("chunk", [4096, 333])
def test_blockwise_kmeans_is_bit_identical_to_the_single_matrix_one(chunk, monkeypatch):
    """Float32 banks of 5000 and 4000 rows (blocks straddle the boundary between them), the larger subsampled as
    ``prd`` does; the k-means block size only changes how rows are read (assignment blocks stay 4096 rows)."""
    from geneval.metrics import kmeans as module

    monkeypatch.setattr(module, "CHUNK", chunk)
    rng = np.random.default_rng(11)
    gen = (rng.normal(size=(5000, 24)) * rng.lognormal(size=24) + rng.integers(0, 4, (5000, 1))).astype(np.float32)
    ref = (rng.normal(size=(4000, 24)) * 1.3 + rng.integers(0, 6, (4000, 1))).astype(np.float32)
    rows = np.sort(np.random.default_rng(5).choice(5000, 4000, replace=False))
    union = np.concatenate([gen[rows], ref]).astype(np.float64)
    old = _old_kmeans(union, k=20, seed=3)
    new = module.kmeans(module.StackedRows(gen, ref, indices=(rows, None)), k=20, seed=3)
    assert np.array_equal(old, new)
    labels = module.assign(module.StackedRows(gen, ref, indices=(rows, None)), new)
    assert np.array_equal(labels, _old_assign(union, old))
    eval_hist, ref_hist = cluster_histograms(gen, ref, num_clusters=20, seed=3, eval_rows=rows)
    assert np.array_equal(eval_hist, np.bincount(labels[:4000], minlength=20) / 4000)
    assert np.array_equal(ref_hist, np.bincount(labels[4000:], minlength=20) / 4000)
    # The whole metric, against the previous pipeline (float64 copies, union concatenated, old k-means).
    result = prd(gen, ref, num_runs=2, seed=5)
    sub = np.random.default_rng(5).choice(5000, 4000, replace=False)
    x, y = gen[np.sort(sub)].astype(np.float64), ref.astype(np.float64)
    curves = []
    for run in range(2):
        both = np.concatenate([x, y])
        lab = _old_assign(both, _old_kmeans(both, k=20, seed=5 + run))
        hists = np.bincount(lab[:4000], minlength=20) / 4000, np.bincount(lab[4000:], minlength=20) / 4000
        curves.append(prd_curve(*hists))
    precision, recall = np.mean([c[0] for c in curves], axis=0), np.mean([c[1] for c in curves], axis=0)
    assert np.array_equal(result.precision, precision) and np.array_equal(result.recall, recall)
    assert (result.f_beta, result.f_beta_inv) == f_beta_max(precision, recall)
