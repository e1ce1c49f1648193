"""Classifier agreement (geneval/metrics/agreement.py): constructed cases, and on real Fashion-MNIST test images with
their labels it equals the domain classifier's test accuracy recorded when that classifier was trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import geneval
from geneval.errors import GenevalInputError
from geneval.metrics.agreement import classifier_agreement

WEIGHTS = Path(geneval.__file__).parent / "weights"


def test_constructed_cases():
    labels = np.array([0, 1, 2, 1])
    logits = np.eye(3)[labels] * 5.0
    assert classifier_agreement(logits, labels) == 1.0
    assert classifier_agreement(logits, (labels + 1) % 3) == 0.0
    logits[0] = [0.0, 1.0, 0.0]  # one of four now wrong
    assert classifier_agreement(logits, labels) == 0.75


def test_bad_labels_name_what_was_expected():
    with pytest.raises(GenevalInputError, match=r"3 labels for logits of shape \[4, 3\]"):
        classifier_agreement(np.zeros((4, 3)), [0, 1, 2])
    with pytest.raises(GenevalInputError, match="labels span 0…5 but the classifier has 3 classes"):
        classifier_agreement(np.zeros((2, 3)), [0, 5])


def test_real_test_images_give_the_classifiers_recorded_accuracy():
    try:
        record = geneval.score("fashion-mnist:test", metrics=["classifier_agreement"], features="fashion-mnist-cnn")
    except GenevalInputError as exc:
        pytest.skip(f"Fashion-MNIST is not installed here: {exc}")
    recorded = json.loads((WEIGHTS / "fashion-mnist-cnn.json").read_text())["test_accuracy"]  # by its trainer
    (result,) = record.results
    assert result.metric == "classifier_agreement" and result.higher_is_better
    assert result.value == pytest.approx(recorded, abs=5e-5)  # recorded to 4 decimals
    assert result.std == pytest.approx((result.value * (1 - result.value) / 10000) ** 0.5, rel=1e-12)  # binomial s.e.


def test_samples_without_labels_are_refused_before_any_feature_pass(tmp_path):
    images = np.zeros((4, 1, 28, 28), np.uint8)
    np.savez(tmp_path / "x.npz", images=images)
    with pytest.raises(GenevalInputError, match="classifier_agreement needs class labels"):
        geneval.score(str(tmp_path / "x.npz"), metrics=["classifier_agreement"], features="fashion-mnist-cnn")
