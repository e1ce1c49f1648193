"""Named datasets: real data (skipped with a reason where absent), lookup order, and every error case."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from geneval import datasets
from geneval.datasets import DATASETS, list_datasets, open_dataset, read_idx, stack_mnist
from geneval.errors import GenevalInputError

# sha256 of the decoded arrays: a change means the data or its decoding (orientation, dtype, order) changed.
FINGERPRINTS = {
    ("mnist", "train"): "7260a7355c33",
    ("mnist", "test"): "6d4950903bed",
    ("fashion-mnist", "train"): "2b766da2f58b",
    ("fashion-mnist", "test"): "20c9a769a8b6",
    ("cifar10", "train"): "236658291b13",
    ("cifar10", "test"): "11e041916640",
    ("stacked-mnist", "train"): "17ded4ee3419",
    ("stacked-mnist", "test"): "77f14099b7c1",
    # frozen when the paired tasks were added: a change to the edge detector or to luma changes these
    ("fashion-mnist-edges", "train"): "70d9261599bb",
    ("fashion-mnist-edges", "test"): "946daab3a7a3",
    ("cifar10-gray", "train"): "09b6fb318ec7",
    ("cifar10-gray", "test"): "a804ef7626b8",
}
EXPECTED = {  # name -> (shape, num classes, counts)
    "mnist": ((1, 28, 28), 10, {"train": 60000, "test": 10000}),
    "fashion-mnist": ((1, 28, 28), 10, {"train": 60000, "test": 10000}),
    "cifar10": ((3, 32, 32), 10, {"train": 50000, "test": 10000}),
    "stacked-mnist": ((3, 28, 28), 1000, {"train": 60000, "test": 10000}),
    "fashion-mnist-edges": ((1, 28, 28), 10, {"train": 60000, "test": 10000}),  # paired task: inputs
    "cifar10-gray": ((1, 32, 32), 10, {"train": 50000, "test": 10000}),
}


def require(name: str, request) -> None:
    """Skip (through conftest's fixtures, which say why) unless the data of ``name`` is on this machine."""
    fixture = {"mnist": "mnist_npz", "stacked-mnist": "mnist_npz", "cifar10": "cifar10_npz",
               "fashion-mnist": "fashion_mnist_dir", "fashion-mnist-edges": "fashion_mnist_dir",
               "cifar10-gray": "cifar10_npz"}[name]
    request.getfixturevalue(fixture)


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No dataset can be found: every lookup place points into an empty temporary folder."""
    monkeypatch.setenv("GENEVAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GENEVAL_SHARED_DATASETS", str(tmp_path / "shared"))
    monkeypatch.delenv("GENEVAL_DOWNLOAD", raising=False)
    monkeypatch.setattr(datasets, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.setattr(datasets, "SYSTEM_DATASETS", tmp_path / "usr-share-datasets")
    return tmp_path


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# --------------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_dataset(name, split, request):
    require(name, request)
    images, labels, info = open_dataset(name, split)
    shape, num_classes, counts = EXPECTED[name]
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert images.shape == (counts[split], *shape) and labels.shape == (counts[split],)
    assert labels.min() == 0 and labels.max() == num_classes - 1
    assert info["count"] == counts[split] and info["split"] == split and info["name"] == name
    assert len(info["classes"]) == num_classes and Path(info["path"]).exists()
    assert info["fingerprint"].startswith(FINGERPRINTS[name, split])
    assert not images.flags.writeable and not labels.flags.writeable  # the in-memory cache cannot be corrupted
    again = open_dataset(name, split)
    assert again[2]["fingerprint"] == info["fingerprint"]


def test_cifar10_is_nchw_rgb(cifar10_npz):
    images, labels, _ = open_dataset("cifar10", "test")
    with np.load(cifar10_npz) as archive:
        raw, raw_labels = archive["x_test"][:50], archive["y_test"][:50]
    np.testing.assert_array_equal(images[:50], raw.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(labels[:50], raw_labels)


def test_stacked_mnist_is_the_documented_construction(mnist_npz):
    mnist, mnist_labels, _ = open_dataset("mnist", "test")
    stacked, labels, info = open_dataset("stacked-mnist", "test")
    idx = np.random.default_rng([0, 1]).integers(0, len(mnist), size=(len(mnist), 3))
    for c in range(3):
        np.testing.assert_array_equal(stacked[:, c], mnist[idx[:, c], 0])
    d = mnist_labels[idx]
    np.testing.assert_array_equal(labels, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
    assert len(np.unique(labels)) > 990  # ~10 items per mode: nearly all 1000 modes occur
    assert info["classes"][123] == "123"


def test_stack_mnist_labels_follow_channels():
    rng = np.random.default_rng(5)
    digits = np.arange(10)
    images = np.repeat(digits[:, None, None], 28 * 28, axis=1).reshape(10, 28, 28).astype(np.uint8) * 20
    stacked, labels = stack_mnist(images, digits, num_samples=500, seed=int(rng.integers(1000)))
    channel_digits = stacked[:, :, 0, 0].astype(np.int64) // 20  # each channel's pixel value encodes its digit
    np.testing.assert_array_equal(labels, channel_digits @ np.array([100, 10, 1]))


def test_npz_and_idx_copies_fingerprint_the_same(mnist_npz, tmp_path, monkeypatch):
    """$GENEVAL_DATA comes first; torchvision's MNIST/raw (plain idx) decodes to the same arrays as the npz."""
    images, labels, info = open_dataset("mnist", "test")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte", images[:, 0])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels.astype(np.uint8))
    monkeypatch.setenv("GENEVAL_DATA", str(tmp_path))
    images2, labels2, info2 = open_dataset("mnist", "test")
    assert info2["source"] == "idx" and info2["path"] == str(raw)
    assert info2["fingerprint"] == info["fingerprint"]
    np.testing.assert_array_equal(images2, images)


def test_fashion_mnist_from_a_torchvision_root(fashion_mnist_dir, tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(fashion_mnist_dir / f, raw / f)
    monkeypatch.setenv("GENEVAL_DATA", str(tmp_path))
    images, labels, info = open_dataset("fashion-mnist", "test")
    assert info["path"] == str(raw) and info["source"] == "idx.gz"
    assert info["fingerprint"].startswith(FINGERPRINTS["fashion-mnist", "test"])


def test_list_datasets_says_where_and_how():
    rows = {row["name"]: row for row in list_datasets()}
    assert sorted(rows) == sorted(EXPECTED) == DATASETS.names()
    for name, row in rows.items():
        assert row["splits"] == ["train", "test"] and row["how_to_get"]
        assert set(row["found"]) == {"train", "test"}
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        assert "/usr/share/datasets/fashion-mnist" in rows["fashion-mnist"]["found"]["test"]


def test_list_datasets_when_nothing_is_there(nowhere):
    for row in list_datasets():
        assert row["found"] == {"train": None, "test": None}
    assert "apt-get install -y dataset-fashion-mnist" in {r["name"]: r for r in list_datasets()}[
        "fashion-mnist"]["how_to_get"]


def test_default_extractor_for():
    assert datasets.default_extractor_for("fashion-mnist:test") == "fashion-mnist-cnn"
    assert datasets.default_extractor_for("mnist") == "mnist-cnn"
    assert datasets.default_extractor_for("cifar10:train") == "cifar10-cnn"  # domain net by default; Inception on request
    assert datasets.default_extractor_for("stacked-mnist") == "stacked-mnist-cnn"
    assert datasets.default_extractor_for("samples/") is None


# --------------------------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_known_names():
    with pytest.raises(GenevalInputError, match="unknown dataset 'cifar100'.*cifar10, cifar10-gray, fashion-mnist, fashion-mnist-edges, mnist"):
        open_dataset("cifar100", "train")


def test_wrong_split_names_valid_splits():
    with pytest.raises(GenevalInputError, match="no split 'val'.*valid splits: train, test"):
        open_dataset("mnist", "val")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_missing_files_say_where_and_how(name, nowhere):
    with pytest.raises(GenevalInputError) as excinfo:
        open_dataset(name, "test")
    message = str(excinfo.value)
    assert "not found" in message and str(nowhere / "data") in message and "GENEVAL_DOWNLOAD=1" in message
    if name in ("fashion-mnist", "fashion-mnist-edges"):
        assert "apt-get install -y dataset-fashion-mnist" in message
        assert str(nowhere / "usr-share-datasets" / "fashion-mnist") in message
    else:
        assert "GENEVAL_DATA" in message and str(nowhere / "shared") in message


def test_download_only_when_allowed(nowhere, monkeypatch):
    calls = []

    def fake_download(cls_name, split):
        calls.append((cls_name, split))
        raise RuntimeError("no network in tests")

    monkeypatch.setattr(datasets, "_torchvision_download", fake_download)
    with pytest.raises(GenevalInputError):
        open_dataset("fashion-mnist", "train")
    assert calls == []
    with pytest.raises(RuntimeError, match="no network"):
        open_dataset("fashion-mnist", "train", download=True)
    monkeypatch.setenv("GENEVAL_DOWNLOAD", "1")
    with pytest.raises(RuntimeError, match="no network"):
        open_dataset("cifar10", "test")
    assert calls == [("FashionMNIST", "train"), ("CIFAR10", "test")]


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


@pytest.mark.parametrize("content, match", [
    (b"", "bad magic number empty"),
    (b"\x1f\x8b\x08\x00rubbish", "bad magic number"),
    (bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + b"\0" * 12, "type code 0x0d is not unsigned byte"),
    (bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big"), "header is truncated"),
    (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc", "body has 3 bytes.*needs 5.*truncated or corrupt"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, content, match):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(GenevalInputError, match=match) as excinfo:
        read_idx(path)
    assert str(path) in str(excinfo.value)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(GenevalInputError, match="truncated or corrupt"):
        read_idx(path)


def test_corrupt_dataset_files_reach_the_user(nowhere):
    folder = nowhere / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros((5,), np.uint8))
    with pytest.raises(GenevalInputError, match="do not pair up"):
        open_dataset("fashion-mnist", "test")
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((5, 32, 32), np.uint8))
    with pytest.raises(GenevalInputError, match=r"expected \[N, 1, 28, 28\]"):
        open_dataset("fashion-mnist", "test")


def test_npz_without_the_split_is_a_clear_error(nowhere):
    (nowhere / "data").mkdir()
    np.savez(nowhere / "data" / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2))
    with pytest.raises(GenevalInputError, match="cannot read x_test/y_test"):
        open_dataset("mnist", "test")


def test_npz_with_float_images_is_an_error_not_a_cast(nowhere):
    (nowhere / "data").mkdir()
    np.savez(nowhere / "data" / "mnist.npz", x_test=np.zeros((2, 28, 28), np.float32), y_test=np.zeros(2, np.uint8))
    with pytest.raises(GenevalInputError, match="images float32.*expected uint8"):
        open_dataset("mnist", "test")


def test_a_replaced_file_is_decoded_again(nowhere):
    (nowhere / "data").mkdir()
    path = nowhere / "data" / "mnist.npz"
    np.savez(path, x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    first = open_dataset("mnist", "test")[2]["fingerprint"]
    np.savez(path, x_test=np.ones((3, 28, 28), np.uint8), y_test=np.zeros(3, np.uint8))
    images, _, info = open_dataset("mnist", "test")
    assert len(images) == 3 and info["fingerprint"] != first
