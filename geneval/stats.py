"""Streaming, mergeable feature statistics in float64.

``GaussianStats`` holds (count, mean, scatter) where scatter = Σ (x − mean)(x − mean)ᵀ. Chunks are combined
with the pairwise update of Chan, Golub & LeVeque (1979), which is exact in real arithmetic and, unlike raw
sums Σx and Σxxᵀ, does not lose digits to cancellation when the mean is large compared with the spread.
Merging shards, processes or resumed runs gives the same mean and covariance as one pass (to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geneval.errors import GenevalInputError


@dataclass
class GaussianStats:
    """Mean and covariance of features, built incrementally. ``cov`` uses the unbiased (N − 1) divisor."""

    count: int
    mean: np.ndarray  # float64 [D]
    scatter: np.ndarray  # float64 [D, D], Σ (x − mean)(x − mean)ᵀ
    # Set only for statistics read from (mu, sigma) files: the covariance as given, count unknown (-1).
    given_cov: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, dim: int) -> "GaussianStats":
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_features(cls, features: np.ndarray) -> "GaussianStats":
        x = _as_feature_matrix(features)
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(len(x), mean, centred.T @ centred)

    @classmethod
    def from_mean_cov(cls, mean: np.ndarray, cov: np.ndarray, count: int | None = None) -> "GaussianStats":
        """Statistics read from a TTUR/pytorch-fid ``.npz`` (mu, sigma), whose count is often unknown."""
        mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        if mean.ndim != 1 or cov.shape != (len(mean), len(mean)):
            raise GenevalInputError(
                f"statistics: mean has shape {list(mean.shape)} and covariance {list(cov.shape)}; "
                "expected [D] and [D, D]"
            )
        return cls(-1 if count is None else count, mean, np.empty((0, 0)), given_cov=cov)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def update(self, features: np.ndarray) -> "GaussianStats":
        """Add a chunk of features in place; returns self."""
        merged = self.merge(GaussianStats.from_features(features))
        self.count, self.mean, self.scatter = merged.count, merged.mean, merged.scatter
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        if self.count < 0 or other.count < 0:
            raise GenevalInputError("statistics read from mu/sigma files have no count and cannot be merged")
        if self.dim != other.dim:
            raise GenevalInputError(f"cannot merge statistics of dimension {self.dim} and {other.dim}")
        if other.count == 0:
            return GaussianStats(self.count, self.mean.copy(), self.scatter.copy())
        if self.count == 0:
            return GaussianStats(other.count, other.mean.copy(), other.scatter.copy())
        total = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / total)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.count * other.count / total)
        return GaussianStats(total, mean, scatter)

    @property
    def cov(self) -> np.ndarray:
        if self.given_cov is not None:
            return self.given_cov
        if self.count < 2:
            raise GenevalInputError(f"a covariance needs at least 2 samples, got {self.count}")
        return self.scatter / (self.count - 1)


def _as_feature_matrix(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise GenevalInputError(f"features must be a 2-D array [N, D], got shape {list(x.shape)}")
    if not np.isfinite(x).all():
        raise GenevalInputError(f"features contain {int((~np.isfinite(x)).sum())} NaN or infinite values")
    return x


def as_gaussian(value) -> GaussianStats:
    """Accept GaussianStats, a (mean, cov) pair, or a feature matrix [N, D]."""
    if isinstance(value, GaussianStats):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return GaussianStats.from_mean_cov(*value)
    return GaussianStats.from_features(_to_numpy(value))


def as_feature_matrix(value, *, what: str) -> np.ndarray:
    """A float64 [N, D] matrix from a numpy array or torch tensor; errors name ``what``."""
    try:
        return _as_feature_matrix(_to_numpy(value))
    except GenevalInputError as error:
        raise GenevalInputError(f"{what}: {error}") from None


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
