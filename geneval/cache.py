"""Reference-side feature cache: HDF5 files under ``$GENEVAL_CACHE`` (default ``~/.cache/geneval``).

A cache entry holds one layer's features (float32), its float64 statistics (count, mean, scatter) and the
labels, keyed by the sha256 of the *full* provenance: the source's content fingerprint and count, the
extractor name, its weights' sha256, the preprocessing mode, the layer and this file format's version. Two
different inputs can therefore never share an entry, and changing any of them misses the cache. Entries are
written to a temporary file and renamed, so a crash never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from geneval.atomic import atomic_path
from geneval.extract import FeatureSet
from geneval.stats import GaussianStats

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def cache_root() -> Path:
    return Path(os.environ.get("GENEVAL_CACHE") or Path.home() / ".cache" / "geneval")


def entry_key(provenance: dict) -> str:
    canonical = json.dumps({"format_version": FORMAT_VERSION, **provenance}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_path(provenance: dict) -> Path:
    return cache_root() / "features" / f"{entry_key(provenance)}.h5"


def load_layer(provenance: dict) -> tuple[np.ndarray, GaussianStats, np.ndarray | None] | None:
    """(features, statistics, labels) for one layer, or None on a miss (or an unreadable entry)."""
    path = entry_path(provenance)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            stored = json.loads(handle.attrs["provenance"])
            if stored != {"format_version": FORMAT_VERSION, **provenance}:
                log.warning("cache entry %s does not match its key; ignoring it", path)
                return None
            features = handle["features"][()]
            stats = GaussianStats(int(handle["count"][()]), handle["mean"][()], handle["scatter"][()])
            labels = handle["labels"][()] if "labels" in handle else None
    except (OSError, KeyError, ValueError) as error:
        log.warning("cache entry %s is unreadable (%s); recomputing", path, error)
        return None
    return features, stats, labels


def save_layer(provenance: dict, features: np.ndarray, stats: GaussianStats, labels: np.ndarray | None) -> Path:
    path = entry_path(provenance)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["provenance"] = json.dumps({"format_version": FORMAT_VERSION, **provenance}, sort_keys=True)
            handle["features"] = np.asarray(features, np.float32)
            handle["count"] = np.int64(stats.count)
            handle["mean"] = stats.mean
            handle["scatter"] = stats.scatter
            if labels is not None:
                handle["labels"] = labels
    return path


def load_feature_set(provenance_by_layer: dict[str, dict]) -> FeatureSet | None:
    """A FeatureSet if every layer is cached, else None."""
    loaded = {layer: load_layer(prov) for layer, prov in provenance_by_layer.items()}
    if any(entry is None for entry in loaded.values()):
        return None
    first = next(iter(loaded.values()))
    return FeatureSet(
        count=len(first[0]),
        features={layer: entry[0] for layer, entry in loaded.items()},
        gaussians={layer: entry[1] for layer, entry in loaded.items()},
        labels=first[2],
    )


def save_feature_set(provenance_by_layer: dict[str, dict], feature_set: FeatureSet) -> None:
    for layer, prov in provenance_by_layer.items():
        save_layer(prov, feature_set.features[layer], feature_set.gaussian(layer), feature_set.labels)
