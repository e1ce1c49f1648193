"""Array sources: in-memory numpy/torch arrays, ``.npy`` (memory-mapped), ``.npz`` and HDF5 datasets.

All of them are "an array with a layout": the layout (NCHW, NHWC or grayscale NHW) is detected once from
the shape, and each batch is a slice converted by ``to_uint8_nchw``. HDF5 datasets and ``.npy`` files are
read slice by slice, never whole; an ``.npz`` member is decompressed in one go because zip members cannot
be sliced.
"""

from __future__ import annotations

import contextlib
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from geneval.errors import GenevalInputError
from geneval.sources.base import (
    Source,
    as_labels,
    check_image_dtype,
    detect_layout,
    image_shape_of,
    range_text,
    to_uint8_nchw,
)

log = logging.getLogger(__name__)

# npz conventions: ADM's sample scripts save np.savez(path, images, labels) -> arr_0, arr_1.
NPZ_IMAGE_KEYS = ("arr_0", "x", "images")
NPZ_LABEL_KEYS = {"arr_0": ("arr_1",), "x": ("y", "labels"), "images": ("y", "labels")}
_KEYED = re.compile(r"^(?P<file>.+\.(?:h5|hdf5|npz)):(?P<key>[^:\\]+)$", re.IGNORECASE)


class ArraySource(Source):
    """An array-like with ``shape``, ``dtype`` and slicing: numpy array, memmap, torch tensor, h5py dataset."""

    def __init__(
        self,
        array: Any,
        *,
        kind: str,
        name: str,
        path: str | None = None,
        where: str = "",
        value_range=None,
        resize: tuple[int, int] | None = None,
        layout: str | None = None,
        labels: np.ndarray | None = None,
        label_origin: str | None = None,
        details: dict | None = None,
    ):
        self.kind = kind
        self._array = array
        self._value_range = value_range
        check_image_dtype(array.dtype, what=name)
        how = "declared"
        if layout is None:
            layout, how = detect_layout(tuple(array.shape), what=name)
            if how.startswith("ambiguous"):
                log.warning("%s: %s", name, how)
        self._layout = layout
        channels, height, width = image_shape_of(tuple(array.shape), layout)
        if channels not in (1, 3):
            raise GenevalInputError(f"{name}: images have {channels} channels; expected 1 or 3")
        if len(array):
            # Convert one item now: a float array without a declared range fails here, not mid-run.
            to_uint8_nchw(array[0:1], layout, value_range=value_range, what=name)
            _scan_values(array, value_range, what=name)
        super().__init__(
            name=name,
            path=path,
            where=where,
            count=len(array),
            image_shape=(channels, *(resize or (height, width))),
            has_labels=False,
            layout=f"{layout} ({how})",
            value_range=range_text(array.dtype, value_range, what=name),
            resize=resize,
            details=details,
        )
        if labels is not None:
            self.set_labels(labels, origin=label_origin or "labels")

    def _read(self, handle, start, stop):
        array = self._array if handle is None else handle
        what = f"{self.name} items {start}..{stop - 1}"
        return to_uint8_nchw(array[start:stop], self._layout, value_range=self._value_range, what=what), None


class HDF5Source(ArraySource):
    """One dataset of an HDF5 file, read a slice per batch; the file is open only during a pass."""

    kind = "hdf5"

    def __init__(self, file: Path, dataset: str | None, *, value_range, resize):
        self._file = file
        with _open_h5(file) as handle:
            self._dataset = _pick_h5_dataset(handle, file, dataset)
            array = handle[self._dataset]
            super().__init__(
                array, kind="hdf5", name=file.name, path=str(file), where=f"dataset '{self._dataset}'",
                value_range=value_range, resize=resize, details={"dataset": self._dataset},
            )
        self._array = None  # closed with the file; each pass reopens it in _open()

    @contextlib.contextmanager
    def _open(self):
        with _open_h5(self._file) as handle:
            yield handle[self._dataset]

    def _read(self, handle, start, stop):
        try:
            return super()._read(handle, start, stop)
        except (OSError, KeyError, RuntimeError) as exc:
            raise GenevalInputError(f"{self._file}: cannot read items {start}..{stop - 1} of '{self._dataset}' ({exc})") from exc


