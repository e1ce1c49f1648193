"""The ``geneval`` command through real subprocesses: results, caching, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geneval import fid, kid

# The installed console script, as a user runs it.
GENEVAL = [str(Path(sys.executable).with_name("geneval"))]


def run(args, tmp_path, **env_extra):
    env = {**os.environ, "GENEVAL_CACHE": str(tmp_path / "cache"), **env_extra}
    return subprocess.run(GENEVAL + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=300)


def images(seed, n=40, size=8, shift=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128 + shift, 40, size=(n, size, size, 3)), 0, 255).astype(np.uint8)


def write_folder(path: Path, array: np.ndarray) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(array):
        Image.fromarray(image).save(path / f"{i:04d}.png")
    return path


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


def test_help_shows_examples(tmp_path):
    for args in (["--help"], ["score", "--help"], ["stats", "--help"]):
        result = run(args, tmp_path)
        assert result.returncode == 0 and "Examples:" in result.stdout


def test_score_folder_against_npz_matches_the_api(tmp_path):
    gen, ref = images(0), images(1, n=50, shift=10)
    folder = write_folder(tmp_path / "samples", gen)
    np.savez(tmp_path / "ref.npz", x=ref)
    out = tmp_path / "record.json"
    result = run(["score", folder, "--ref", tmp_path / "ref.npz", "--features", "pixels", "--metrics", "fid,kid",
                  "--kid-subsets", "5", "--json", "-q", "-o", out], tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert json.loads(out.read_text()) == record
    values = {r["metric"]: r for r in record["results"]}
    to_features = lambda a: a.transpose(0, 3, 1, 2).reshape(len(a), -1) / 255.0  # noqa: E731
    assert values["fid"]["value"] == pytest.approx(fid(to_features(gen), to_features(ref)), rel=1e-6)
    assert values["kid"]["value"] == pytest.approx(kid(to_features(gen), to_features(ref), subsets=5).mean, rel=1e-6)
    assert values["fid"]["label"] == "FID (pixels)"
    assert record["provenance"]["extractor"]["extractor"] == "pixels"
    assert record["provenance"]["samples"]["count"] == 40


def test_second_score_runs_no_reference_feature_pass(tmp_path):
    folder = write_folder(tmp_path / "samples", images(2))
    np.save(tmp_path / "ref.npy", images(3, n=30))
    args = ["score", folder, "--ref", tmp_path / "ref.npy", "--features", "pixels", "--metrics", "fid", "-q"]
    first, second = run(args + ["--json"], tmp_path), run(args + ["--json"], tmp_path)
    assert json.loads(first.stdout)["provenance"]["reference"]["feature_passes"] == 1
    assert json.loads(second.stdout)["provenance"]["reference"]["feature_passes"] == 0
    assert json.loads(first.stdout)["results"] == json.loads(second.stdout)["results"]
    table = run(args, tmp_path).stdout
    assert "hit (0 reference feature passes)" in table
    # A different reference count is a different cache entry, never a silent reuse.
    third = run(args + ["--num-ref", "20", "--json"], tmp_path)
    assert json.loads(third.stdout)["provenance"]["reference"]["feature_passes"] == 1


def test_stats_file_gives_the_same_fid_as_the_images(tmp_path):
    folder = write_folder(tmp_path / "samples", images(4))
    np.savez(tmp_path / "ref.npz", arr_0=images(5, n=60))
    stats = run(["stats", tmp_path / "ref.npz", "-o", tmp_path / "ref_stats.npz", "--features", "pixels", "-q"], tmp_path)
    assert stats.returncode == 0, stats.stderr
    base = ["score", folder, "--features", "pixels", "--metrics", "fid", "--json", "-q", "--no-cache"]
    from_images = json.loads(run(base + ["--ref", tmp_path / "ref.npz"], tmp_path).stdout)
    from_stats = json.loads(run(base + ["--ref", tmp_path / "ref_stats.npz"], tmp_path).stdout)
    assert from_stats["results"][0]["value"] == pytest.approx(from_images["results"][0]["value"], rel=1e-9)


# ---- bad input: one line naming the file or value, exit status 2, no output file ------------------------------

@pytest.fixture
def ref_npz(tmp_path):
    np.savez(tmp_path / "ref.npz", x=images(9, n=20))
    return tmp_path / "ref.npz"


def score_bad(tmp_path, samples, ref_npz, *extra):
    out = tmp_path / "never.json"
    result = run(["score", samples, "--ref", ref_npz, "--features", "pixels", "--metrics", "fid", "-q", "-o", out,
                  *extra], tmp_path)
    assert not out.exists()
    return result


def test_empty_folder(tmp_path, ref_npz):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(score_bad(tmp_path, tmp_path / "empty", ref_npz), "empty")


def test_truncated_image(tmp_path, ref_npz):
    folder = write_folder(tmp_path / "samples", images(6, n=5))
    data = (folder / "0002.png").read_bytes()
    (folder / "0002.png").write_bytes(data[: len(data) // 2])
    assert_one_line_error(score_bad(tmp_path, folder, ref_npz), "0002.png")


def test_mixed_sizes_need_resize(tmp_path, ref_npz):
    folder = write_folder(tmp_path / "samples", images(7, n=4))
    Image.fromarray(images(8, n=1, size=12)[0]).save(folder / "9999.png")
    assert_one_line_error(score_bad(tmp_path, folder, ref_npz), "9999.png", "--resize")
    ok = run(["score", folder, "--ref", ref_npz, "--features", "pixels", "--metrics", "fid", "-q", "--resize", "8x8"],
             tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_wrong_npz_keys(tmp_path, ref_npz):
    np.savez(tmp_path / "bad.npz", pictures=images(1, n=4))
    assert_one_line_error(score_bad(tmp_path, tmp_path / "bad.npz", ref_npz), "bad.npz", "pictures")


def test_float_array_without_range(tmp_path, ref_npz):
    np.save(tmp_path / "float.npy", images(1, n=4).astype(np.float32) / 255)
    assert_one_line_error(score_bad(tmp_path, tmp_path / "float.npy", ref_npz), "float.npy", "range")


def test_nan_values(tmp_path, ref_npz):
    array = images(1, n=4).astype(np.float32) / 255
    array[1, 2, 3, 0] = np.nan
    np.save(tmp_path / "nan.npy", array)
    assert_one_line_error(score_bad(tmp_path, tmp_path / "nan.npy", ref_npz, "--range", "0,1"), "nan.npy", "NaN")


def test_fewer_than_two_samples(tmp_path, ref_npz):
    np.savez(tmp_path / "one.npz", arr_0=images(1, n=1))
    assert_one_line_error(score_bad(tmp_path, tmp_path / "one.npz", ref_npz), "one.npz", "2")


def test_missing_file_and_unknown_metric(tmp_path, ref_npz):
    assert_one_line_error(score_bad(tmp_path, tmp_path / "nope", ref_npz), "nope")
    result = run(["score", ref_npz, "--ref", ref_npz, "--features", "pixels", "--metrics", "fidd"], tmp_path)
    assert_one_line_error(result, "fidd", "known:", " fid,", " kid")


def test_missing_inception_weights_offline(tmp_path, ref_npz):
    env = {"GENEVAL_INCEPTION_URL": (tmp_path / "no-such-file.pth").as_uri(), "GENEVAL_INCEPTION_WEIGHTS": ""}
    result = run(["score", ref_npz, "--ref", ref_npz, "--metrics", "fid", "-q"], tmp_path, **env)
    assert_one_line_error(result, "GENEVAL_INCEPTION_WEIGHTS", "--weights")


def test_datasets_lists_where_each_split_was_found(tmp_path):
    result = run(["datasets", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= {"mnist", "fashion-mnist", "cifar10", "stacked-mnist"}
    assert rows["fashion-mnist"]["default_extractor"] == "fashion-mnist-cnn"
    data_root = tmp_path / "data"
    data_root.mkdir()
    np.savez(data_root / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    table = run(["datasets"], tmp_path, GENEVAL_DATA=str(data_root))
    assert table.returncode == 0, table.stderr
    mnist_line = next(line for line in table.stdout.splitlines() if line.startswith("mnist "))
    assert str(data_root / "mnist.npz") in mnist_line  # $GENEVAL_DATA is searched first


def test_metrics_lists_every_registered_metric_with_its_direction(tmp_path):
    from geneval.metrics import METRICS

    result = run(["metrics", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(METRICS.names())
    assert rows["fid"]["better"] == "lower" and rows["is"]["better"] == "higher"
    assert "labels" in rows["intra_fid"]["needs"]
    # what a user must pass besides the samples: fld and memorisation need --heldout, PSNR --targets
    assert "heldout" in rows["fld"]["needs"] and "heldout" in rows["memorisation"]["needs"]
    assert "targets" in rows["psnr"]["needs"]
    # rarity has no better side: higher is rarer, which noise and blur raise too (Han et al. 2022, §4)
    assert rows["rarity"]["better"] == "neither"


def test_weights_for_the_pixels_extractor_is_one_line(tmp_path):
    np.savez(tmp_path / "a.npz", images=images(0))
    (tmp_path / "w.pt").write_bytes(b"x")
    result = run(["score", tmp_path / "a.npz", "--ref", tmp_path / "a.npz", "--features", "pixels",
                  "--metrics", "fid", "--weights", tmp_path / "w.pt"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("Error:")]
    assert "w.pt" in line and "the pixels extractor has no weights" in line
