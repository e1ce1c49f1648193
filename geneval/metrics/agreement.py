"""Classifier agreement: how often a classifier assigns each output the class it should have.

The idea of Pix2Pix's "FCN-score" (Isola et al. 2017, §4.2: a network trained on real images classifies the
outputs, and its accuracy against the targets' labels measures how recognisable the outputs are) and of AC-GAN's
and SN-GAN projection's class-conditional evaluation (the accuracy of a pretrained classifier on samples
against their conditioning labels). Here the classifier is the extractor's logits layer (the one IS reads) —
for the domain extractors, geneval's own classifiers of that dataset — and the labels are the generated samples'
labels (class sub-folders, an .npz's ``labels``, or a generator's). On real test images with their true labels
it is that classifier's test accuracy.
"""

from __future__ import annotations

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, register_metric


def classifier_agreement(logits, labels) -> float:
    """Fraction of rows whose highest logit (or probability) is at the row's label."""
    scores, classes = np.asarray(logits), np.asarray(labels)
    if scores.ndim != 2 or classes.shape != (len(scores),):
        raise GenevalInputError(f"classifier agreement: {len(classes)} labels for logits of shape "
                                f"{list(scores.shape)}; expected [N, K] logits and N labels")
    if len(classes) and (classes.min() < 0 or classes.max() >= scores.shape[1]):
        raise GenevalInputError(f"classifier agreement: labels span {int(classes.min())}…{int(classes.max())} but "
                                f"the classifier has {scores.shape[1]} classes")
    return float(np.mean(scores.argmax(axis=1) == classes)) if len(classes) else float("nan")


def _score(inputs: MetricInputs) -> MetricValue:
    logits = inputs.gen_features()
    value = classifier_agreement(logits, inputs.gen.labels)
    count = len(logits)
    # ± the binomial standard error of a proportion over ``count`` independent samples, √(p(1 − p)/N)
    std = float(np.sqrt(value * (1.0 - value) / count)) if count > 1 else None
    return MetricValue(value, std, {"num_classes": int(np.asarray(logits).shape[1]), "count": int(count),
                                    "std": "binomial standard error"})


register_metric(MetricSpec(
    "classifier_agreement", "Classifier agreement", higher_is_better=True, needs_reference=False,
    reference_needs_features=False, compute=_score, layer_role="is", needs_labels=True,
    reference="Isola et al. 2017 (Pix2Pix FCN-score); Odena et al. 2017 (AC-GAN classifier accuracy)",
))


def _score_against_targets(inputs: MetricInputs) -> MetricValue:
    """How often output i falls in the class the classifier gives target i: 1.0 when the outputs are the targets."""
    logits = inputs.gen_features()
    predicted = np.asarray(inputs.targets.features[inputs.layer]).argmax(axis=1)
    value = classifier_agreement(logits, predicted)
    count = len(logits)
    std = float(np.sqrt(value * (1.0 - value) / count)) if count > 1 else None
    return MetricValue(value, std, {"num_classes": int(np.asarray(logits).shape[1]), "count": int(count),
                                    "std": "binomial standard error"})


register_metric(MetricSpec(
    "target_agreement", "Agreement with target class", higher_is_better=True, needs_reference=False,
    reference_needs_features=False, compute=_score_against_targets, layer_role="is", needs_targets=True,
    reference="the FCN-score idea (Isola et al. 2017, §4.2) against the classifier's own classes of the targets",
))
