"""Reference-side feature cache: HDF5 files under ``$GENEVAL_CACHE`` (default ``~/.cache/geneval``).

A cache entry holds one layer's features (float32), its float64 statistics (count, mean, scatter) and the
labels, keyed by the sha256 of the *full* provenance: the source's content fingerprint and count, the
extractor name, its weights' sha256, the preprocessing mode, the layer and this file format's version. Two
different inputs can therefore never share an entry, and changing any of them misses the cache.

Safety: an entry is written to a temporary file in the same folder, flushed to disk and renamed over the
entry, so a process killed at any moment leaves the entry absent or complete. Each entry also stores the
sha256 of its arrays; an entry that does not open, lacks a dataset, or whose content does not match that hash
(a truncated copy, a bad disk) is reported in one warning line and recomputed, never read. Two processes
filling the same entry at once compute the same bytes and the last rename wins, so both finish with the same
numbers and one valid entry. A cache that cannot be written (full disk, read-only folder) is a warning: the
score is still computed and printed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import h5py
import numpy as np

from geneval.atomic import atomic_path
from geneval.extract import FeatureSet
from geneval.stats import GaussianStats

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: entries carry the sha256 of their arrays
STALE_TEMPORARY_S = 6 * 3600  # a temporary file this old was left by a killed writer


def cache_root() -> Path:
    return Path(os.environ.get("GENEVAL_CACHE") or Path.home() / ".cache" / "geneval")


def entry_key(provenance: dict) -> str:
    canonical = json.dumps({"format_version": FORMAT_VERSION, **provenance}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_path(provenance: dict) -> Path:
    return cache_root() / "features" / f"{entry_key(provenance)}.h5"


def content_sha256(features: np.ndarray, count: int, mean: np.ndarray, scatter: np.ndarray,
                   labels: np.ndarray | None) -> str:
    """sha256 of an entry's arrays (dtype, shape and bytes of each), stored in the entry and checked on load."""
    digest = hashlib.sha256()
    for name, array in (("features", np.asarray(features, np.float32)), ("count", np.int64(count)),
                        ("mean", np.asarray(mean, np.float64)), ("scatter", np.asarray(scatter, np.float64)),
                        ("labels", None if labels is None else np.asarray(labels))):
        if array is None:
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{list(array.shape)}:".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_layer(provenance: dict) -> tuple[np.ndarray, GaussianStats, np.ndarray | None] | None:
    """(features, statistics, labels) for one layer, or None on a miss (or an unreadable or damaged entry)."""
    path = entry_path(provenance)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            stored = json.loads(handle.attrs["provenance"])
            if stored != {"format_version": FORMAT_VERSION, **provenance}:
                log.warning("cache entry %s does not match its key; ignoring it", path)
                return None
            expected = str(handle.attrs["content_sha256"])
            features = handle["features"][()]
            count, mean, scatter = int(handle["count"][()]), handle["mean"][()], handle["scatter"][()]
            labels = handle["labels"][()] if "labels" in handle else None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        log.warning("cache entry %s is unreadable (%s); recomputing", path, " ".join(str(error).split())[:120])
        return None
    if content_sha256(features, count, mean, scatter, labels) != expected or len(features) != count:
        log.warning("cache entry %s is damaged (its content does not match its sha256); recomputing", path)
        return None
    return features, GaussianStats(count, mean, scatter), labels


def save_layer(provenance: dict, features: np.ndarray, stats: GaussianStats, labels: np.ndarray | None) -> Path:
    """Write one entry atomically (temporary file, fsync, rename); raises OSError if the disk refuses."""
    path = entry_path(provenance)
    features = np.asarray(features, np.float32)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["provenance"] = json.dumps({"format_version": FORMAT_VERSION, **provenance}, sort_keys=True)
            handle.attrs["content_sha256"] = content_sha256(features, stats.count, stats.mean, stats.scatter, labels)
            handle["features"] = features
            handle["count"] = np.int64(stats.count)
            handle["mean"] = stats.mean
            handle["scatter"] = stats.scatter
            if labels is not None:
                handle["labels"] = labels
        with open(tmp, "rb+") as flushed:  # on disk before the rename makes it visible
            os.fsync(flushed.fileno())
    _remove_stale_temporaries(path.parent)
    return path


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files that killed writers left behind (old enough that no live writer owns them)."""
    now = time.time()
    for leftover in folder.glob(".*.tmp"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMPORARY_S:
                leftover.unlink()
        except OSError:
            pass


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


def save_feature_set(provenance_by_layer: dict[str, dict], feature_set: FeatureSet) -> bool:
    """Write every layer's entry; False (with one warning line) when the disk refuses, e.g. when it is full."""
    try:
        for layer, prov in provenance_by_layer.items():
            save_layer(prov, feature_set.features[layer], feature_set.gaussian(layer), feature_set.labels)
    except (OSError, RuntimeError) as error:  # h5py raises RuntimeError when closing a file the disk refused
        found = re.search(r"error message = '([^']+)'", str(error))
        reason = found[1] if found else " ".join(str(getattr(error, "strerror", None) or error).split())[:120]
        log.warning("could not write the reference cache under %s (%s); continuing without it", cache_root(), reason)
        return False
    return True
