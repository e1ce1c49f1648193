"""Precision/recall, density/coverage and the chunked exact k-NN core: peers, brute force, properties, errors."""

import contextlib
import io

import numpy as np
import pytest
import torch

from geneval import density_coverage, prdc, precision_recall
from geneval.errors import GenevalInputError
from geneval.metrics import knn


def _brute(gen, ref, k, rule):
    """The definitions, with full float64 distance matrices."""
    d_gg = ((gen[:, None] - gen[None]) ** 2).sum(-1)
    d_rr = ((ref[:, None] - ref[None]) ** 2).sum(-1)
    d_gr = ((gen[:, None] - ref[None]) ** 2).sum(-1)
    r_gen, r_ref = np.sort(d_gg, 1)[:, k], np.sort(d_rr, 1)[:, k]  # column 0 is the sample itself
    inside = (lambda d, r: d <= r) if rule == "<=" else (lambda d, r: d < r)
    in_ref_balls = inside(d_gr, r_ref[None])
    return (in_ref_balls.any(1).mean(), inside(d_gr, r_gen[:, None]).any(0).mean(),
            in_ref_balls.sum() / (k * len(gen)), in_ref_balls.any(0).mean())


def _pair(seed, n_gen=420, n_ref=380, dim=48, dtype=np.float64):
    rng = np.random.default_rng(seed)
    gen = rng.normal(size=(n_gen, dim)) * 1.1 + 0.2
    ref = rng.normal(size=(n_ref, dim))
    return gen.astype(dtype), ref.astype(dtype)


@pytest.mark.parametrize("chunk", [37, 128, 4096])
def test_chunked_results_equal_the_full_float64_computation(chunk):
    gen, ref = _pair(0)
    gen += 50.0  # a large common offset: float32 Gram products would lose digits without centring and rechecks
    ref += 50.0
    for strict, rule in ((False, "<="), (True, "<")):
        ours = prdc(gen, ref, k_pr=4, k_dc=4, strict=strict, chunk_size=chunk)
        expected = _brute(gen, ref, 4, rule)
        assert (ours.precision, ours.recall, ours.density, ours.coverage) == pytest.approx(expected, abs=1e-15)


def test_nearest_neighbours_are_exact():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 20)) + 100
    x[10] = x[11]  # a duplicate: its nearest distance is exactly 0
    points = knn.prepare(x, chunk=64)[0]
    found = knn.nearest(points, points, k=5, exclude_self=True)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert np.array_equal(np.sort(d2, 1)[:, :5], found.sq_distances)
    assert found.sq_distances[10, 0] == 0.0 and found.indices[10, 0] == 11


def test_inputs_are_not_modified():
    gen, ref = _pair(2)
    before = gen.copy(), ref.copy()
    prdc(gen, ref, chunk_size=50)
    assert np.array_equal(gen, before[0]) and np.array_equal(ref, before[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_precision_recall_equal_torch_fidelity(dtype):
    from torch_fidelity.metric_prc import prc_features_to_metric

    gen, ref = _pair(3, dtype=dtype)
    theirs = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), prc_neighborhood=3,
                                    prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    precision, recall = precision_recall(gen, ref, k=3, chunk_size=100)
    # torch-fidelity averages in float32 (.float().mean()): compare counts, which must be identical.
    assert round(precision * len(gen)) == round(theirs["precision"] * len(gen))
    assert round(recall * len(ref)) == round(theirs["recall"] * len(ref))
    assert precision == pytest.approx(theirs["precision"], abs=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_strict_mode_equals_prdc(dtype):
    from prdc import compute_prdc

    gen, ref = _pair(4, dtype=dtype)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        theirs = compute_prdc(real_features=ref, fake_features=gen, nearest_k=5)
    ours = prdc(gen, ref, k_pr=5, k_dc=5, strict=True, chunk_size=128)
    assert ours.precision == theirs["precision"] and ours.recall == theirs["recall"]
    assert ours.density == pytest.approx(theirs["density"], rel=1e-14) and ours.coverage == theirs["coverage"]
    density, coverage = density_coverage(gen, ref, k=5, strict=True)
    assert (density, coverage) == (ours.density, ours.coverage)


def test_identical_sets():
    x, _ = _pair(5)
    result = prdc(x, x.copy())
    assert (result.precision, result.recall, result.density, result.coverage) == (1.0, 1.0, 1.0, 1.0)
    # With 6 copies of one sample (k_dc=5), its ball has radius 0: prdc's strict `<` leaves it uncovered even by
    # itself; the default rule counts a sample at distance 0 as inside.
    dup = np.concatenate([x[:200], np.repeat(x[200:201], 6, axis=0)])
    assert prdc(dup, dup.copy()).coverage == 1.0
    assert prdc(dup, dup.copy(), strict=True).coverage == pytest.approx(200 / 206)


def test_mode_collapse_gives_high_precision_low_recall():
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(10, 16)) * 8
    ref = centres[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 16))
    gen = centres[0] + 0.5 * rng.normal(size=(1000, 16))  # collapsed: one of ten modes, narrower
    result = prdc(gen, ref)
    assert result.precision > 0.9 and result.recall < 0.2 and result.coverage < 0.2
    fine = prdc(centres[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 16)), ref)
    assert fine.precision > 0.6 and fine.recall > 0.6 and 0.7 < fine.density < 1.3 and fine.coverage > 0.9


