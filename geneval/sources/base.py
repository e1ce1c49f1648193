"""The ``Source`` contract and the helpers every kind of source shares.

A source yields uint8 ``[B, C, H, W]`` batches (C = 1 or 3) and optional int64 labels, always in the same
order, so that a metric computed on the first N items is the same whatever the batch size. Subclasses only
implement ``_read(handle, start, stop)``; counting, ``num``/``limit``, label overrides, resizing, hashing and
provenance live here once.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from geneval.errors import GenevalInputError
from geneval.images import check_batch, parse_value_range, quantize_to_uint8

log = logging.getLogger(__name__)

# Bumped whenever the hashed byte stream changes, so that old cache keys can never match new content.
FINGERPRINT_VERSION = "geneval-source-fingerprint-v1"
_FINGERPRINT_BATCH = 256
MIN_IMAGES = 2  # statistics such as a covariance are undefined below two samples


class ContentFingerprint:
    """sha256 of a stream of uint8 batches: count, shape, pixels and labels, independent of batch boundaries.

    ``Source.fingerprint`` uses it on its own pass; the extraction pass feeds it too, so the record names the
    exact pixels that were scored with the same fingerprint a reference of those pixels would get.
    """

    def __init__(self):
        self._pixels, self._labels = hashlib.sha256(), hashlib.sha256()
        self.count, self.shape, self.has_labels = 0, None, False

    def update(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        self._pixels.update(images.contiguous().numpy())  # hashed through the buffer, no copy
        self.count += len(images)
        self.shape = tuple(images.shape[1:])
        if labels is not None:
            self.has_labels = True
            self._labels.update(labels.numpy().astype("<i8").tobytes())

    def hexdigest(self) -> str:
        c, h, w = self.shape or (0, 0, 0)
        header = f"{FINGERPRINT_VERSION} count={self.count} shape={c}x{h}x{w} labels={self.has_labels}"
        final = hashlib.sha256(header.encode())
        final.update(self._pixels.digest())
        final.update(self._labels.digest())
        return final.hexdigest()


class Source(abc.ABC):
    """Abstract base: a fixed, ordered sequence of uint8 images with optional class labels.

    Subclasses call ``super().__init__`` with what they found at open time and implement ``_read``.
    """

    kind: str = "source"

    def __init__(
        self,
        *,
        name: str,
        path: str | None,
        where: str = "",
        count: int,
        image_shape: tuple[int, int, int],
        has_labels: bool,
        layout: str,
        value_range: str,
        resize: tuple[int, int] | None = None,
        class_names: list[str] | None = None,
        notes: tuple[str, ...] = (),
        details: dict[str, Any] | None = None,
    ):
        self.name = name  # short human name used in every error message: a file name, "tensor", ...
        self.path = path
        self._where = where  # e.g. "key 'arr_0'": which part of the file, for the description
        self._available = count
        self._count = count
        self.image_shape = image_shape
        self.has_labels = has_labels
        self.layout = layout
        self.value_range = value_range
        self.resize = resize
        self.class_names = class_names
        self._notes = list(notes)
        self._details = dict(details or {})
        self._labels: np.ndarray | None = None  # set by set_labels(); overrides the source's own labels
        self._label_origin: str | None = None
        self._fingerprints: dict[int, str] = {}

    # ---- what subclasses implement -------------------------------------------------------------------

    @abc.abstractmethod
    def _read(self, handle: Any, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | np.ndarray | None]:
        """Items ``start..stop-1`` as uint8 ``[B, C, H, W]`` (before any resize) and labels or None."""

    def _open(self) -> contextlib.AbstractContextManager:
        """A context whose value is passed to ``_read`` for one pass (an open HDF5 file, for example)."""
        return contextlib.nullcontext()

    # ---- public API ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @property
    def description(self) -> str:
        c, h, w = self.image_shape
        where = f" {self._where}" if self._where else ""
        parts = [f"{self.name}{where}, {len(self)} images {c}x{h}x{w}", f"layout {self.layout}"]
        if self.value_range != "uint8":
            parts.append(f"value range {self.value_range}")
        if self.has_labels:
            classes = f" ({len(self.class_names)} classes)" if self.class_names else ""
            parts.append(f"labels from {self._label_origin or 'source'}{classes}")
        if self.resize is not None:
            parts.append(f"resized to {self.resize[0]}x{self.resize[1]} (PIL bicubic)")
        return f"{self.kind} " + ", ".join(parts + self._notes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}>"

    def batches(
        self, batch_size: int, *, limit: int | None = None, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Yield ``(uint8 [B,C,H,W] contiguous, int64 [B] or None)`` over items ``start..limit-1``.

        ``limit=None`` means all; a limit above ``len(self)`` is clipped to it (callers report the count).
        ``start`` (a rank's shard, ``geneval.distributed``) skips the items before it.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise GenevalInputError(f"batch size {batch_size!r} is invalid; expected a positive integer")
        total = self._clip(limit)
        with self._open() as handle:
            for first in range(min(int(start), total), total, batch_size):
                stop = min(first + batch_size, total)
                images, labels = self._read(handle, first, stop)
                yield self._finish(images, labels, first, stop)

    def fingerprint(self, limit: int | None = None) -> str | None:
        """sha256 of the decoded content of the first ``limit`` items: count, shape, pixels, labels.

        Independent of file format and batch size: a PNG folder and an npz of the same pixels agree.
        Streams batch by batch; pixels and labels go to separate hashes so batch boundaries do not matter.
        """
        total = self._clip(limit)
        if total not in self._fingerprints:
            content = ContentFingerprint()
            for images, batch_labels in self.batches(_FINGERPRINT_BATCH, limit=total):
                content.update(images, batch_labels)
            self._fingerprints[total] = content.hexdigest()
        return self._fingerprints[total]

    def describe(self) -> dict:
        """JSON-able provenance: enough to say what was read and how it was converted."""
        info = {
            "kind": self.kind,
            "path": self.path,
            "name": self.name,
            "count": len(self),
            "shape": list(self.image_shape),
            "layout": self.layout,
            "value_range": self.value_range,
            "labels": self.has_labels,
            "resize": None if self.resize is None else {"size_hw": list(self.resize), "filter": "PIL bicubic"},
        }
        if self.has_labels:
            info["labels_from"] = self._label_origin or "source"
        if self.class_names is not None:
            info["class_names"] = list(self.class_names)
        if self._notes:
            info["notes"] = list(self._notes)
        return {**info, **self._details}

    # ---- used by open_source -------------------------------------------------------------------------

    def set_labels(self, labels: np.ndarray, *, origin: str) -> None:
        """Use ``labels`` (validated int64, one per available item) instead of the source's own."""
        if len(labels) != self._available:
            raise GenevalInputError(
                f"labels from {origin} have length {len(labels)} but {self.name} has {self._available} images; "
                "expected one label per image"
            )
        self._labels, self._label_origin, self.has_labels = labels, origin, True
        self.class_names = None
        self._fingerprints.clear()

    @property
    def available(self) -> int:
        """Items in the source before ``take`` kept only the first ones."""
        return self._available

    def take(self, num: int | None, *, option: str = "--num") -> None:
        """Keep only the first ``num`` items (all if None); at least two must remain."""
        if num is not None:
            if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
                raise GenevalInputError(f"num {num!r} is invalid; expected a positive integer")
            if num > self._available:
                raise GenevalInputError(
                    f"{self.name} has {self._available} images; {option} {num} requested; expected at most {self._available}"
                )
            self._count = int(num)
            self._fingerprints.clear()
        if self._count < MIN_IMAGES:
            raise GenevalInputError(f"{self.name}: need at least {MIN_IMAGES} images, got {self._count}")

    # ---- internals -----------------------------------------------------------------------------------

    def _clip(self, limit: int | None) -> int:
        if limit is None:
            return len(self)
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
            raise GenevalInputError(f"limit {limit!r} is invalid; expected a non-negative integer or None")
        return min(int(limit), len(self))

    def _finish(self, images: torch.Tensor, labels, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        what = f"{self.name} items {start}..{stop - 1}"
        if self.resize is not None and tuple(images.shape[2:]) != self.resize:
            images = resize_uint8(images, self.resize)
        images = check_batch(images, what=what).contiguous()
        if tuple(images.shape) != (stop - start, *self.image_shape):
            raise GenevalInputError(
                f"{what}: got a batch of shape {list(images.shape)}; expected {[stop - start, *self.image_shape]}"
            )
        if self._labels is not None:
            labels = self._labels[start:stop]
        if labels is not None:
            labels = torch.tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)  # a copy, never a view
            if len(labels) != stop - start:
                raise GenevalInputError(f"{what}: got {len(labels)} labels for {stop - start} images")
        elif self.has_labels:
            raise GenevalInputError(f"{what}: labels missing; expected a label for every image")
        return images, labels


