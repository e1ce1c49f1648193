"""Image folders: every image file below a folder, checked at open time and decoded lazily with Pillow.

Files: names ending in one of ``IMAGE_EXTENSIONS`` (any letter case); the format itself is detected from the
content, so a JPEG named ``.png`` is read as a JPEG. Other files are skipped (counted in the description).
Hidden files and folders (names starting with ".", e.g. macOS ``._x.png``, ``.DS_Store``,
``.ipynb_checkpoints``) and ``__MACOSX`` folders are skipped; symlinked sub-folders are not followed.

Order: files sorted by their relative path (component by component), so a folder always yields the same
sequence.

Classes: when every image sits exactly one folder deep, the sub-folder names are the classes (sorted names
→ labels 0..K-1), as torchvision's ``ImageFolder``; a class folder without images is an error (dropping it
would renumber the classes after it).

Open-time checks (before any feature is computed, all cheap): every file must be a regular file (FIFOs,
sockets and devices are refused without being opened for reading: files are opened with ``O_NONBLOCK`` and
``fstat``-checked), non-empty, readable, not a symlink loop; its header must parse; its declared size must
not exceed Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb is refused before decoding); it must
hold one frame (animated GIF/PNG/WebP and multi-page TIFF are refused); PNGs are CRC-checked to the end
(``verify``: truncated PNGs are found without decoding). Truncated data of other formats shows up when the
image is decoded, as a one-line error naming the file.

Channels: a folder whose images are all grayscale (modes 1, L, LA, I;16) gives C = 1; anything else gives
C = 3. Alpha is dropped, not composited (LA → L, RGBA/PA → RGB), as pytorch-fid and clean-fid do; palettes
are applied; CMYK/YCbCr use Pillow's conversion; 16-bit grayscale is scaled to 8 bits (round(v / 257));
32-bit integer or float images (modes I, F) have no declared range and are refused. EXIF orientation is
applied (the image is transposed as a viewer shows it) before any resize.

Sizes: all headers are read at open time, so mixed sizes fail before any feature is computed unless
``resize`` is given (PIL bicubic, after the mode conversion).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import warnings
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageOps

from geneval.errors import GenevalInputError
from geneval.sources.base import Source, pil_to_chw, resize_pil

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                    ".ppm", ".pgm", ".pbm", ".pnm", ".tga")
GRAYSCALE_MODES = ("L", "1", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
UNRANGED_MODES = ("I", "F")  # 32-bit integer / float pixels: no declared range to map to 0..255
METADATA_FOLDERS = ("__MACOSX",)
METADATA_FILES = ("Thumbs.db", "desktop.ini", "Icon\r")  # skipped silently, like hidden files
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


class FolderSource(Source):
    kind = "folder"

    def __init__(self, root: Path, *, resize: tuple[int, int] | None):
        self._root = root
        self._files, self._skipped = scan_folder(root)
        if not self._files:
            raise GenevalInputError(f"{root}: no images in this folder or below; expected files ending in .png, .jpg, "
                                    ".webp, .tif, .gif, ... (hidden files are skipped)")
        sizes, modes = self._read_headers()
        self._mode = "L" if all(mode in GRAYSCALE_MODES for mode in modes) else "RGB"
        notes = self._mode_notes(modes)
        if resize is None:
            _check_one_size(root, self._files, sizes)
        height, width = resize or (sizes[0][1], sizes[0][0])
        self._labels_of_files, class_names = _classes(self._files)
        if class_names is not None:
            _check_no_empty_classes(root, class_names)
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

    def item_names(self) -> list[str]:
        """The relative paths of the images, in item order (sorted)."""
        return [str(rel) for rel in self._files[:len(self)]]

    def _read_headers(self) -> tuple[list[tuple[int, int]], list[str]]:
        sizes, modes = [], []
        self._orientations = []
        for rel in self._files:
            size, mode, orientation = inspect_image(self._root / rel)
            sizes.append(size)
            modes.append(mode)
            self._orientations.append(orientation)
        return sizes, modes

    def _mode_notes(self, modes: list[str]) -> list[str]:
        converted = Counter(mode for mode in modes if mode != self._mode)
        notes = []
        if converted:
            counts = ", ".join(f"{count} {mode}" for mode, count in sorted(converted.items()))
            notes.append(f"converted to {self._mode}: {counts}")
        rotated = sum(1 for orientation in self._orientations if orientation != 1)
        if rotated:
            notes.append(f"EXIF orientation applied to {rotated}")
        if self._skipped:
            notes.append(f"skipped {self._skipped} non-image files")
        return notes

    def _read(self, handle, start, stop):
        images = [self._decode(self._root / rel, self._orientations[i]) for i, rel in
                  zip(range(start, stop), self._files[start:stop])]
        labels = None if self._labels_of_files is None else self._labels_of_files[start:stop]
        return torch.stack(images), labels

    def _decode(self, path: Path, orientation: int) -> torch.Tensor:
        try:
            with _open_regular(path) as handle, Image.open(handle) as image:
                image.load()
                if orientation != 1:
                    image = ImageOps.exif_transpose(image)
                converted = _to_mode(image, self._mode)
        except GenevalInputError:
            raise
        except Exception as exc:  # truncated or corrupt data only shows up here, when pixels are decoded
            raise GenevalInputError(f"{path}: cannot decode image ({_reason(exc)})") from exc
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
    return scan_folder(root)[0]


def scan_folder(root: Path) -> tuple[list[PurePosixPath], int]:
    """(relative paths of the image files below ``root`` sorted component by component, number of other files).

    Hidden names and metadata folders are skipped silently; an unreadable folder is an error (skipping it would
    change the count).
    """
    def refuse(error: OSError) -> None:
        raise GenevalInputError(f"{error.filename}: cannot list folder ({error.strerror})")

    found, skipped = [], 0
    for folder, subfolders, names in os.walk(root, onerror=refuse):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name not in METADATA_FOLDERS]
        relative = PurePosixPath(Path(folder).relative_to(root).as_posix())
        for name in names:
            if name.startswith(".") or name in METADATA_FILES:
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(relative / name)
            else:
                skipped += 1
    return sorted(found, key=lambda rel: rel.parts), skipped


def inspect_image(path: Path) -> tuple[tuple[int, int], str, int]:
    """Check one file without decoding its pixels → ((width, height) as shown, Pillow mode, EXIF orientation).

    Every refusal is a one-line ``GenevalInputError`` naming the file, what was found and what was expected.
    """
    try:
        with _open_regular(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below, with the size
            with Image.open(handle) as image:
                width, height = image.size
                mode, frames = image.mode, getattr(image, "n_frames", 1) if _is_animated(image) else 1
                orientation = _orientation(image)
                if width * height > Image.MAX_IMAGE_PIXELS:
                    raise GenevalInputError(
                        f"{path}: declared size {height}x{width} ({width * height} pixels) exceeds Pillow's "
                        f"MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS}); refused without decoding (decompression bomb?)"
                    )
                if frames > 1:
                    raise GenevalInputError(f"{path}: animated or multi-page image ({frames} frames); expected one "
                                            "frame (extract the frames you mean to score)")
                if mode in UNRANGED_MODES:
                    raise GenevalInputError(f"{path}: {'32-bit integer' if mode == 'I' else 'float'} pixels (mode "
                                            f"{mode}) have no declared range; expected 8- or 16-bit images")
                if image.format == "PNG":
                    image.verify()  # chunk CRCs to the end of the file, without decompressing: finds truncation
    except GenevalInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise GenevalInputError(f"{path}: declared size exceeds twice Pillow's MAX_IMAGE_PIXELS "
                                f"({2 * Image.MAX_IMAGE_PIXELS}); refused without decoding (decompression bomb?)") from None
    except Image.UnidentifiedImageError:
        raise GenevalInputError(f"{path}: not an image Pillow can read (unknown format); expected an image file") from None
    except Exception as exc:  # Pillow raises many types for broken files; all mean "unreadable"
        raise GenevalInputError(f"{path}: truncated or corrupt image ({_reason(exc)}); expected a complete image file") from None
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return (width, height), mode, orientation


def _open_regular(path: Path):
    """Open ``path`` for reading without ever blocking: O_NONBLOCK (a FIFO opens at once), then fstat."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise GenevalInputError(f"{path}: symlink loop ({exc.strerror}); expected an image file") from None
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise GenevalInputError(f"{path}: broken symlink (its target does not exist); expected an image file") from None
        if exc.errno == errno.ENXIO:  # a socket
            raise GenevalInputError(f"{path}: not a regular file (socket); expected an image file") from None
        raise GenevalInputError(f"{path}: cannot open ({exc.strerror}); expected a readable image file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise GenevalInputError(f"{path}: not a regular file ({_file_kind(info.st_mode)}); expected an image file")
        if info.st_size == 0:
            raise GenevalInputError(f"{path}: zero-byte file; expected an image")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return kind
    return "special file"


def _is_animated(image: Image.Image) -> bool:
    try:
        return bool(getattr(image, "is_animated", False))
    except Exception:  # seeking to frame 2 of a broken file
        return False


def _orientation(image: Image.Image) -> int:
    """EXIF orientation (1 = as stored) read from the header; PNG's eXIf chunk without decoding the pixels."""
    try:
        if image.format == "PNG":  # PngImageFile.getexif() would decode the whole image
            raw = image.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = image.getexif()
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF: pixels are used as stored
        return 1
    return value if 1 <= value <= 8 else 1


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Decoded ``image`` → mode L or RGB (see the module docstring for the rules)."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.uint32)
        scaled = Image.fromarray(((values * 2 + 257) // 514).astype(np.uint8), "L")  # round(v * 255 / 65535)
        return scaled if mode == "L" else scaled.convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow's own advice for palettes with transparency; alpha dropped below
    return image.convert(mode)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 90 else text[:87] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_no_empty_classes(root: Path, class_names: list[str]) -> None:
    present = set(class_names)
    for entry in sorted(os.listdir(root)):
        if entry.startswith(".") or entry in METADATA_FOLDERS or entry in present:
            continue
        if (root / entry).is_dir() and not (root / entry).is_symlink():
            raise GenevalInputError(f"{root / entry}: empty class folder; expected images in every class folder "
                                    "(dropping it would renumber the classes after it)")


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
