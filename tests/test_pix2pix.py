"""Pix2Pix (trainers/pix2pix) and the paired datasets: the PatchGAN receptive fields, the U-Net's skips, per-image
test-time dropout, the edge detector and luma on constructed images, the record's paired metrics equal to geneval's
on the run's own outputs, and smoke runs that resume exactly (geneval's paired scoring: tests/test_paired.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geneval.datasets import luma, open_dataset, sobel_edges
from geneval.errors import GenevalInputError
from trainers.common.checkpoint import load_checkpoint
from trainers.common.runs import RunDir
from trainers.pix2pix.model import PatchGAN, UNet, receptive_field
from trainers.pix2pix.train import PairedData, build, make_config, max_levels, train, translate

GENEVAL = str(Path(sys.executable).with_name("geneval"))


@pytest.mark.parametrize("patch,expected", [("1", 1), ("4", 4), ("10", 10), ("image", 28)])
@pytest.mark.parametrize("conditional", [False, True])
def test_patchgan_receptive_fields(patch, expected, conditional):
    torch.manual_seed(0)
    d = PatchGAN(in_channels=2 if conditional else 1, ndf=4, patch=patch, image_size=(28, 28))
    assert receptive_field(d, (1, 28, 28), conditional) == expected
    scores = d(torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28) if conditional else None)
    assert scores.shape[:2] == (3, 1) and (patch != "image" or scores.shape == (3, 1, 1, 1))


def test_unet_skips_and_shapes():
    torch.manual_seed(0)
    for shape, levels in (((1, 28, 28), 2), ((1, 32, 32), 3), ((1, 32, 32), 5)):
        for skips in (True, False):
            g = UNet(in_channels=1, out_channels=3, ngf=4, num_down=levels, skips=skips).eval()
            masks = [torch.ones(1, *s) for s in g.dropout_shapes(*shape[1:])]
            y = g(torch.randn(2, *shape), masks)
            assert y.shape == (2, 3, *shape[1:]) and y.abs().max() <= 1
    unet = UNet(in_channels=1, out_channels=1, ngf=4, num_down=2, skips=True)
    plain = UNet(in_channels=1, out_channels=1, ngf=4, num_down=2, skips=False)
    # the skips double the decoder's input channels: more weights in every up-layer
    assert sum(p.numel() for p in unet.up.parameters()) > sum(p.numel() for p in plain.up.parameters())
    assert max_levels(28) == 2 and max_levels(32) == 5


def test_test_time_dropout_is_per_image():
    torch.manual_seed(0)
    g = UNet(in_channels=1, out_channels=1, ngf=4, num_down=2)
    x = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    whole = translate(g, x, seed=5)
    assert torch.equal(translate(g, x[3:], seed=5, first=3, batch_size=2), whole[3:])
    assert not torch.equal(translate(g, x, seed=6), whole)  # another seed, other masks
    assert not torch.equal(translate(g, x, seed=5, dropout=False), whole)


def test_sobel_edges_and_luma_on_constructed_images():
    step = np.zeros((1, 1, 6, 8), np.uint8)
    step[..., 4:] = 255  # a vertical step between columns 3 and 4: Sobel |gx| = 4 there, 0 elsewhere
    edges = sobel_edges(step)
    assert edges.dtype == np.uint8 and edges.shape == step.shape
    assert (edges[0, 0][:, [3, 4]] == 255).all() and (edges[0, 0][:, [0, 1, 2, 5, 6, 7]] == 0).all()
    assert (sobel_edges(np.full((1, 1, 5, 5), 200, np.uint8)) == 0).all()  # flat: no edge
    rgb = np.zeros((1, 3, 1, 3), np.uint8)
    rgb[0, :, 0, 0] = (255, 0, 0)
    rgb[0, :, 0, 1] = (0, 255, 0)
    rgb[0, :, 0, 2] = (10, 20, 30)
    assert luma(rgb)[0, 0, 0].tolist() == [76, 150, round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)]


def test_paired_datasets_pair_with_their_targets(fashion_mnist_dir):
    edges, labels, info = open_dataset("fashion-mnist-edges", "test")
    images, target_labels, target_info = open_dataset("fashion-mnist", "test")
    assert np.array_equal(labels, target_labels) and edges.shape == images.shape
    assert np.array_equal(edges[:50], sobel_edges(images[:50]))
    assert info["fingerprint"] != target_info["fingerprint"]
    pairs = PairedData("fashion-mnist-edges", "test", num=10)
    assert torch.equal(pairs.targets, torch.from_numpy(images[:10].copy()))


def test_losses_build_what_they_need():
    p = lambda loss: build(make_config(budget="smoke", task="fashion-mnist-edges", overrides={"loss": loss}))
    assert p("l1")[1] is None  # no discriminator
    assert p("gan")[1].body[0].in_channels == 1  # sees the output only
    assert p("l1+cgan")[1].body[0].in_channels == 2  # the input beside the output
    assert build(make_config(budget="smoke", task="cifar10-gray", overrides={}))[0].up[-1].out_channels == 3


def trainer_state(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.pt")["trainer"]


@pytest.mark.parametrize("loss", ["l1+cgan", "l1"])
def test_smoke_train_resume_exactly(loss, tmp_path, fashion_mnist_dir):
    config = make_config(budget="smoke", task="fashion-mnist-edges", overrides={"loss": loss})
    whole = train(config, out=tmp_path / "whole", budget="smoke")
    assert train(config, out=tmp_path / "split", budget="smoke", stop_after_steps=2) is None
    resumed = train(config, out=tmp_path / "split", budget="smoke", resume=True)
    a, b = trainer_state(tmp_path / "whole"), trainer_state(tmp_path / "split")
    for net in ("generator", "discriminator"):
        if net in a:
            assert all(torch.equal(a[net][k], b[net][k]) for k in a[net])
    strip = lambda r: {k: v for k, v in r.items() if k not in ("wall_time_s", "software", "record_version")}
    assert strip(resumed) == strip(whole)
    log = lambda run: [{k: v for k, v in e.items() if k != "wall_time_s"} for e in RunDir(tmp_path / run).read_log()]
    assert log("split") == log("whole")
    final = whole["metrics"]["final"]
    assert {"l1", "psnr", "ssim", "fid"} <= set(final)
    # the record's paired metrics are geneval's on the run's own outputs
    from geneval.metrics import l1
    from trainers.pix2pix.train import load_generator

    model, _ = load_generator(tmp_path / "whole")
    test = PairedData("fashion-mnist-edges", "test", num=32)
    outputs = translate(model, test.inputs, seed=whole["evaluation"]["output_seed"])
    assert final["l1"]["value"] == pytest.approx(float(l1(outputs, test.targets).mean()), rel=1e-12)
    assert whole["evaluation"]["pairs"] == 32 and (tmp_path / "whole" / "triplets.png").stat().st_size > 0


def test_family_cli_and_rescoring(tmp_path, fashion_mnist_dir):
    from geneval import family

    p2p = family.get("pix2pix")
    out = tmp_path / "p2p"
    done = subprocess.run([GENEVAL, "train", "pix2pix", "--budget", "smoke", "--out", str(out),
                           "--set", "sample_features=fashion-mnist-cnn", "--set", "eval_num=200"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4 and 0 <= summary["target_agreement"] <= 1
    assert 0 <= summary["classifier_agreement"] <= 1
    config = p2p.resolve(preset="pix2pix", budget="smoke", dataset="fashion-mnist-edges",
                         overrides={"sample_features": "fashion-mnist-cnn", "eval_num": "200"}, seed=0)
    record = json.loads((out / "record.json").read_text())
    assert record["compute"] == {"device": "cuda:0" if torch.cuda.is_available() else "cpu", "processes": 1}
    same, _ = p2p.evaluate(out, config=config, which="final", metrics=("fid", "l1"))
    assert same["l1"]["value"] == pytest.approx(record["metrics"]["final"]["l1"]["value"], rel=1e-12)
    off, protocol = p2p.evaluate(out, config=config, which="final", metrics=("fid", "l1"), test_dropout=False)
    assert protocol["test_dropout"] is False and off["l1"]["value"] != same["l1"]["value"]
    # a device that cannot be used, or a torchrun launch (each rank would train the same folder), fails before
    # any work: one line, no run folder
    refusals = [({"WORLD_SIZE": "2"}, [], "runs in one process")]
    if not torch.cuda.is_available():
        refusals.append(({}, ["--device", "cuda"], "CUDA is not available"))
    for extra_env, args, message in refusals:
        refused = subprocess.run([GENEVAL, "train", "pix2pix", "--budget", "smoke", *args, "--out",
                                  str(tmp_path / "refused")], env={**os.environ, **extra_env},
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0 and message in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "refused").exists()


def test_bad_configs_fail_at_start():
    with pytest.raises(GenevalInputError, match="paired"):
        make_config(budget="smoke", task="mnist", overrides={})
    with pytest.raises(GenevalInputError, match="loss"):
        make_config(budget="smoke", task="fashion-mnist-edges", overrides={"loss": "l2"})
    with pytest.raises(GenevalInputError, match="allow 1 to 2"):
        make_config(budget="smoke", task="fashion-mnist-edges", overrides={"num_down": "3"})
    with pytest.raises(GenevalInputError, match="--task"):
        make_config(budget="smoke", task="fashion-mnist-edges", overrides={"task": "cifar10-gray"})
    for budget in ("small", "paper"):
        for task in ("fashion-mnist-edges", "cifar10-gray"):
            make_config(budget=budget, task=task, overrides={})