# ---- shared helpers -----------------------------------------------------------------------------------

def detect_layout(shape: tuple[int, ...], *, what: str) -> tuple[str, str]:
    """Return ``(layout, how)`` for an image array: 3-D is grayscale ``[N,H,W]``; 4-D is NCHW or NHWC.

    The channel axis is whichever of axis 1 and the last axis has size 1 or 3. When both do (e.g.
    ``[N, 3, 32, 3]``) the data is taken as channels-last, the layout of numpy/PIL/ADM sample files, and the
    description says so.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return "NHW", "grayscale, detected"
    if len(shape) != 4:
        raise GenevalInputError(
            f"{what}: array of shape {list(shape)} has {len(shape)} dimensions; expected [N,H,W], [N,C,H,W] or [N,H,W,C]"
        )
    first, last = shape[1] in (1, 3), shape[-1] in (1, 3)
    if first and not last:
        return "NCHW", "detected"
    if last and not first:
        return "NHWC", "detected"
    if first and last:
        return "NHWC", f"ambiguous shape {list(shape)}, assumed channels-last"
    raise GenevalInputError(
        f"{what}: array of shape {list(shape)} has {shape[1]} channels (NCHW) or {shape[-1]} (NHWC); expected 1 or 3"
    )


def image_shape_of(shape: tuple[int, ...], layout: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one image of an array with the given layout."""
    if layout == "NHW":
        return 1, int(shape[1]), int(shape[2])
    if layout == "NHWC":
        return int(shape[3]), int(shape[1]), int(shape[2])
    return int(shape[1]), int(shape[2]), int(shape[3])


