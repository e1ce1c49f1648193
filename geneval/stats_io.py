"""Reading and writing reference statistics in the formats other tools use.

- TTUR / pytorch-fid ``.npz``: ``mu`` [D] and ``sigma`` [D, D] (float64).
- ADM (guided-diffusion evaluator) reference batches: ``arr_0`` images plus ``mu``/``sigma`` (and spatial
  ``mu_s``/``sigma_s``, which geneval does not use). We read their ``mu``/``sigma``.
geneval writes ``mu``, ``sigma``, ``count`` and a ``geneval_provenance`` JSON string; readers that only look
for ``mu``/``sigma`` are unaffected by the extra keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from geneval.atomic import atomic_path
from geneval.errors import GenevalInputError
from geneval.stats import GaussianStats


def is_stats_file(path) -> bool:
    """True for an existing ``.npz`` that holds ``mu`` and ``sigma``."""
    path = Path(str(path))
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path) as data:
            return "mu" in data.files and "sigma" in data.files
    except (OSError, ValueError):
        return False


def read_stats_npz(path) -> tuple[GaussianStats, dict]:
    """(statistics, provenance) from a TTUR/pytorch-fid/ADM/geneval ``.npz``."""
    path = Path(path)
    try:
        with np.load(path) as data:
            if "mu" not in data.files or "sigma" not in data.files:
                raise GenevalInputError(f"{path}: keys {sorted(data.files)}; expected 'mu' and 'sigma'")
            count = int(data["count"]) if "count" in data.files else None
            stats = GaussianStats.from_mean_cov(data["mu"], data["sigma"], count=count)
            provenance = json.loads(str(data["geneval_provenance"])) if "geneval_provenance" in data.files else {}
    except (OSError, ValueError) as error:
        if isinstance(error, GenevalInputError):
            raise
        raise GenevalInputError(f"{path}: not a readable .npz file ({error})") from None
    provenance.setdefault("stats_file", str(path))
    return stats, provenance


def write_stats_npz(path, stats: GaussianStats, provenance: dict) -> Path:
    """Write ``mu``, ``sigma``, ``count`` and provenance atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # A file object, not a name: np.savez would append ".npz" to the temporary name.
        np.savez(
            handle,
            mu=stats.mean,
            sigma=stats.cov,
            count=np.int64(stats.count),
            geneval_provenance=np.array(json.dumps(provenance, sort_keys=True)),
        )
    return Path(path)