_SCAN_ELEMENTS = 1 << 24  # values per chunk of the open-time scan (128 MB of float64 at most)


def _scan_values(array: Any, value_range, *, what: str) -> None:
    """Check every value of a non-uint8 array at open time, in chunks: floats must be finite, integers without a
    declared range must lie in 0..255. One streaming pass, so a NaN in the last image fails before any network."""
    dtype = array.dtype
    is_float = dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.dtype(dtype).kind == "f"
    is_uint8 = dtype == torch.uint8 if isinstance(dtype, torch.dtype) else np.dtype(dtype) == np.uint8
    if is_uint8 or (not is_float and value_range is not None):
        return
    per_item = max(1, int(np.prod(array.shape[1:])))
    step = max(1, _SCAN_ELEMENTS // per_item)
    low, high, bad = None, None, 0
    for start in range(0, len(array), step):
        chunk = array[start:start + step]
        chunk = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        if is_float:
            bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
        elif chunk.size:
            low = int(chunk.min()) if low is None else min(low, int(chunk.min()))
            high = int(chunk.max()) if high is None else max(high, int(chunk.max()))
    if bad:
        raise GenevalInputError(f"{what}: {bad} NaN or infinite values; expected finite pixel values")
    if low is not None and (low < 0 or high > 255):
        raise GenevalInputError(f"{what}: integer values span [{low}, {high}]; expected 0..255 (or pass --range)")


def open_npz(file: Path, key: str | None, *, value_range, resize) -> ArraySource:
    """``samples.npz`` (arr_0 [+ arr_1 labels], or x/images [+ y/labels]) or ``file.npz:key``."""
    check_magic(file, (b"PK\x03\x04", b"PK\x05\x06"), "an .npz (zip) archive written by numpy.savez")
    try:
        with np.load(file, allow_pickle=False) as archive:
            keys = list(archive.files)
            image_key, label_key = _npz_keys(file, keys, key)
            images = archive[image_key]
            labels = archive[label_key] if label_key else None
    except GenevalInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GenevalInputError(f"{file}: cannot read as .npz ({_array_reason(exc)})") from None
    label_array = None
    if labels is not None:
        label_array = as_labels(labels, what=f"{file.name} key '{label_key}'")
    return ArraySource(
        images, kind="npz", name=file.name, path=str(file), where=f"key '{image_key}'",
        value_range=value_range, resize=resize, labels=label_array,
        label_origin=f"key '{label_key}'", details={"key": image_key, "label_key": label_key},
    )


def open_npy(file: Path, *, value_range, resize) -> ArraySource:
    """A single ``.npy`` array, memory-mapped so that only the slices being read are in memory."""
    check_magic(file, (b"\x93NUMPY",), "an .npy file written by numpy.save")
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise GenevalInputError(f"{file}: cannot read as .npy ({_array_reason(exc)})") from None
    return ArraySource(array, kind="npy", name=file.name, path=str(file), value_range=value_range, resize=resize)


def split_keyed(text: str) -> tuple[str, str] | None:
    """``"file.h5:images"`` → ``("file.h5", "images")``; also ``.hdf5`` and ``.npz``; otherwise None."""
    match = _KEYED.match(text)
    return (match["file"], match["key"]) if match else None


def load_labels(labels, *, what: str) -> tuple[np.ndarray, str]:
    """The ``labels=`` argument → (int64 array, where it came from).

    Accepts an array/tensor/list, ``file.h5:dataset``, ``file.npz:key``, ``file.npz`` (key y, labels or
    arr_1) or ``file.npy``.
    """
    if not isinstance(labels, (str, Path)):
        return as_labels(labels, what=what), "labels argument"
    text = str(labels)
    keyed = split_keyed(text)
    file = Path(keyed[0] if keyed else text).expanduser()
    if not file.is_file():
        raise GenevalInputError(f"labels: no file named {str(file)!r}")
    suffix = file.suffix.lower()
    try:
        if suffix in (".h5", ".hdf5"):
            with _open_h5(file) as handle:
                dataset = _pick_h5_dataset(handle, file, keyed[1] if keyed else None)
                values = handle[dataset][()]
        elif suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                key = keyed[1] if keyed else next((k for k in ("y", "labels", "arr_1") if k in archive.files), None)
                if key not in archive.files:
                    raise GenevalInputError(
                        f"{file.name} has keys {', '.join(archive.files)}; expected labels under 'y', 'labels' or "
                        f"'arr_1', or name the key as {file.name}:<key>"
                    )
                values = archive[key]
        elif suffix == ".npy":
            values = np.load(file, allow_pickle=False)
        else:
            raise GenevalInputError(f"labels file {file.name}: expected .npy, .npz[:key] or .h5:dataset")
    except GenevalInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GenevalInputError(f"labels file {file}: cannot read ({exc})") from exc
    return as_labels(values, what=file.name), text


# ---- internals -----------------------------------------------------------------------------------------


def check_magic(file: Path, magics: tuple[bytes, ...], expected: str) -> None:
    """Refuse a file whose first bytes are not one of ``magics`` before numpy (or its pickle fallback) reads it."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise GenevalInputError(f"{file}: cannot open ({exc.strerror})") from None
    if not head:
        raise GenevalInputError(f"{file}: zero-byte file; expected {expected}")
    if not any(head.startswith(magic) for magic in magics):
        raise GenevalInputError(f"{file}: starts with bytes {head[:6]!r}; expected {expected}")


def _array_reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "allow_pickle" in text or "Python objects" in text or "Object arrays" in text:
        return "it holds Python objects (a pickle); refused without unpickling, since allow_pickle=False; expected numeric arrays"
    if isinstance(exc, zipfile.BadZipFile) or "zip" in text.lower():
        return f"not a zip archive ({text[:60]}); expected a file written by numpy.savez"
    return text if len(text) <= 100 else text[:97] + "..."


def _npz_keys(file: Path, keys: list[str], key: str | None) -> tuple[str, str | None]:
    if key is not None:
        if key not in keys:
            raise GenevalInputError(f"{file.name} has no key '{key}'; keys found: {', '.join(keys) or 'none'}")
        return key, None
    present = [k for k in NPZ_IMAGE_KEYS if k in keys]
    if len(present) > 1:
        raise GenevalInputError(
            f"{file.name} has several image arrays ({', '.join(present)}); name one as {file.name}:<key>"
        )
    if not present:
        raise GenevalInputError(
            f"{file.name} has keys {', '.join(keys) or 'none'}; expected 'arr_0' (ADM samples, optional 'arr_1' "
            f"labels) or 'x'/'images' (optional 'y'/'labels'), or name the array as {file.name}:<key>"
        )
    label_key = next((k for k in NPZ_LABEL_KEYS[present[0]] if k in keys), None)
    return present[0], label_key


def _open_h5(file: Path) -> h5py.File:
    try:
        return h5py.File(file, "r")
    except OSError as exc:
        raise GenevalInputError(f"{file}: cannot open as HDF5 ({_array_reason(exc)}); expected an HDF5 file") from None


def _pick_h5_dataset(handle: h5py.File, file: Path, dataset: str | None) -> str:
    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if dataset is not None:
        if dataset.strip("/") in names:
            return dataset.strip("/")
        raise GenevalInputError(f"{file.name} has no dataset '{dataset}'; available: {', '.join(names) or 'none'}")
    if len(names) == 1:
        return names[0]
    raise GenevalInputError(
        f"{file.name} holds {len(names)} datasets; name one as {file.name}:<dataset>; available: {', '.join(names) or 'none'}"
    )