def check_image_dtype(dtype, *, what: str) -> None:
    """Reject dtypes that are not pixel values (bool, complex, strings, objects) before reading anything."""
    if isinstance(dtype, torch.dtype):
        ok = dtype != torch.bool and not dtype.is_complex
    else:
        ok = np.dtype(dtype).kind in "uif"
    if not ok:
        raise GenevalInputError(f"{what}: dtype {dtype} is not an image type; expected uint8, integer 0..255 or float")


def range_text(dtype, value_range, *, what: str) -> str:
    """How pixel values were read, for the description: "uint8", "integer 0..255 (int64)", "[-1,1] (float32)"."""
    if isinstance(dtype, torch.dtype):
        is_uint8, is_float = dtype == torch.uint8, dtype.is_floating_point
    else:
        is_uint8, is_float = np.dtype(dtype) == np.uint8, np.dtype(dtype).kind == "f"
    if is_uint8:
        if value_range is not None:
            log.warning("%s: uint8 pixels are used as they are; value_range %r ignored", what, value_range)
        return "uint8"
    bounds = parse_value_range(value_range)
    if bounds is None:
        return f"integer 0..255 ({dtype})" if not is_float else f"undeclared ({dtype})"
    return f"[{bounds[0]:g},{bounds[1]:g}] ({dtype})"


def to_uint8_nchw(raw, layout: str, *, value_range, what: str) -> torch.Tensor:
    """A slice of an array (numpy, memmap, h5py result or tensor) → uint8 ``[B, C, H, W]`` contiguous.

    Floats (and integers with a declared range) go through ``quantize_to_uint8``, the one place where pixel
    values change type.
    """
    if isinstance(raw, torch.Tensor):
        tensor = raw.detach().cpu()
    else:
        array = np.array(raw)  # a private, writable copy: memmaps and h5py reads are read-only views
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(array)
    if layout == "NHW":
        tensor = tensor.unsqueeze(1)
    elif layout == "NHWC":
        tensor = tensor.permute(0, 3, 1, 2)
    return quantize_to_uint8(tensor, value_range, what=what).contiguous()


def resize_uint8(images: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 ``[B, C, H, W]`` to ``size_hw`` image by image with PIL bicubic.

    The same call a folder source applies to decoded files, so resized arrays and resized PNGs agree.
    """
    out = []
    for image in images:
        pil = Image.fromarray(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy())
        out.append(pil_to_chw(resize_pil(pil, size_hw)))
    return torch.stack(out)


def resize_pil(image: Image.Image, size_hw: tuple[int, int]) -> Image.Image:
    height, width = size_hw
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def pil_to_chw(image: Image.Image) -> torch.Tensor:
    """A PIL image in mode L or RGB → uint8 ``[C, H, W]``."""
    array = np.array(image, dtype=np.uint8)  # a copy: Pillow's array view is read-only
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def as_labels(values, *, what: str) -> np.ndarray:
    """Validate class labels: 1-D, integer, non-negative → int64 numpy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise GenevalInputError(f"{what}: labels of shape {list(array.shape)}; expected a 1-D array, one per image")
    if array.dtype.kind not in "ui":
        raise GenevalInputError(f"{what}: labels of dtype {array.dtype}; expected integer class indices")
    if array.size and array.min() < 0:
        raise GenevalInputError(f"{what}: labels include {int(array.min())}; expected class indices >= 0")
    return array.astype(np.int64)


def parse_resize(resize) -> tuple[int, int] | None:
    """``(H, W)``, ``"HxW"`` or a single int for square → ``(H, W)`` of positive ints, or None."""
    if resize is None:
        return None
    try:
        if isinstance(resize, str):
            parts = resize.lower().replace(",", "x").split("x")
            values = tuple(int(p) for p in parts)
        elif isinstance(resize, (int, np.integer)):
            values = (int(resize), int(resize))
        else:
            values = tuple(int(v) for v in resize)
    except (TypeError, ValueError):
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise GenevalInputError(f"resize {resize!r} is invalid; expected HxW, e.g. 32x32")
    return values
