"""Image folders: every png/jpg/jpeg/bmp/webp/tif/tiff file below a folder, decoded lazily with Pillow.

Order: files sorted by their relative path (component by component), so a folder always yields the same
sequence. Hidden files and folders (names starting with ".", e.g. macOS ``._x.png`` or
``.ipynb_checkpoints``) are skipped.

Classes: when every image sits exactly one folder deep, the sub-folder names are the classes (sorted names
→ labels 0..K-1), as torchvision's ``ImageFolder``.

Channels: a folder whose images are all grayscale (mode L, or 1-bit) gives C = 1. Anything else gives C = 3
and every image is converted with ``Image.convert("RGB")``: alpha is dropped (not composited), palettes are
applied, and 16/32-bit images (modes I;16, I, F) are clipped to 0..255 by Pillow — a warning says so.
EXIF orientation is not applied: pixels are used as stored.

Sizes: all headers are read at open time (Pillow reads only the header), so mixed sizes fail before any
feature is computed unless ``resize`` is given (PIL bicubic, after the mode conversion).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from geneval.errors import GenevalInputError
from geneval.sources.base import Source, pil_to_chw, resize_pil

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
GRAYSCALE_MODES = ("L", "1")
HIGH_BIT_MODES = ("I", "F")  # prefixes: I, I;16, I;16B, F ...


class FolderSource(Source):
    kind = "folder"

    def __init__(self, root: Path, *, resize: tuple[int, int] | None):
        self._root = root
        self._files = list_images(root)
        if not self._files:
            raise GenevalInputError(
                f"{root}: no images with extensions {', '.join(IMAGE_EXTENSIONS)} (any letter case) in this folder "
                "or below"
            )
        sizes, modes = self._read_headers()
        self._mode = "L" if all(mode in GRAYSCALE_MODES for mode in modes) else "RGB"
        notes = self._mode_notes(modes)
        if resize is None:
            _check_one_size(root, self._files, sizes)
        height, width = resize or (sizes[0][1], sizes[0][0])
        self._labels_of_files, class_names = _classes(self._files)
        super().__init__(
            name=root.name or str(root),
            path=str(root),
            count=len(self._files),
            image_shape=(1 if self._mode == "L" else 3, height, width),
            has_labels=class_names is not None,
            layout="files",
            value_range="uint8",
            resize=resize,
            class_names=class_names,
            notes=tuple(notes),
        )
        if class_names is not None:
            self._label_origin = "sub-folder names"

    def _read_headers(self) -> tuple[list[tuple[int, int]], list[str]]:
        sizes, modes = [], []
        for rel in self._files:
            path = self._root / rel
            try:
                with Image.open(path) as image:
                    sizes.append(image.size)
                    modes.append(image.mode)
            except Exception as exc:  # Pillow raises many types for broken files; all mean "unreadable"
                raise GenevalInputError(f"{path}: cannot read image header ({type(exc).__name__}: {exc})") from exc
        return sizes, modes

    def _mode_notes(self, modes: list[str]) -> list[str]:
        converted = Counter(mode for mode in modes if mode != self._mode)
        if not converted:
            return []
        high_bit = sorted(mode for mode in converted if mode.startswith(HIGH_BIT_MODES))
        if high_bit:
            log.warning(
                "%s: %d images in mode %s are converted to 8-bit RGB; Pillow clips values above 255",
                self._root, sum(converted[m] for m in high_bit), ", ".join(high_bit),
            )
        counts = ", ".join(f"{count} {mode}" for mode, count in sorted(converted.items()))
        return [f"converted to {self._mode}: {counts}"]

    def _read(self, handle, start, stop):
        images = [self._decode(self._root / rel) for rel in self._files[start:stop]]
        labels = None if self._labels_of_files is None else self._labels_of_files[start:stop]
        return torch.stack(images), labels

    def _decode(self, path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as image:
                image.load()
                converted = image.convert(self._mode)
        except Exception as exc:  # truncated or corrupt data only shows up here, when pixels are decoded
            raise GenevalInputError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
        if self.resize is not None:
            converted = resize_pil(converted, self.resize)
        elif converted.size != (self.image_shape[2], self.image_shape[1]):
            raise GenevalInputError(
                f"{path}: decoded size {converted.height}x{converted.width} differs from its header; expected "
                f"{self.image_shape[1]}x{self.image_shape[2]}"
            )
        return pil_to_chw(converted)

    def describe(self) -> dict:
        return {**super().describe(), "files": len(self._files), "decoder": f"Pillow {Image.__version__}"}


def list_images(root: Path) -> list[PurePosixPath]:
    """Relative paths of the image files below ``root``, sorted component by component."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = PurePosixPath(Path(folder).relative_to(root).as_posix())
        found.extend(
            relative / name
            for name in names
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        )
    return sorted(found, key=lambda rel: rel.parts)


def _check_one_size(root: Path, files: list[PurePosixPath], sizes: list[tuple[int, int]]) -> None:
    first = sizes[0]
    for rel, size in zip(files, sizes):
        if size != first:
            raise GenevalInputError(
                f"{root}: images differ in size: {files[0]} is {first[1]}x{first[0]} (HxW) but {rel} is "
                f"{size[1]}x{size[0]}; pass --resize HxW (e.g. --resize {first[1]}x{first[0]}) to resize all "
                "with PIL bicubic"
            )


def _classes(files: list[PurePosixPath]) -> tuple[np.ndarray | None, list[str] | None]:
    """Labels from immediate sub-folders, if every image is exactly one level deep; else (None, None)."""
    if not all(len(rel.parts) == 2 for rel in files):
        return None, None
    class_names = sorted({rel.parts[0] for rel in files})
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[rel.parts[0]] for rel in files], dtype=np.int64), class_names
