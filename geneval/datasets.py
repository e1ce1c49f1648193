"""Named reference datasets as uint8 ``[N, C, H, W]`` arrays with int64 labels, found on disk without a network.

``open_dataset(name, split)`` returns ``(images, labels, info)``. ``images`` is uint8 ``[N, C, H, W]``,
``labels`` int64 ``[N]``, and ``info`` says where the data came from and carries a sha256 ``fingerprint`` of
the decoded arrays (shape, dtype and bytes of both), so two copies in different formats (an ``.npz`` archive
and torchvision's idx files) fingerprint the same when they hold the same data.

Where each dataset is looked for, in this order (the first hit wins):

1. ``$GENEVAL_DATA`` (if set): an ``<name>.npz`` archive (``mnist.npz``, ``cifar10.npz``), then a torchvision
   root or plain folder of idx files, plain or ``.gz`` (``MNIST/raw`` or ``mnist/``; ``FashionMNIST/raw`` or
   ``fashion-mnist/``; ``cifar-10-batches-py/``).
2. ``$GENEVAL_SHARED_DATASETS`` (if set), then ``../shared/datasets`` beside the project root: the same
   ``.npz`` archives (the offline copies that tests and benchmarks use).
3. Fashion-MNIST only: ``/usr/share/datasets/fashion-mnist/`` (Debian/Ubuntu package
   ``dataset-fashion-mnist``: the four original idx ``.gz`` files).
4. ``~/.cache/geneval/data`` (only when ``$GENEVAL_DATA`` is unset): where downloads go, laid out as in 1.
5. Nothing found: if downloads are allowed (``download=True`` or ``GENEVAL_DOWNLOAD=1``), torchvision downloads
   the dataset into ``$GENEVAL_DATA`` (or ``~/.cache/geneval/data``); otherwise a ``GenevalInputError`` lists
   the places searched and how to get the files.

``stacked-mnist`` is built from MNIST (see :func:`stack_mnist`): split ``s`` has as many items as MNIST's
split ``s``; item ``i`` puts three MNIST digits of that split, drawn with
``numpy.random.default_rng([0, {"train": 0, "test": 1}[s]]).integers(0, N, size=(N, 3))``, into the R, G, B
channels; 1000 classes, label ``100·d0 + 10·d1 + d2``.

Paired (image-to-image) tasks are datasets whose item ``i`` is the *input* for item ``i`` of their ``target``
dataset's same split (same labels, same order), built deterministically from it:

* ``fashion-mnist-edges`` (target ``fashion-mnist``): white edges on black, ``255·[|∇I| ≥ 1]`` with ``∇`` the 3×3
  Sobel operator on the image scaled to [0, 1] (edge pixels replicated at the border) — a fixed edge detector in
  place of the HED edges of Isola et al. 2017's edges → shoes task;
* ``cifar10-gray`` (target ``cifar10``): one channel, ``round(0.299 R + 0.587 G + 0.114 B)`` (ITU-R BT.601 luma; the
  paper's colourisation task uses the L channel of Lab).

Decoded arrays are cached in memory per (dataset, split, source file) and returned read-only.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from geneval.errors import GenevalInputError
from geneval.registry import Registry

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SYSTEM_DATASETS = Path("/usr/share/datasets")  # Debian/Ubuntu dataset-* packages install here
STACKED_MNIST_SEED = 0

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IDX_FILES = {  # split -> (images, labels), as released
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class Source:
    """One place a split was found: ``kind`` is ``npz``, ``idx`` or ``torchvision``; ``path`` a file or folder."""

    kind: str
    path: Path


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # C, H, W
    description: str
    how_to_get: str
    find: Callable[[str], Source | None]  # split -> where it is on disk, or None
    load: Callable[[str, Source | None, bool], tuple[np.ndarray, np.ndarray, Source]]  # split, found, download
    default_extractor: str | None = None  # feature extractor a metric uses by default on this data
    target: str | None = None  # paired tasks: the dataset whose item i (same split) is the target of item i


DATASETS: Registry[DatasetSpec] = Registry("dataset")


# --------------------------------------------------------------------------------------------- public API


def open_dataset(name: str, split: str, *, download: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return ``(images uint8 [N,C,H,W], labels int64 [N], info)`` for a named dataset and split.

    ``download`` (or ``GENEVAL_DOWNLOAD=1``) lets torchvision fetch a dataset found nowhere on disk.
    """
    spec = DATASETS.get(name)
    if split not in SPLITS:
        raise GenevalInputError(f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(SPLITS)}")
    allow_download = download or os.environ.get("GENEVAL_DOWNLOAD", "") == "1"
    images, labels, source = spec.load(split, spec.find(split), allow_download)
    info = {
        "name": name,
        "split": split,
        "source": source.kind,
        "path": str(source.path),
        "count": int(len(labels)),
        "shape": list(images.shape[1:]),
        "classes": list(spec.classes),
        "fingerprint": _fingerprint(images, labels),
    }
    return images, labels, info


