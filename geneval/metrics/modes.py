"""Mode counting (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN)
and class-histogram KL against a reference.

Stacked-MNIST protocol: each sample is three MNIST digits in its R, G, B channels; a pretrained MNIST classifier
labels each channel, giving one of 1000 modes ``100·d0 + 10·d1 + d2``. Reported: the number of modes with at
least one sample ("modes covered") and KL(p_gen ‖ uniform) = log K − H(p_gen) of the generated mode histogram,
in nats (VEEGAN/PacGAN tables; their reference code: github.com/akashgit/VEEGAN, github.com/fjxmlzn/PacGAN).
With finite N even perfect samples give KL ≈ (K − 1)/(2N) (0.019 nats for K=1000, N=26,000), and modes covered
< K when N is not ≫ K log K.

Generally, for any dataset with a domain classifier: KL(p_gen ‖ p_ref) between the predicted class histograms
of generated and reference samples (infinite if the generator produces a class the reference never does).

These are pure functions of class predictions; ``geneval.features.stacked`` (extractor ``stacked-mnist-cnn``)
turns stacked-MNIST images into 1000 joint log-probabilities whose argmax is the mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, register_metric
from geneval.stats import as_feature_matrix

STACKED_MODES = 1000


@dataclass(frozen=True)
class ModeCount:
    covered: int  # modes with ≥ min_count samples
    num_modes: int
    kl_uniform: float  # KL(p_gen ‖ uniform), nats
    counts: np.ndarray  # int64 [num_modes]


def stacked_modes(digits) -> np.ndarray:
    """Per-channel digit predictions ``[N, 3]`` (0–9) → mode ids ``100·d0 + 10·d1 + d2`` (as the dataset's labels)."""
    d = np.asarray(digits)
    if d.ndim != 2 or d.shape[1] != 3 or not np.issubdtype(d.dtype, np.integer) or d.min(initial=0) < 0 or d.max(initial=0) > 9:
        raise GenevalInputError(f"stacked-MNIST digits have shape {list(d.shape)}, dtype {d.dtype}; expected [N, 3] "
                                "integers 0–9 (one per channel)")
    return d[:, 0].astype(np.int64) * 100 + d[:, 1] * 10 + d[:, 2]


def count_modes(modes, *, num_modes: int = STACKED_MODES, min_count: int = 1) -> ModeCount:
    """Modes covered and KL(generated mode histogram ‖ uniform) from integer mode ids ``[N]``."""
    counts = class_histogram(modes, num_classes=num_modes, what="mode ids")
    if min_count < 1:
        raise GenevalInputError(f"mode counting: min_count must be ≥ 1, got {min_count}")
    p = counts / counts.sum()
    return ModeCount(int((counts >= min_count).sum()), num_modes, kl_divergence(p, np.full(num_modes, 1.0 / num_modes)),
                     counts)


def class_histogram(labels, *, num_classes: int, what: str = "labels") -> np.ndarray:
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) == 0 or not np.issubdtype(values.dtype, np.integer):
        raise GenevalInputError(f"{what}: expected a non-empty 1-D integer array, got shape {list(values.shape)} "
                                f"dtype {values.dtype}")
    if values.min() < 0 or values.max() >= num_classes:
        raise GenevalInputError(f"{what}: values range over {values.min()}..{values.max()}; expected 0..{num_classes - 1}")
    return np.bincount(values, minlength=num_classes).astype(np.int64)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats with 0·log 0 = 0; +inf where p > 0 = q."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    support = p > 0
    if np.any(q[support] == 0):
        return float("inf")
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def class_histogram_kl(gen_labels, ref_labels, *, num_classes: int) -> float:
    """KL(p_gen ‖ p_ref) between the class histograms of generated and reference labels, in nats."""
    g = class_histogram(gen_labels, num_classes=num_classes, what="generated labels")
    r = class_histogram(ref_labels, num_classes=num_classes, what="reference labels")
    return kl_divergence(g / g.sum(), r / r.sum())


def predicted_classes(logits, *, what: str) -> tuple[np.ndarray, int]:
    x = as_feature_matrix(logits, what=what)
    return x.argmax(axis=1), x.shape[1]


def _score_modes(inputs: MetricInputs) -> MetricValue:
    classes, k = predicted_classes(inputs.gen_features(), what="mode counting logits")
    result = count_modes(classes, num_modes=k)
    return MetricValue(float(result.covered), None, {"num_modes": k, "kl_uniform_nats": result.kl_uniform,
                                                     "empty_modes": int(k - result.covered)})


def _score_modes_kl(inputs: MetricInputs) -> MetricValue:
    classes, k = predicted_classes(inputs.gen_features(), what="mode counting logits")
    return MetricValue(count_modes(classes, num_modes=k).kl_uniform, None, {"num_modes": k, "units": "nats"})


def _score_class_kl(inputs: MetricInputs) -> MetricValue:
    gen_classes, k = predicted_classes(inputs.gen_features(), what="generated logits")
    ref_classes, k_ref = predicted_classes(inputs.ref_features(), what="reference logits")
    if k_ref != k:
        raise GenevalInputError(f"class_kl: generated logits have {k} classes, reference logits {k_ref}")
    value = class_histogram_kl(gen_classes, ref_classes, num_classes=k)
    if not np.isfinite(value):
        inputs.warnings.append("class_kl: the generated samples fall in classes the reference never does; KL is inf")
    return MetricValue(value, None, {"num_classes": k, "units": "nats", "direction": "KL(gen ‖ ref)"})


_MODES_PAPER = "Metz et al. 2017 / Srivastava et al. 2017 (VEEGAN) / Lin et al. 2018 (PacGAN) stacked-MNIST protocol"
register_metric(MetricSpec(
    "modes", "modes covered", higher_is_better=True, needs_reference=False, reference_needs_features=False,
    compute=_score_modes, layer_role="modes", reference=_MODES_PAPER,
))
register_metric(MetricSpec(
    "modes_kl", "KL(modes‖uniform)", higher_is_better=False, needs_reference=False, reference_needs_features=False,
    compute=_score_modes_kl, layer_role="modes", reference=_MODES_PAPER,
))
register_metric(MetricSpec(
    "class_kl", "KL(classes‖ref)", higher_is_better=False, needs_reference=True, reference_needs_features=True,
    compute=_score_class_kl, layer_role="modes", reference="class-histogram KL of domain-classifier predictions",
))
