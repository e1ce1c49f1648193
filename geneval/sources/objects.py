"""Python-object sources: a ``torch.utils.data.Dataset`` and a generator callable ``fn(num, seed)``.

Generator contract: sample ``j`` of ``fn(num, seed)`` depends only on ``seed + j`` (one seed per sample,
as in the design notes), so this source draws batch ``[start, stop)`` as ``fn(stop - start, seed + start)``
and the images do not depend on the batch size. ``fn`` is called with ``seed`` by keyword when it has a
parameter of that name, else positionally as ``fn(num, seed)``; it runs under ``torch.no_grad()``. It returns
uint8 or float images ``[num, C, H, W]`` / ``[num, H, W, C]`` (or ``[num, H, W]``), as a tensor or numpy
array, optionally as ``(images, labels)``. Generator sources have no fingerprint: they are never cached.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np
import torch
from PIL import Image

from geneval.errors import GenevalInputError
from geneval.images import quantize_to_uint8
from geneval.sources.base import (
    Source,
    as_labels,
    check_image_dtype,
    detect_layout,
    pil_to_chw,
    range_text,
    resize_uint8,
    to_uint8_nchw,
)
from geneval.sources.folder import GRAYSCALE_MODES, _to_mode

log = logging.getLogger(__name__)


class DatasetSource(Source):
    """A map-style dataset whose items are ``image`` or ``(image, label)``.

    ``image``: a PIL image (mode L stays 1 channel, other modes are converted to RGB), or a uint8/integer/
    float array or tensor HWC, CHW or HW. Floats (torchvision's ``ToTensor`` gives [0, 1]) need
    ``value_range``. Items are fetched one by one in index order; there are no worker processes.
    """

    kind = "torch-dataset"

    def __init__(self, dataset, *, value_range, resize: tuple[int, int] | None):
        name = type(dataset).__name__
        try:
            count = len(dataset)
        except TypeError:
            raise GenevalInputError(f"dataset {name} has no len(); expected a map-style torch Dataset") from None
        if count < 1:
            raise GenevalInputError(f"dataset {name}: need at least 2 images, got {count}")
        self._dataset, self._value_range = dataset, value_range
        image, label = self._item(0, name=name)
        self._raw_shape, self._dtype = tuple(image.shape), image.dtype
        if self._raw_shape[0] not in (1, 3):
            raise GenevalInputError(f"dataset {name} item 0: image of shape {list(image.shape)}; expected 1 or 3 channels")
        # Convert item 0 now so that floats without a declared range fail at open time.
        quantize_to_uint8(image, value_range, what=f"dataset {name} item 0")
        super().__init__(
            name=name,
            path=None,
            count=count,
            image_shape=(self._raw_shape[0], *(resize or self._raw_shape[1:])),
            has_labels=label is not None,
            layout=self._layout,
            value_range=range_text(image.dtype, value_range, what=name),
            resize=resize,
        )
        self._label_origin = "dataset items"

    def _read(self, handle, start, stop):
        images, labels = [], []
        for index in range(start, stop):
            image, label = self._item(index, name=self.name)
            where = f"dataset {self.name} item {index}"
            # With resize, items may differ in size (each is resized on its own); without, all match item 0.
            compared = slice(None) if self.resize is None else slice(0, 1)
            if tuple(image.shape)[compared] != self._raw_shape[compared] or image.dtype != self._dtype:
                raise GenevalInputError(
                    f"{where}: image {list(image.shape)} {image.dtype}; expected {list(self._raw_shape)} "
                    f"{self._dtype} like item 0 (images of different sizes need resize=(H, W), CLI --resize HxW)"
                )
            if self.resize is not None:
                image = quantize_to_uint8(image[None], self._value_range, what=where)
                image = resize_uint8(image.contiguous(), self.resize)[0]
            if (label is None) == self.has_labels:
                raise GenevalInputError(f"dataset {self.name} item {index}: some items have labels and some not")
            images.append(image)
            labels.append(label)
        batch = quantize_to_uint8(torch.stack(images), self._value_range, what=f"dataset {self.name} items {start}..{stop - 1}")
        return batch, (np.array(labels, dtype=np.int64) if self.has_labels else None)

    def _item(self, index: int, *, name: str) -> tuple[torch.Tensor, int | None]:
        """Item ``index`` → (image ``[C, H, W]`` in its own dtype, label or None)."""
        item = self._dataset[index]
        label = None
        if isinstance(item, (tuple, list)):
            if len(item) not in (1, 2):
                raise GenevalInputError(
                    f"dataset {name} item {index}: a sequence of {len(item)} values; expected image or (image, label)"
                )
            image, label = item[0], (item[1] if len(item) == 2 else None)
        else:
            image = item
        where = f"dataset {name} item {index}"
        return self._image(image, where=where), _label(label, where=where)

    def _image(self, image, *, where: str) -> torch.Tensor:
        if isinstance(image, Image.Image):
            self._layout = "PIL images"
            return pil_to_chw(_to_mode(image, "L" if image.mode in GRAYSCALE_MODES else "RGB"))
        if isinstance(image, np.ndarray):
            image = torch.from_numpy(np.array(image, dtype=image.dtype.newbyteorder("=")))
        if not isinstance(image, torch.Tensor):
            raise GenevalInputError(f"{where}: image of type {type(image).__name__}; expected PIL image, array or tensor")
        image = image.detach().cpu()
        check_image_dtype(image.dtype, what=where)
        if image.ndim == 2:
            self._layout = "HW (grayscale)"
            return image[None]
        if image.ndim != 3:
            raise GenevalInputError(f"{where}: image of shape {list(image.shape)}; expected HWC, CHW or HW")
        layout, how = detect_layout((1, *image.shape), what=where)
        self._layout = f"{layout[1:]} ({how})"
        return image.permute(2, 0, 1) if layout == "NHWC" else image


def _label(label, *, where: str) -> int | None:
    if label is None:
        return None
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    elif isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
        return int(label)
    raise GenevalInputError(f"{where}: label {label!r}; expected a non-negative integer class index")


class GeneratorSource(Source):
    """``fn(num, seed)`` drawn batch by batch; see the module docstring for the seed contract."""

    kind = "generator"

    def __init__(self, fn, *, num: int | None, seed: int, value_range, resize: tuple[int, int] | None):
        name = getattr(fn, "__qualname__", type(fn).__name__)
        if num is None:
            raise GenevalInputError(f"generator {name}: num is required (how many samples to draw)")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise GenevalInputError(f"generator {name}: seed {seed!r} is invalid; expected an integer")
        self._fn, self._seed, self._value_range = fn, int(seed), value_range
        self._seed_keyword = _takes_seed_keyword(fn)
        self.name = name
        # Draw sample 0 once to learn the shape (and fail early on floats without a range); it is reused as
        # the first item of the first batch, so the probe costs nothing.
        raw, labels = self._call(1, self._seed)
        check_image_dtype(raw.dtype, what=f"generator {name}")
        self._layout, how = detect_layout(tuple(raw.shape), what=f"generator {name}")
        first = to_uint8_nchw(raw, self._layout, value_range=value_range, what=f"generator {name}")
        self._native_shape = tuple(first.shape[1:])
        self._first = (first, labels)
        super().__init__(
            name=name,
            path=None,
            where=f"seed {self._seed}",
            count=int(num),
            image_shape=(first.shape[1], *(resize or first.shape[2:])),
            has_labels=labels is not None,
            layout=f"{self._layout} ({how})",
            value_range=range_text(raw.dtype, value_range, what=name),
            resize=resize,
            details={"seed": self._seed, "seed_contract": "sample j depends only on seed + j"},
        )
        self._label_origin = "generator output"

    def fingerprint(self, limit: int | None = None) -> None:
        return None

    def _read(self, handle, start, stop):
        if start == 0:
            first, first_labels = self._first
            if stop == 1:
                return first, first_labels
            rest, rest_labels = self._generate(1, stop - 1)
            labels = None if first_labels is None else np.concatenate([first_labels, rest_labels])
            return torch.cat([first, rest]), labels
        return self._generate(start, stop - start)

    def _generate(self, start: int, count: int) -> tuple[torch.Tensor, np.ndarray | None]:
        what = f"generator {self.name} samples {start}..{start + count - 1}"
        raw, labels = self._call(count, self._seed + start)
        if (labels is None) == self.has_labels:
            raise GenevalInputError(f"{what}: labels returned for some batches and not others")
        images = to_uint8_nchw(raw, self._layout, value_range=self._value_range, what=what)
        if tuple(images.shape[1:]) != self._native_shape:
            raise GenevalInputError(
                f"{what}: images of shape {list(images.shape[1:])}; expected {list(self._native_shape)} like sample 0"
            )
        return images, labels

    def _call(self, count: int, seed: int):
        with torch.no_grad():
            out = self._fn(count, seed=seed) if self._seed_keyword else self._fn(count, seed)
        labels = None
        if isinstance(out, tuple):
            if len(out) != 2:
                raise GenevalInputError(f"generator {self.name} returned {len(out)} values; expected images or (images, labels)")
            out, labels = out
        if not isinstance(out, (np.ndarray, torch.Tensor)):
            raise GenevalInputError(f"generator {self.name} returned {type(out).__name__}; expected an array or tensor")
        if out.ndim == 0 or len(out) != count:
            raise GenevalInputError(
                f"generator {self.name}: fn({count}, seed={seed}) returned shape {list(out.shape)}; expected {count} images"
            )
        if labels is not None:
            labels = as_labels(labels, what=f"generator {self.name}")
            if len(labels) != count:
                raise GenevalInputError(f"generator {self.name}: {len(labels)} labels for {count} images")
        return out, labels


def _takes_seed_keyword(fn) -> bool:
    try:
        parameter = inspect.signature(fn).parameters.get("seed")
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