def test_errors():
    gen, ref = _pair(7, n_gen=30, n_ref=30)
    with pytest.raises(GenevalInputError, match=r"k=3 needs more than 3 samples in the generated set .* it has 3"):
        precision_recall(gen[:3], ref)
    with pytest.raises(GenevalInputError, match="k=5 needs more than 5 samples in the reference set"):
        density_coverage(gen, ref[:5])
    with pytest.raises(GenevalInputError, match="feature dimensions differ: generated 48, reference 47"):
        prdc(gen, ref[:, :47])
    with pytest.raises(GenevalInputError, match="k must be a positive integer"):
        precision_recall(gen, ref, k=0)
    bad = gen.copy()
    bad[3, 2] = np.nan
    with pytest.raises(GenevalInputError, match="generated features: 1 of 30 rows contain NaN"):
        prdc(bad, ref)
    with pytest.raises(GenevalInputError, match=r"2-D array \[N, D\]"):
        prdc(gen[0], ref)


def test_score_and_cli_report_bad_k_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from geneval import score

    gen, ref = _pair(8, n_gen=20, n_ref=30, dim=4)
    images = lambda x: np.clip(x * 40 + 128, 0, 255).astype(np.uint8).reshape(len(x), 1, 2, 2)
    np.savez(tmp_path / "gen.npz", x=images(gen))
    np.savez(tmp_path / "ref.npz", x=images(ref))
    record = score(str(tmp_path / "gen.npz"), str(tmp_path / "ref.npz"), features="pixels", use_cache=False,
                   metrics=("precision", "recall", "density", "coverage"), progress=False)
    assert record["density"].details == {"num_gen": 20, "num_ref": 30, "k": 5, "tie_rule": "<|0",
                                         "distances": "exact float64"}
    geneval = str(Path(sys.executable).with_name("geneval"))
    result = subprocess.run([geneval, "score", tmp_path / "gen.npz", "--ref", tmp_path / "ref.npz", "--features",
                             "pixels", "--metrics", "precision", "--k-pr", "20", "-q", "--no-cache"],
                            check=False, capture_output=True, text=True,
                            env={**os.environ, "GENEVAL_CACHE": str(tmp_path)})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("Error: PRDC: k=20 needs more than 20 samples in the generated set (the k-th "
                                     "neighbour excludes the sample itself); it has 20")


def test_precomputed_reference_radii_give_the_same_result():
    from geneval.metrics.prdc import reference_radii_sq

    gen, ref = _pair(9)
    radii = reference_radii_sq(ref, ks=(3, 5), chunk_size=64)
    assert prdc(gen, ref, ref_radii_sq=radii, chunk_size=100) == prdc(gen, ref)
