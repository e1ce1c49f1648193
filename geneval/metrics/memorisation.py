"""Memorisation / near-duplicates: how close each generated sample lies to its nearest training sample.

For each generated sample, the exact (float64) Euclidean distance to its nearest training sample, in the
extractor's feature space (``--features pixels`` for pixel space). What counts as "close" is calibrated on
held-out real data, which no model has seen: the threshold is the ``quantile`` (default 1%) of the held-out
samples' nearest-training distances, so a generator that does not copy has ≈ ``quantile`` of its samples below it
and one that copies has many more. Reported: that fraction, its ratio to ``quantile``, the threshold, and the
closest (generated, training) pairs, which ``geneval score -o DIR`` writes as ``DIR/memorisation_pairs.png``
(generated above, training below) for a person to look at.

In the spirit of Meehan et al. 2020 ("A non-parametric test to detect data-copying") and the nearest-neighbour
checks of Carlini et al. 2023; this is a screening statistic, not their test. Chunked exact k-NN
(``geneval.metrics.knn``): peak memory O(N + chunk²).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geneval.errors import GenevalInputError
from geneval.metrics import knn
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric

log = logging.getLogger(__name__)

DEFAULT_QUANTILE = 0.01
DEFAULT_PAIRS = 16


@dataclass(frozen=True)
class Memorisation:
    fraction_below: float  # of generated samples nearer to the training set than the threshold
    quantile: float
    threshold: float
    gen_distances: np.ndarray  # float64 [N_gen]: distance to the nearest training sample
    gen_nearest: np.ndarray  # int64 [N_gen]: its index in the training set
    heldout_distances: np.ndarray  # float64 [N_heldout]

    @property
    def ratio(self) -> float:
        """fraction_below / quantile: ≈ 1 for a generator that does not copy."""
        return self.fraction_below / self.quantile

    def closest_pairs(self, num: int = DEFAULT_PAIRS) -> list[tuple[int, int, float]]:
        """(generated index, training index, distance) of the ``num`` closest pairs, nearest first."""
        order = np.argsort(self.gen_distances, kind="stable")[:num]
        return [(int(i), int(self.gen_nearest[i]), float(self.gen_distances[i])) for i in order]


def memorisation(gen, train, heldout, *, quantile: float = DEFAULT_QUANTILE, chunk_size: int | None = None) -> Memorisation:
    """Nearest-training distances of generated samples, against a threshold calibrated on held-out real samples."""
    x = knn.feature_matrix(gen, what="memorisation generated features")
    t = knn.feature_matrix(train, what="memorisation training features")
    h = knn.feature_matrix(heldout, what="memorisation held-out features")
    knn.check_same_dim(("generated", x), ("training", t), ("held-out", h), what="memorisation")
    if not 0 < quantile < 1:
        raise GenevalInputError(f"memorisation: quantile must be in (0, 1), got {quantile}")
    if len(h) * quantile < 1:
        raise GenevalInputError(f"memorisation: quantile {quantile} of {len(h)} held-out samples is less than one sample; "
                                f"use at least {int(np.ceil(1 / quantile))} held-out samples or a larger quantile")
    gen_pts, train_pts, held_pts = knn.prepare(
        x, t, h, names=("memorisation generated features", "memorisation training features",
                        "memorisation held-out features"), chunk=chunk_size)
    gen_nn = knn.nearest(gen_pts, train_pts, k=1)
    held_nn = knn.nearest(held_pts, train_pts, k=1)
    held_d = held_nn.distances[:, 0]
    threshold = float(np.quantile(held_d, quantile))
    gen_d = gen_nn.distances[:, 0]
    return Memorisation(float(np.mean(gen_d < threshold)), quantile, threshold, gen_d, gen_nn.indices[:, 0], held_d)


def pair_images(gen_images: np.ndarray, train_images: np.ndarray) -> np.ndarray:
    """Generated images above their nearest training images: uint8 [2·P, C, H, W] for ``save_grid(ncols=P)``."""
    return np.concatenate([gen_images, train_images])


def images_at(source, indices: list[int], *, batch_size: int = 256) -> np.ndarray:
    """uint8 images of ``source`` at ``indices`` (one streaming pass; sources have no random access)."""
    wanted = {int(i) for i in indices}
    found: dict[int, np.ndarray] = {}
    start = 0
    for images, _ in source.batches(batch_size, limit=max(wanted) + 1):
        for i in range(start, start + len(images)):
            if i in wanted:
                found[i] = images[i - start].numpy()
        start += len(images)
    return np.stack([found[int(i)] for i in indices])


def _score_memorisation(inputs: MetricInputs) -> MetricValue:
    opts = inputs.options
    if inputs.heldout is None:
        raise GenevalInputError("memorisation needs held-out real samples that the model never saw (--heldout, e.g. "
                                "fashion-mnist:test when --ref is fashion-mnist:train)")
    result = memorisation(inputs.gen_features(), inputs.ref_features(), inputs.heldout.features[inputs.layer],
                          quantile=inputs.params["memorisation_quantile"])
    pairs = result.closest_pairs()
    details = {"quantile": result.quantile, "threshold": result.threshold, "ratio_to_quantile": result.ratio,
               "median_gen_distance": float(np.median(result.gen_distances)),
               "median_heldout_distance": float(np.median(result.heldout_distances)),
               "closest_pairs": [{"gen": g, "train": t, "distance": d} for g, t, d in pairs],
               "num_heldout": len(result.heldout_distances), "space": inputs.layer}
    if opts.out_dir is not None and inputs.gen_source is not None and inputs.ref_source is not None:
        details["pairs_png"] = str(_write_pairs(Path(opts.out_dir) / "memorisation_pairs.png", inputs, pairs))
    return MetricValue(result.fraction_below, None, details)


def _write_pairs(path: Path, inputs: MetricInputs, pairs) -> Path:
    from geneval.grid import save_grid  # the one place PNGs are written

    gen = images_at(inputs.gen_source, [g for g, _, _ in pairs])
    train = images_at(inputs.ref_source, [t for _, t, _ in pairs])
    if gen.shape[1:] != train.shape[1:]:
        channels = max(gen.shape[1], train.shape[1])
        gen, train = (np.repeat(a, channels // a.shape[1], axis=1) for a in (gen, train))
    save_grid(path, torch.from_numpy(pair_images(gen, train)), ncols=len(pairs), scale=2)
    log.info("memorisation: closest pairs written to %s", path)
    return path


register_metric(MetricSpec(
    "memorisation", "memorised fraction", higher_is_better=False, needs_reference=True, reference_needs_features=True,
    compute=_score_memorisation, layer_role="prdc", needs_heldout=True,
    params=(Param("memorisation_quantile", float, DEFAULT_QUANTILE,
                  "memorisation: threshold quantile of held-out distances.", min=0, max=1, open_bounds=True),),
    reference="nearest-training-sample distance, threshold calibrated on held-out data (cf. Meehan et al. 2020)",
))
