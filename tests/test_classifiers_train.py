"""The domain-classifier trainer on the run harness: exact resume mid-epoch, per-epoch history, record, export."""

from __future__ import annotations

import json

import pytest
import torch

import trainers.classifiers.train as classifier_train
from trainers.classifiers.export import export
from trainers.classifiers.train import parse_args, train
from trainers.common.checkpoint import load_checkpoint
from trainers.common.runs import RunDir


@pytest.fixture
def small_mnist(monkeypatch, mnist_npz):
    """The first 300 training and 100 test images: epochs of 3 steps of 128 (the last batch is partial)."""
    real = classifier_train.open_dataset

    def first(name, split):
        images, labels, info = real(name, split)
        n = 300 if split == "train" else 100
        return images[:n], labels[:n], info

    monkeypatch.setattr(classifier_train, "open_dataset", first)


def _args(out, *extra):
    return parse_args(["--dataset", "mnist", "--out", str(out), "--epochs", "2", "--threads", "1", *extra])


def test_classifier_resumes_exactly_mid_epoch_records_and_exports(small_mnist, tmp_path):
    whole = train(_args(tmp_path / "whole"))
    assert train(_args(tmp_path / "split", "--stop-after-steps", "4")) == {"stopped": True}  # in epoch 2
    resumed = train(_args(tmp_path / "split", "--resume"))
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["trainer"]
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["trainer"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # dropout draws restored too

    def strip(entries):
        return [{k: v for k, v in e.items() if k not in ("wall_time_s", "seconds")} for e in entries]

    assert strip(resumed["history"]) == strip(whole["history"])  # the resumed epoch's figures cover all of it
    assert [e["epoch"] for e in whole["history"]] == [1, 2] and whole["steps"] == 6
    assert strip(RunDir(tmp_path / "split").read_log()) == strip(RunDir(tmp_path / "whole").read_log())
    record = json.loads((tmp_path / "split" / "record.json").read_text())
    assert record["family"] == "classifier" and record["metrics"]["final"]["test_accuracy"]["higher_is_better"]

    meta = export(tmp_path / "split", "mnist-cnn", force=True, out_dir=tmp_path / "weights")
    assert meta["epochs"] == 2 and strip(meta["history"]) == strip(whole["history"])
    assert (tmp_path / "weights" / "mnist-cnn.pt").is_file()
