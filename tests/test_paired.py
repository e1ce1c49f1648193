"""Paired scoring (geneval.paired; `geneval score --targets`): l1 / psnr / ssim / target_agreement equal their
definitions, outputs equal to their targets score perfectly, two folders pair by file name, anything else by index,
and targets that do not pair fail before anything is computed with one line naming both inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import geneval
from geneval.errors import GenevalInputError
from geneval.metrics import l1, psnr, ssim

GENEVAL = str(Path(sys.executable).with_name("geneval"))


def images(n: int, seed: int, shape=(1, 16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def noisy(x: np.ndarray, seed: int, amplitude: int = 30) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, x.shape)
    return np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)


def values(record) -> dict:
    return {r.metric: r for r in record.results}


def test_paired_metrics_equal_their_definitions():
    targets = images(40, 0, (3, 17, 19))
    outputs = noisy(targets, 1)
    record = geneval.score(outputs, targets=targets, metrics=("l1", "psnr", "ssim"), progress=False)
    got = values(record)
    diff = outputs.astype(np.float64) - targets.astype(np.float64)
    assert got["l1"].value == pytest.approx(np.abs(diff).mean(), rel=1e-12)
    per_image_psnr = 10 * np.log10(255.0**2 / (diff**2).reshape(40, -1).mean(1))
    assert got["psnr"].value == pytest.approx(per_image_psnr.mean(), rel=1e-12)
    assert got["psnr"].std == pytest.approx(per_image_psnr.std(ddof=1) / np.sqrt(40), rel=1e-9)
    assert got["ssim"].value == pytest.approx(ssim(outputs, targets).mean(), rel=1e-12)
    assert got["ssim"].label == "SSIM to target" and got["ssim"].higher_is_better  # no extractor named
    assert record.provenance["extractor"]["extractor"] == "pixels"  # images alone: no network was built
    assert record.provenance["targets"]["aligned_by"] == "index"


def test_outputs_equal_to_targets_score_perfectly(fashion_mnist_dir):
    record = geneval.score("fashion-mnist:test", targets="fashion-mnist:test", num=300, progress=False,
                           metrics=("l1", "psnr", "ssim", "target_agreement"), features="fashion-mnist-cnn")
    got = values(record)
    assert got["l1"].value == 0 and got["ssim"].value == pytest.approx(1.0)
    assert got["psnr"].value == float("inf") and got["psnr"].details["identical_pairs"] == 300
    assert got["target_agreement"].value == 1.0


def test_target_agreement_is_the_classifiers_own_classes_of_the_targets(fashion_mnist_dir):
    from geneval.datasets import open_dataset

    x, _, _ = open_dataset("fashion-mnist", "test")
    blurred = noisy(x[:400], 3, amplitude=90)  # heavy noise: some outputs change class
    got = values(geneval.score(blurred, targets=x[:400], metrics=("target_agreement",), features="fashion-mnist-cnn",
                               progress=False))["target_agreement"]
    from geneval.evaluate import build_extractor

    net = build_extractor("fashion-mnist-cnn", mode=None, weights=None, device="cpu")
    layer = net.default_layer("is")
    import torch

    logits = lambda a: net.features(torch.from_numpy(np.array(a)), (layer,))[layer].numpy()
    expected = float((logits(blurred).argmax(1) == logits(x[:400]).argmax(1)).mean())
    assert got.value == expected and 0.3 < expected < 1.0
    assert got.std == pytest.approx(np.sqrt(expected * (1 - expected) / 400))


def write_folder(folder: Path, arrays: np.ndarray, names: list[str]) -> None:
    folder.mkdir()
    for array, name in zip(arrays, names):
        Image.fromarray(array[0]).save(folder / name)


def test_two_folders_pair_by_file_name(tmp_path):
    targets = images(6, 4)
    outputs = noisy(targets, 5)
    names = [f"img{i}.png" for i in range(6)]
    write_folder(tmp_path / "out", outputs, names)
    write_folder(tmp_path / "tgt", targets, [n.replace(".png", ".bmp") for n in names])  # extensions may differ
    record = geneval.score(tmp_path / "out", targets=tmp_path / "tgt", metrics=("l1",), progress=False)
    assert values(record)["l1"].value == pytest.approx(l1(outputs, targets).mean(), rel=1e-12)
    assert record.provenance["targets"]["aligned_by"] == "file name"
    (tmp_path / "tgt" / "img3.bmp").rename(tmp_path / "tgt" / "other.bmp")
    with pytest.raises(GenevalInputError, match=r"out/img3\.\* has no target of that name \(6 samples, 6 targets\)"):
        geneval.score(tmp_path / "out", targets=tmp_path / "tgt", metrics=("l1",), progress=False)


def test_num_pairs_the_first_n_of_each():
    targets = images(30, 6)
    outputs = noisy(targets, 7)
    got = values(geneval.score(outputs, targets=targets[:12], num=10, metrics=("psnr",), progress=False))["psnr"]
    assert got.value == pytest.approx(psnr(outputs[:10], targets[:10]).mean(), rel=1e-12)
    with pytest.raises(GenevalInputError, match="has 5 targets for the first 10 samples"):
        geneval.score(outputs, targets=targets[:5], num=10, metrics=("psnr",), progress=False)


def test_bad_targets_fail_with_one_line(tmp_path):
    np.save(tmp_path / "out.npy", images(10, 8))
    np.save(tmp_path / "short.npy", images(9, 9))
    np.save(tmp_path / "rgb.npy", images(10, 9, (3, 16, 16)))

    def run(*args):
        done = subprocess.run([GENEVAL, "score", str(tmp_path / "out.npy"), *args, "-q"], capture_output=True, text=True,
                              timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error:"), done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        return lines[0]

    line = run("--targets", str(tmp_path / "short.npy"), "--metrics", "l1,ssim")
    assert "9 targets" in line and "10 samples" in line and "short.npy" in line and "out.npy" in line
    assert "C×H×W" in run("--targets", str(tmp_path / "rgb.npy"), "--metrics", "psnr")
    assert "--targets" in run("--metrics", "ssim")
    assert "missing.npy" in run("--targets", str(tmp_path / "missing.npy"), "--metrics", "l1")
