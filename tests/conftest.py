"""Shared test fixtures: where the real datasets live, and skips that say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Fixtures defined in tests/inception_weights.py (the calibrated fake FID-Inception state dict).
pytest_plugins = ["inception_weights"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_datasets_dir() -> Path:
    """``GENEVAL_SHARED_DATASETS`` or ``../shared/datasets`` beside the project root."""
    return Path(os.environ.get("GENEVAL_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


def require_file(path: Path, how_to_get: str) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent ({how_to_get})")
    return path


@pytest.fixture(scope="session")
def cifar10_npz() -> Path:
    return require_file(shared_datasets_dir() / "cifar10.npz", "set GENEVAL_SHARED_DATASETS to a folder with cifar10.npz")


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    return require_file(shared_datasets_dir() / "mnist.npz", "set GENEVAL_SHARED_DATASETS to a folder with mnist.npz")


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    return require_file(Path("/usr/share/datasets/fashion-mnist"), "apt-get install -y dataset-fashion-mnist")
