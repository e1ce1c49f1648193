"""Run a feature extractor over a source: batches of uint8 in, float features and float64 statistics out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from geneval.features.base import FeatureExtractor
from geneval.stats import GaussianStats


@dataclass
class FeatureSet:
    """Features of one set of images for some layers of one extractor.

    ``features[layer]`` is float32 ``[N, D]`` (kept for KID, IS, k-NN metrics); ``gaussians[layer]`` holds the
    float64 streaming statistics for FID. Either may be missing for a layer read from a mu/sigma file.
    """

    count: int
    features: dict[str, np.ndarray] = field(default_factory=dict)
    gaussians: dict[str, GaussianStats] = field(default_factory=dict)
    labels: np.ndarray | None = None

    def gaussian(self, layer: str) -> GaussianStats:
        if layer not in self.gaussians:
            self.gaussians[layer] = GaussianStats.from_features(self.features[layer])
        return self.gaussians[layer]


def extract_features(
    source,
    extractor: FeatureExtractor,
    layers: tuple[str, ...],
    *,
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = True,
    desc: str = "features",
    fingerprint=None,
    start: int = 0,
) -> FeatureSet:
    """One pass over ``source``: keep every layer's features and stream their Gaussian statistics.

    ``fingerprint`` (a ``ContentFingerprint``), if given, is fed every batch, so the record can name the exact
    pixels that were scored without a second pass over the source.
    """
    total = (len(source) if limit is None else min(limit, len(source))) - min(start, len(source))
    chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    gaussians: dict[str, GaussianStats] = {}
    label_chunks: list[np.ndarray] = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for images, labels in source.batches(batch_size, limit=limit, start=start):
            if fingerprint is not None:
                fingerprint.update(images, labels)
            with torch.inference_mode():
                out = extractor.features(images, layers)
            for layer in layers:
                batch_features = out[layer].float().cpu().numpy()
                chunks[layer].append(batch_features)
                if layer not in gaussians:  # dimension known from the first batch (some layers depend on input size)
                    gaussians[layer] = GaussianStats.empty(batch_features.shape[1])
                gaussians[layer].update(batch_features)
            if labels is not None:
                label_chunks.append(labels.cpu().numpy().astype(np.int64))
            bar.update(len(images))
    features = {layer: np.concatenate(parts) if parts else np.zeros((0, 0), np.float32) for layer, parts in chunks.items()}
    count = len(next(iter(features.values()))) if features else 0
    labels = np.concatenate(label_chunks) if label_chunks else None
    return FeatureSet(count=count, features=features, gaussians=gaussians, labels=labels)


def extract_sharded(source, extractor: FeatureExtractor, layers: tuple[str, ...], *, ctx, batch_size: int = 64,
                    progress: bool = True, desc: str = "features") -> FeatureSet:
    """``extract_features`` over this rank's shard of ``source`` (``geneval.distributed.shard_range``), then
    the whole set on every rank: features and labels gathered in index order, Gaussian statistics merged with
    ``all_reduce``. A rank that fails to read its shard makes every rank raise its error."""
    from geneval import distributed

    start, stop = distributed.shard_range(len(source), rank=ctx.rank, world_size=ctx.world_size)
    local = distributed.agree(ctx, extract_features, source, extractor, layers, batch_size=batch_size,
                              limit=stop, start=start, progress=progress, desc=f"{desc} (rank {ctx.rank})")
    features, gaussians = {}, {}
    for layer in layers:
        features[layer] = distributed.all_gather_rows(local.features[layer])
        dim = features[layer].shape[1] if features[layer].ndim == 2 else 0
        gaussians[layer] = distributed.all_reduce_gaussian(local.gaussians.get(layer), dim)
    labels = None
    if source.has_labels:
        mine = local.labels if local.labels is not None else np.zeros(0, np.int64)
        labels = distributed.all_gather_rows(mine)
    count = len(next(iter(features.values()))) if features else 0
    return FeatureSet(count=count, features=features, gaussians=gaussians, labels=labels)
