"""One way to turn any input into uint8 ``[B, C, H, W]`` batches: ``open_source(spec) -> Source``.

``spec`` may be an image folder, ``.npz``, ``.npy``, ``file.h5:dataset`` (or ``file.npz:key``), an
in-memory array or tensor, a ``torch.utils.data.Dataset``, a generator ``fn(num, seed)``, or the name of a
dataset known to ``geneval.datasets`` (``"cifar10:train"``). Every kind yields the same bytes for the same
pixels, so a PNG folder and an npz of the same images have the same fingerprint and the same scores.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from geneval.errors import GenevalInputError
from geneval.sources.arrays import ArraySource, HDF5Source, load_labels, open_npy, open_npz, split_keyed
from geneval.sources.base import Source, as_labels, parse_resize
from geneval.sources.folder import IMAGE_EXTENSIONS, FolderSource
from geneval.sources.objects import DatasetSource, GeneratorSource

__all__ = ["Source", "open_source"]

log = logging.getLogger(__name__)

DEFAULT_SPLIT = "train"
_FILE_SUFFIXES = (".npz", ".npy", ".h5", ".hdf5", *IMAGE_EXTENSIONS)


def open_source(
    spec,
    *,
    value_range: str | tuple | None = None,
    resize: tuple[int, int] | None = None,
    labels=None,
    num: int | None = None,
    seed: int = 0,
    num_option: str = "--num",
) -> Source:
    """Open ``spec`` as a ``Source`` (see the module docstring for the kinds accepted).

    value_range: range of float pixels ("[0,1]", "[-1,1]", "[0,255]"); required for floats, ignored for uint8.
    resize: ``(H, W)`` or ``"HxW"``; every image is resized with PIL bicubic (folders of mixed sizes need it).
    labels: int labels replacing the source's own: an array/tensor, ``file.h5:dataset``, ``.npy`` or ``.npz[:key]``.
    num: use the first ``num`` items (an error if there are fewer); required for a generator.
    seed: first sample seed of a generator (sample j uses seed + j).
    num_option: how ``num`` is named in errors (the CLI passes ``--num`` or ``--num-ref``).
    """
    size = parse_resize(resize)
    if num is not None and (isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1):
        raise GenevalInputError(f"num {num!r} is invalid; expected a positive integer")
    if isinstance(spec, Source):
        if (value_range, resize, labels, num) != (None, None, None, None):
            raise GenevalInputError(f"{spec.name} is already an open Source; pass options to the first open_source call")
        return spec
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        source: Source = ArraySource(
            spec, kind="array", name=f"{type(spec).__name__} {list(spec.shape)}", value_range=value_range, resize=size
        )
    elif isinstance(spec, torch.utils.data.Dataset):
        source = DatasetSource(spec, value_range=value_range, resize=size)
    elif isinstance(spec, (str, os.PathLike)):
        source = _open_path(os.fspath(spec), value_range=value_range, resize=size)
    elif callable(spec):
        source = GeneratorSource(spec, num=num, seed=seed, value_range=value_range, resize=size)
    else:
        raise GenevalInputError(
            f"cannot open {type(spec).__name__} as images; expected a path, dataset name, array, tensor, torch "
            "Dataset or generator fn(num, seed)"
        )
    if labels is not None:
        if isinstance(source, GeneratorSource):
            raise GenevalInputError("labels= does not apply to a generator; return (images, labels) from fn instead")
        values, origin = load_labels(labels, what="labels")
        source.set_labels(values, origin=origin)
    source.take(num, option=num_option)
    log.info("opened %s", source.description)
    return source


def _open_path(text: str, *, value_range, resize) -> Source:
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path, resize=resize)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return open_npz(path, None, value_range=value_range, resize=resize)
        if suffix == ".npy":
            return open_npy(path, value_range=value_range, resize=resize)
        if suffix in (".h5", ".hdf5"):
            return HDF5Source(path, None, value_range=value_range, resize=resize)
        raise GenevalInputError(
            f"{path}: cannot read {suffix or 'extension-less'} files as a sample set; expected a folder of images, "
            ".npz, .npy or .h5:dataset"
        )
    if path.exists():  # neither a folder nor a regular file: never opened (a FIFO would block)
        raise GenevalInputError(f"{path}: not a regular file or folder; expected a folder of images, .npz, .npy or .h5")
    keyed = split_keyed(text)
    if keyed is not None and Path(keyed[0]).expanduser().is_file():
        file = Path(keyed[0]).expanduser()
        if file.suffix.lower() == ".npz":
            return open_npz(file, keyed[1], value_range=value_range, resize=resize)
        return HDF5Source(file, keyed[1], value_range=value_range, resize=resize)
    if keyed is not None or _looks_like_path(text):
        missing = keyed[0] if keyed is not None else text
        raise GenevalInputError(f"no file or folder named {missing!r}")
    return _open_named(text, value_range=value_range, resize=resize)


def _looks_like_path(text: str) -> bool:
    """A string with a separator or a file suffix is meant as a path, never as a dataset name."""
    return any(sep in text for sep in ("/", "\\", os.sep)) or text.lower().endswith(_FILE_SUFFIXES) or text.startswith((".", "~"))


def _open_named(text: str, *, value_range, resize) -> Source:
    """``name`` or ``name:split`` → ``geneval.datasets.open_dataset`` (imported lazily: optional module).

    Without a split the train split is used (the usual FID reference, e.g. CIFAR-10's 50k training images);
    the split is always part of the description and provenance.
    """
    name, _, split = text.partition(":")
    split_note = "" if split else " (default)"
    split = split or DEFAULT_SPLIT
    try:
        from geneval.datasets import open_dataset
    except ImportError as exc:
        log.debug("geneval.datasets unavailable: %s", exc)
        raise GenevalInputError(f"no file or folder named {text!r}") from None
    try:
        images, labels, info = open_dataset(name, split)
    except GenevalInputError as exc:
        raise GenevalInputError(f"no file or folder named {text!r}; as a dataset name: {exc}") from exc
    source = ArraySource(
        images, kind="dataset", name=name, where=f"split {split}{split_note}", layout="NCHW",
        value_range=value_range, resize=resize,
        labels=None if labels is None else as_labels(labels, what=f"dataset {text}"), label_origin=f"dataset {name}",
        details={"dataset": name, "split": split, "dataset_info": info},
    )
    if isinstance(info, dict) and info.get("classes") and source.has_labels:
        source.class_names = list(info["classes"])
    return source
