"""Reading and writing reference statistics in the formats other tools use.

- TTUR / pytorch-fid ``.npz``: ``mu`` [D] and ``sigma`` [D, D] (float64).
- ADM (guided-diffusion evaluator) reference batches: ``arr_0`` images plus ``mu``/``sigma`` (and spatial
  ``mu_s``/``sigma_s``, which geneval does not use). We read their ``mu``/``sigma``.
geneval writes ``mu``, ``sigma``, ``count`` and a ``geneval_provenance`` JSON string; readers that only look
for ``mu``/``sigma`` are unaffected by the extra keys.
"""

from __future__ import annotations

import json
import zipfile
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
        with open(path, "rb") as handle:
            if not handle.read(4).startswith(b"PK"):
                return False
        with np.load(path, allow_pickle=False) as data:
            return "mu" in data.files and "sigma" in data.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def read_stats_npz(path) -> tuple[GaussianStats, dict]:
    """(statistics, provenance) from a TTUR/pytorch-fid/ADM/geneval ``.npz``, validated: ``mu`` a finite float
    vector [D], ``sigma`` a finite symmetric float matrix [D, D], ``count`` (if present) an integer >= 2."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "mu" not in data.files or "sigma" not in data.files:
                raise GenevalInputError(f"{path}: keys {sorted(data.files)}; expected 'mu' and 'sigma'")
            mu, sigma = data["mu"], data["sigma"]
            count = data["count"] if "count" in data.files else None
            raw = data["geneval_provenance"] if "geneval_provenance" in data.files else None
    except GenevalInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split())[:100]
        if "allow_pickle" in reason or "Object arrays" in reason:
            reason = "it holds Python objects (a pickle); refused without unpickling"
        raise GenevalInputError(f"{path}: not a readable .npz file ({reason})") from None
    for key, value, ndim in (("mu", mu, 1), ("sigma", sigma, 2)):
        if value.dtype.kind not in "fiu" or value.ndim != ndim:
            raise GenevalInputError(f"{path}: '{key}' is {value.dtype} of shape {list(value.shape)}; expected a float "
                                    f"{'vector [D]' if ndim == 1 else 'matrix [D, D]'}")
    if sigma.shape != (len(mu), len(mu)) or len(mu) < 1:
        raise GenevalInputError(f"{path}: 'mu' has shape {list(mu.shape)} and 'sigma' {list(sigma.shape)}; "
                                "expected [D] and [D, D]")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise GenevalInputError(f"{path}: 'mu' or 'sigma' holds NaN or infinite values; expected finite statistics")
    if not np.allclose(sigma, sigma.T, rtol=1e-5, atol=1e-8 * max(1.0, float(np.abs(sigma).max()))):
        raise GenevalInputError(f"{path}: 'sigma' is not symmetric; expected a covariance matrix")
    if count is not None and (count.ndim != 0 or count.dtype.kind not in "iu" or int(count) < 2):
        raise GenevalInputError(f"{path}: 'count' is {count!r}; expected an integer >= 2")
    provenance = {}
    if raw is not None:
        try:
            provenance = json.loads(str(raw))
        except ValueError:
            raise GenevalInputError(f"{path}: 'geneval_provenance' is not JSON; expected the JSON geneval writes") from None
        if not isinstance(provenance, dict):
            raise GenevalInputError(f"{path}: 'geneval_provenance' is not a JSON object")
    stats = GaussianStats.from_mean_cov(mu, sigma, count=None if count is None else int(count))
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
