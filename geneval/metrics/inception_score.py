"""Inception Score (Salimans et al. 2016, "Improved techniques for training GANs").

IS = exp( E_x KL( p(y|x) ‖ p(y) ) ), computed on each of ``splits`` consecutive, equal-as-possible splits;
reported as mean ± std (population std, ``ddof=0``) over splits. This is the convention of the improved-GAN
reference code and TTUR: softmax over the 1008 *unbiased* logits of the 2015-12-05 Inception graph (pool3 @ W,
without the bias), 10 splits, no shuffling. torch-fidelity shuffles the samples first with
``np.random.RandomState(2020).permutation``; pass ``shuffle_seed=2020`` to reproduce its numbers exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.stats import as_feature_matrix


@dataclass(frozen=True)
class Estimate:
    """A metric estimated over several splits or subsets: mean, population std, and the individual values."""

    mean: float
    std: float
    values: tuple[float, ...]


def inception_score(logits, *, splits: int = 10, shuffle_seed: int | None = None) -> Estimate:
    """Inception Score from class logits ``[N, K]`` (softmax is applied here, in float64)."""
    x = as_feature_matrix(logits, what="Inception Score logits")
    n = len(x)
    if splits < 1:
        raise GenevalInputError(f"Inception Score: splits must be ≥ 1, got {splits}")
    if n < 2 * splits:
        raise GenevalInputError(
            f"Inception Score: {n} samples cannot fill {splits} splits of at least 2; "
            "use more samples or fewer splits"
        )
    if shuffle_seed is not None:
        x = x[np.random.RandomState(shuffle_seed).permutation(n)]
    log_p = x - _logsumexp(x)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_chunk, log_p_chunk = p[lo:hi], log_p[lo:hi]
        log_marginal = np.log(p_chunk.mean(axis=0))
        kl = (p_chunk * (log_p_chunk - log_marginal)).sum(axis=1).mean()
        scores.append(float(np.exp(kl)))
    return Estimate(float(np.mean(scores)), float(np.std(scores)), tuple(scores))


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _score_is(inputs: MetricInputs) -> MetricValue:
    splits, shuffle_seed = inputs.params["is_splits"], inputs.params["is_shuffle_seed"]
    estimate = inception_score(inputs.gen_features(), splits=splits, shuffle_seed=shuffle_seed)
    details = {"splits": splits, "shuffle_seed": shuffle_seed, "split_values": list(estimate.values)}
    return MetricValue(estimate.mean, estimate.std, details)


register_metric(MetricSpec(
    "is", "IS", higher_is_better=True, needs_reference=False, reference_needs_features=False, compute=_score_is,
    params=(Param("is_splits", int, 10, "IS: consecutive splits averaged.", min=1),
            Param("is_shuffle_seed", int, None, "IS: shuffle the samples first with this seed (2020: torch-fidelity's "
                  "numbers; default: no shuffle, as TTUR).")),
    reference="Salimans et al. 2016 (improved-gan inception_score.py; TTUR; torch-fidelity)",
))
