"""Bootstrap confidence intervals (Efron 1979), seeded and optional, for any registered metric.

``geneval score --ci 0.95`` recomputes the metric on ``ci_resamples`` resamples of the generated set, drawn with
replacement by ``numpy.random.default_rng(ci_seed)``, with the reference held fixed (it is the measuring stick,
usually much larger and cached), and reports the percentile interval. Tables show ``value ± half-width`` where the
half-width is (high − low)/2; the record keeps ``ci_low``, ``ci_high``, ``ci_level``, ``ci_resamples``, ``ci_seed``.

Caveats: each metric declares its own (``MetricSpec.ci_caveat``, where it is registered), and ``geneval score``
prints it beside the interval — e.g. resampling with replacement duplicates generated samples, which shrinks the
generated k-NN radii of recall and lowers Vendi; metrics that average a per-sample quantity against the fixed
reference (precision, density, rarity, authenticity, memorisation) have none. Metrics of images rather than
features (MS-SSIM) are not resampled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    resamples: int
    seed: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_details(self) -> dict:
        return {"ci_low": self.low, "ci_high": self.high, "ci_level": self.level, "ci_resamples": self.resamples,
                "ci_seed": self.seed, "ci_half_width": self.half_width}


def check_level(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise GenevalInputError(f"confidence level must be in (0, 1), e.g. 0.95; got {level}")
    if resamples < 2:
        raise GenevalInputError(f"bootstrap needs at least 2 resamples, got {resamples}")


def bootstrap(statistic: Callable[[np.ndarray], float], num: int, *, level: float = 0.95, resamples: int = 100,
              seed: int = 0) -> Interval:
    """Percentile interval of ``statistic(indices)`` over resamples ``indices`` of ``range(num)`` with replacement."""
    check_level(level, resamples)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, num, num)) for _ in range(resamples)], dtype=np.float64)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return Interval(float(low), float(high), level, resamples, seed)


def bootstrap_metric(spec: MetricSpec, inputs: MetricInputs, *, level: float, resamples: int, seed: int) -> Interval:
    """The interval of ``spec`` over resamples of the generated features (layer ``inputs.layer``) and labels."""
    from geneval.extract import FeatureSet

    if spec.role == "images":
        raise GenevalInputError(f"--ci does not apply to {spec.name}: it reads images, not features")
    features = inputs.gen.features[inputs.layer]
    labels = inputs.gen.labels
    options = dataclasses.replace(inputs.options, out_dir=None) if hasattr(inputs.options, "out_dir") else inputs.options

    def statistic(index: np.ndarray) -> float:
        resampled = FeatureSet(count=len(index), features={inputs.layer: features[index]},
                               labels=None if labels is None else labels[index])
        again = MetricInputs(gen=resampled, ref=inputs.ref, layer=inputs.layer, options=options, params=inputs.params,
                             cache=inputs.cache.resampled(), warnings=[], heldout=inputs.heldout)
        return spec.compute(again).value

    return bootstrap(statistic, inputs.gen.count, level=level, resamples=resamples, seed=seed)