def list_datasets() -> list[dict]:
    """One row per dataset: name, splits, where each split was found (or None) and how to get it."""
    rows = []
    for name in DATASETS:
        spec = DATASETS.get(name)
        found = {split: _describe(spec.find(split)) for split in SPLITS}
        rows.append({
            "name": name,
            "splits": list(SPLITS),
            "shape": list(spec.shape),
            "num_classes": len(spec.classes),
            "description": spec.description,
            "found": found,
            "how_to_get": spec.how_to_get,
            "default_extractor": spec.default_extractor,
            "target": spec.target,
        })
    return rows


def default_extractor_for(spec: str) -> str | None:
    """The extractor metrics use by default for a named dataset (``"fashion-mnist:test"`` → ``fashion-mnist-cnn``).

    Every embedded dataset has one (a domain classifier shipped with geneval); None for anything that is not a
    dataset name, where ``score`` falls back to the FID-Inception network.
    """
    name = spec.split(":", 1)[0]
    return DATASETS.get(name).default_extractor if name in DATASETS else None


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an idx file (optionally ``.gz``) of unsigned bytes into a uint8 array of the declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise GenevalInputError(f"{path}: cannot read idx file ({exc}); the file may be truncated or corrupt")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise GenevalInputError(f"{path}: not an idx file (bad magic number {data[:4].hex() or 'empty'})")
    if data[2] != 0x08:
        raise GenevalInputError(f"{path}: idx type code 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise GenevalInputError(f"{path}: idx header is truncated ({len(data)} bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise GenevalInputError(
            f"{path}: idx body has {len(data) - header} bytes, header shape {shape} needs {expected}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def stack_mnist(
    images: np.ndarray, labels: np.ndarray, *, num_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked MNIST: ``num_samples`` RGB images whose channels are three MNIST digits.

    ``idx = numpy.random.default_rng(seed).integers(0, len(images), size=(num_samples, 3))``; item ``i`` has
    channel ``c`` = ``images[idx[i, c]]`` and label ``100·labels[idx[i,0]] + 10·labels[idx[i,1]] + labels[idx[i,2]]``.
    ``images`` is uint8 ``[N, 1, 28, 28]`` or ``[N, 28, 28]``.
    """
    gray = images.reshape(len(images), *images.shape[-2:])
    idx = np.random.default_rng(seed).integers(0, len(gray), size=(num_samples, 3))
    stacked = np.stack([gray[idx[:, c]] for c in range(3)], axis=1)
    digits = labels.astype(np.int64)[idx]
    return stacked, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


# --------------------------------------------------------------------------------------------- search


def _data_root() -> Path | None:
    root = os.environ.get("GENEVAL_DATA")
    return Path(root).expanduser() if root else None


def _download_root() -> Path:
    return _data_root() or Path.home() / ".cache" / "geneval" / "data"


def _idx_pair(folder: Path, split: str) -> Source | None:
    """The folder holds both idx files of the split, plain or ``.gz``."""
    for suffix in ("", ".gz"):
        if all((folder / (f + suffix)).is_file() for f in IDX_FILES[split]):
            return Source("idx" + suffix, folder)
    return None


def _candidates(npz_name: str | None, folders: list[str], system: str | None) -> list[tuple[str, Path]]:
    """Places to look, in lookup order: ``("npz", file)``, ``("idx", folder)`` or ``("torchvision", root)``."""

    def in_root(root: Path) -> list[tuple[str, Path]]:
        found = [("npz", root / npz_name)] if npz_name else []
        return found + [("torchvision" if sub.startswith("cifar") else "idx", root / sub) for sub in folders]

    root = _data_root()
    places = in_root(root) if root else []
    shared = [os.environ.get("GENEVAL_SHARED_DATASETS"), PROJECT_ROOT.parent / "shared" / "datasets"]
    if npz_name:
        places += [("npz", Path(folder).expanduser() / npz_name) for folder in shared if folder]
    if system:
        places.append(("idx", SYSTEM_DATASETS / system))
    return places + ([] if root else in_root(_download_root()))


def _finder(npz_name: str | None, folders: list[str], system: str | None = None) -> Callable:
    def find(split: str) -> Source | None:
        for kind, path in _candidates(npz_name, folders, system):
            if kind == "npz" and path.is_file():
                return Source("npz", path)
            if kind == "idx" and _idx_pair(path, split):
                return _idx_pair(path, split)
            if kind == "torchvision" and path.is_dir():
                return Source("torchvision", path.parent)
        return None

    find.places = lambda: [str(path) for _, path in _candidates(npz_name, folders, system)]
    return find


def _describe(source: Source | None) -> str | None:
    return None if source is None else f"{source.kind}: {source.path}"


def _missing(spec_name: str, split: str) -> GenevalInputError:
    spec = DATASETS.get(spec_name)
    return GenevalInputError(
        f"dataset {spec_name!r} split {split!r} not found; looked in {', '.join(spec.find.places())}; "
        f"to get it: {spec.how_to_get}; or allow a download with download=True / GENEVAL_DOWNLOAD=1"
    )


# --------------------------------------------------------------------------------------------- loaders


def _stamp(*paths: Path) -> tuple:
    """Size and modification time: part of the cache key, so a replaced file is decoded again."""
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


def _load_npz(path: Path, split: str, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    return _decode_npz(path, split, channels_last, _stamp(path))


@functools.lru_cache(maxsize=8)
def _decode_npz(path: Path, split: str, channels_last: bool, stamp: tuple) -> tuple[np.ndarray, np.ndarray]:
    log.info("decoding %s (%s)", path, split)
    try:
        with np.load(path, allow_pickle=False) as archive:
            images, labels = archive[f"x_{split}"], archive[f"y_{split}"]
    except (OSError, ValueError, KeyError) as exc:
        raise GenevalInputError(f"{path}: cannot read x_{split}/y_{split} ({exc}); expected an .npz archive "
                                "with x_train, y_train, x_test, y_test") from None
    expected = "[N, H, W, 3]" if channels_last else "[N, H, W]"
    if images.ndim != (4 if channels_last else 3) or (channels_last and images.shape[-1] != 3):
        raise GenevalInputError(f"{path}: x_{split} has shape {images.shape}; expected {expected}")
    images = images.transpose(0, 3, 1, 2) if channels_last else images[:, None]
    return _frozen(images, labels, f"{path}: x_{split}/y_{split}")


def _load_idx(folder: Path, split: str, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    return _decode_idx(folder, split, suffix, _stamp(*(folder / (f + suffix) for f in IDX_FILES[split])))


@functools.lru_cache(maxsize=8)
def _decode_idx(folder: Path, split: str, suffix: str, stamp: tuple) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (folder / (f + suffix) for f in IDX_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise GenevalInputError(
            f"{image_file}: images {images.shape} and labels {labels.shape} do not pair up; "
            "expected [N, H, W] images and [N] labels"
        )
    return _frozen(images[:, None], labels, str(image_file))


def _frozen(images: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous read-only uint8 images and int64 labels; other dtypes are an error, never cast."""
    if images.dtype != np.uint8 or not np.issubdtype(labels.dtype, np.integer):
        raise GenevalInputError(f"{what}: images {images.dtype}, labels {labels.dtype}; expected uint8 images "
                                "and integer labels")
    images, labels = np.ascontiguousarray(images), labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _load_grayscale(name: str, torchvision_cls: str) -> Callable:
    def load(split: str, found: Source | None, download: bool):
        if found is None and download:
            found = _torchvision_download(torchvision_cls, split)
        if found is None:
            raise _missing(name, split)
        if found.kind == "npz":
            images, labels = _load_npz(found.path, split, False)
        else:
            images, labels = _load_idx(found.path, split, ".gz" if found.kind == "idx.gz" else "")
        _check(name, split, images, labels, (1, 28, 28), found)
        return images, labels, found

    return load


def _torchvision_download(cls_name: str, split: str) -> Source:
    import torchvision

    root = _download_root()
    log.warning("downloading %s (%s) with torchvision into %s", cls_name, split, root)
    dataset = getattr(torchvision.datasets, cls_name)(str(root), train=split == "train", download=True)
    if cls_name == "CIFAR10":
        return Source("torchvision", root)
    return _idx_pair(Path(dataset.raw_folder), split) or Source("torchvision", Path(dataset.raw_folder))


@functools.lru_cache(maxsize=4)
def _load_cifar10_torchvision(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    import torchvision

    try:
        dataset = torchvision.datasets.CIFAR10(str(root), train=split == "train", download=False)
    except RuntimeError as exc:
        raise GenevalInputError(f"{root}/cifar-10-batches-py: {exc}") from None
    return _frozen(dataset.data.transpose(0, 3, 1, 2), np.asarray(dataset.targets), f"{root}/cifar-10-batches-py")


def _load_cifar10(split: str, found: Source | None, download: bool):
    if found is None and download:
        found = _torchvision_download("CIFAR10", split)
    if found is None:
        raise _missing("cifar10", split)
    if found.kind == "npz":
        images, labels = _load_npz(found.path, split, True)
    else:
        images, labels = _load_cifar10_torchvision(found.path, split)
    _check("cifar10", split, images, labels, (3, 32, 32), found)
    return images, labels, found


_STACKED: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}  # (MNIST fingerprint, split) -> arrays


def _load_stacked(split: str, found: Source | None, download: bool):
    images, labels, found = DATASETS.get("mnist").load(split, found, download)  # or "mnist not found"
    key = (_fingerprint(images, labels), split)
    if key not in _STACKED:
        seed = [STACKED_MNIST_SEED, SPLITS.index(split)]
        stacked, stacked_labels = stack_mnist(images, labels, num_samples=len(images), seed=seed)
        if len(_STACKED) >= 2:  # keep the memory bounded: a train and a test split
            _STACKED.clear()
        _STACKED[key] = _frozen(stacked, stacked_labels, "stacked-mnist")
    return (*_STACKED[key], found)


def sobel_edges(images: np.ndarray, *, threshold: float = 1.0) -> np.ndarray:
    """uint8 ``[N, 1, H, W]`` → ``255·[|∇I| ≥ threshold]`` with the 3×3 Sobel gradient of I = image / 255."""
    f = np.pad(images[:, 0].astype(np.float64) / 255.0, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (f[:, :-2, 2:] + 2 * f[:, 1:-1, 2:] + f[:, 2:, 2:]) - (f[:, :-2, :-2] + 2 * f[:, 1:-1, :-2] + f[:, 2:, :-2])
    gy = (f[:, 2:, :-2] + 2 * f[:, 2:, 1:-1] + f[:, 2:, 2:]) - (f[:, :-2, :-2] + 2 * f[:, :-2, 1:-1] + f[:, :-2, 2:])
    return ((np.hypot(gx, gy) >= threshold) * 255).astype(np.uint8)[:, None]


def luma(images: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[N, 3, H, W]`` → ``[N, 1, H, W]``: round(0.299 R + 0.587 G + 0.114 B) (ITU-R BT.601)."""
    weights = np.array([0.299, 0.587, 0.114])[None, :, None, None]
    return np.rint((images.astype(np.float64) * weights).sum(1, keepdims=True)).clip(0, 255).astype(np.uint8)


_DERIVED: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}  # (name, base fingerprint, split)


def _derived(name: str, base: str, transform: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """A loader for a dataset computed from ``base``'s split by ``transform`` (labels and order unchanged)."""

    def load(split: str, found: Source | None, download: bool):
        images, labels, found = DATASETS.get(base).load(split, found, download)
        key = (name, _fingerprint(images, labels), split)
        if key not in _DERIVED:
            if len(_DERIVED) >= 4:  # bounded memory: a train and a test split of two tasks
                _DERIVED.clear()
            _DERIVED[key] = _frozen(transform(images), labels, name)
        return (*_DERIVED[key], found)

    return load


def _check(name: str, split: str, images: np.ndarray, labels: np.ndarray, shape: tuple, found: Source) -> None:
    if images.shape[1:] != shape or len(labels) != len(images):
        raise GenevalInputError(
            f"{found.path}: {name} {split} has images {images.shape}, labels {labels.shape}; "
            f"expected [N, {', '.join(map(str, shape))}] and [N]"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise GenevalInputError(f"{found.path}: {name} {split} labels span [{labels.min()}, {labels.max()}]; "
                                "expected 0..9")


_FINGERPRINTS: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, str]] = {}


def _fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of images then labels; memoised for the cached read-only arrays."""
    key = (id(images), id(labels))
    memo = _FINGERPRINTS.get(key)
    if memo and memo[0]() is images and memo[1]() is labels:
        return memo[2]
    digest = hashlib.sha256()
    for array in (images, labels):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    if not images.flags.writeable and not labels.flags.writeable:
        _FINGERPRINTS[key] = (weakref.ref(images), weakref.ref(labels), digest.hexdigest())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- registry

_MNIST_HOW = "put mnist.npz in GENEVAL_DATA or GENEVAL_SHARED_DATASETS, or torchvision's MNIST/raw in GENEVAL_DATA"
_FASHION_HOW = ("apt-get install -y dataset-fashion-mnist, or put torchvision's FashionMNIST/raw "
                "(or fashion-mnist/ idx files) in GENEVAL_DATA")

_find_mnist = _finder("mnist.npz", ["MNIST/raw", "mnist"])

DATASETS.register("mnist")(DatasetSpec(
    name="mnist", classes=MNIST_CLASSES, shape=(1, 28, 28),
    description="MNIST handwritten digits (LeCun et al. 1998), 60k train / 10k test",
    how_to_get=_MNIST_HOW,
    find=_find_mnist,
    load=_load_grayscale("mnist", "MNIST"),
    default_extractor="mnist-cnn",
))
DATASETS.register("fashion-mnist")(DatasetSpec(
    name="fashion-mnist", classes=FASHION_MNIST_CLASSES, shape=(1, 28, 28),
    description="Fashion-MNIST (Xiao et al. 2017), 60k train / 10k test",
    how_to_get=_FASHION_HOW,
    find=_finder(None, ["FashionMNIST/raw", "fashion-mnist"], "fashion-mnist"),
    load=_load_grayscale("fashion-mnist", "FashionMNIST"),
    default_extractor="fashion-mnist-cnn",
))
DATASETS.register("cifar10")(DatasetSpec(
    name="cifar10", classes=CIFAR10_CLASSES, shape=(3, 32, 32),
    description="CIFAR-10 (Krizhevsky 2009), 50k train / 10k test, RGB",
    how_to_get="put cifar10.npz in GENEVAL_DATA or GENEVAL_SHARED_DATASETS, or cifar-10-batches-py in GENEVAL_DATA",
    find=_finder("cifar10.npz", ["cifar-10-batches-py"]),
    load=_load_cifar10,
    # Offline and fast by default; every result names it. Literature-comparable CIFAR-10 FIDs need
    # --features inception-v3-fid (the published numbers are Inception FIDs).
    default_extractor="cifar10-cnn",
))
DATASETS.register("stacked-mnist")(DatasetSpec(
    name="stacked-mnist", classes=tuple(f"{k:03d}" for k in range(1000)), shape=(3, 28, 28),
    description=f"three MNIST digits as R, G, B (1000 modes); built from the MNIST split, same size, "
                f"seed [{STACKED_MNIST_SEED}, split index]",
    how_to_get="built from MNIST: " + _MNIST_HOW,
    find=_find_mnist,
    load=_load_stacked,
    default_extractor="stacked-mnist-cnn",  # mnist-cnn on each channel; its logits give the 1000 modes
))

_find_fashion = DATASETS.get("fashion-mnist").find
DATASETS.register("fashion-mnist-edges")(DatasetSpec(
    name="fashion-mnist-edges", classes=FASHION_MNIST_CLASSES, shape=(1, 28, 28),
    description="paired task: Sobel edge maps of Fashion-MNIST (|∇I| ≥ 1 on I/255), target fashion-mnist",
    how_to_get="built from Fashion-MNIST: " + _FASHION_HOW,
    find=_find_fashion,
    load=_derived("fashion-mnist-edges", "fashion-mnist", sobel_edges),
    default_extractor="fashion-mnist-cnn",
    target="fashion-mnist",
))
DATASETS.register("cifar10-gray")(DatasetSpec(
    name="cifar10-gray", classes=CIFAR10_CLASSES, shape=(1, 32, 32),
    description="paired task: CIFAR-10 as BT.601 luma (one channel), target cifar10 (colourisation)",
    how_to_get="built from CIFAR-10: put cifar10.npz in GENEVAL_DATA or GENEVAL_SHARED_DATASETS",
    find=DATASETS.get("cifar10").find,
    load=_derived("cifar10-gray", "cifar10", luma),
    default_extractor="cifar10-cnn",
    target="cifar10",
))
