"""The bad-input matrix: every kind of broken, odd or hostile input through the real ``geneval score`` CLI.

Each case builds its inputs in a folder of its own and runs ``geneval score ... --json -q`` there in a
subprocess of its own (relative paths, ``GENEVAL_CACHE`` inside the folder, no network: the Inception URL
points nowhere) with a timeout, and checks what README's "What geneval accepts and refuses" promises:

- an **error** case exits with status 2, prints exactly one ``Error:`` line of at most 200 characters that
  names the input (and the words of the rule) and never mentions weights (inputs are checked first), no
  traceback, nothing on stdout, and leaves no file behind;
- a **handled** case exits 0 with a finite result in ``--json`` and leaves nothing but complete cache entries.

The cases are generated below (``CASES``), one parametrised test each (``-k fifo`` runs one). By default each
case's process is forked from ``cli_forkserver.ForkServer`` (the CLI imported once; ~0.4 s a case instead of
~2 s of Python + torch start-up); a few cases also run through the installed console script, and
``-m slow`` runs all of them that way.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from PIL import Image

from cli_forkserver import ForkServer

GENEVAL = str(Path(sys.executable).with_name("geneval"))
TIMEOUT_S = 60
MAX_ERROR_CHARS = 200
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
PIXELS = ["--features", "pixels", "--metrics", "fid"]


@dataclass
class Case:
    name: str
    build: Callable[[Path], list]  # writes the inputs into the folder, returns the CLI arguments after "score"
    expect: str  # "error" or "handled"
    needles: tuple[str, ...] = ()  # must appear in the error line (error) or in stderr (handled)
    check: Callable[[dict], None] | None = None  # extra checks of the --json record (handled)
    skip: str | None = None
    marks: tuple = field(default_factory=tuple)


CASES: list[Case] = []


def case(expect, *needles, check=None, skip=None):
    def register(build):
        CASES.append(Case(build.__name__.removeprefix("case_"), build, expect, needles, check, skip))
        return build
    return register


# ---- input builders --------------------------------------------------------------------------------------


def rgb(n=4, h=8, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def folder(d: Path, n=4, h=8, w=8, mode="RGB", name="samples", ext="png", seed=0) -> Path:
    root = d / name
    root.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(rgb(n, h, w, seed)):
        Image.fromarray(image).convert(mode).save(root / f"img{i}.{ext}")
    return root


def score(samples="samples", ref="samples", *extra):
    return [samples, "--ref", ref, *PIXELS, *extra]


def png_with_header(width: int, height: int) -> bytes:
    """A valid-looking PNG that declares ``width``×``height`` but holds a few bytes of pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def ref_npz(d: Path, n=6, shape=(8, 8, 3)) -> str:
    np.savez(d / "ref.npz", x=np.random.default_rng(9).integers(0, 256, (n, *shape), dtype=np.uint8))
    return "ref.npz"


def shape_is(*shape):
    def check(record):
        assert record["provenance"]["samples"]["shape"] == list(shape), record["provenance"]["samples"]
    return check


def labels_are(count):
    def check(record):
        assert record["provenance"]["samples"]["labels"] is True
        assert len(record["provenance"]["samples"]["class_names"]) == count
    return check


# ---- image files: unreadable --------------------------------------------------------------------------------


@case("error", "samples/img9.png", "zero-byte")
def case_zero_byte_png(d):
    folder(d)
    (d / "samples/img9.png").write_bytes(b"")
    return score()


@case("error", "samples/img2.png", "truncated")
def case_truncated_png(d):
    folder(d, h=32, w=32)
    data = (d / "samples/img2.png").read_bytes()
    (d / "samples/img2.png").write_bytes(data[: len(data) // 2])
    return score()


@case("error", "samples/img1.png", "truncated")
def case_png_cut_in_header(d):
    folder(d)
    (d / "samples/img1.png").write_bytes((d / "samples/img1.png").read_bytes()[:20])
    return score()


@case("error", "samples/img2.jpg", "cannot decode")
def case_truncated_jpeg(d):
    folder(d, h=64, w=64, ext="jpg")
    data = (d / "samples/img2.jpg").read_bytes()
    (d / "samples/img2.jpg").write_bytes(data[: len(data) * 3 // 4])
    return score()


@case("error", "samples/img0.png", "not an image")
def case_random_bytes_png(d):
    folder(d)
    (d / "samples/img0.png").write_bytes(np.random.default_rng(1).bytes(500))
    return score()


@case("error", "samples/notes.png", "not an image")
def case_text_named_png(d):
    folder(d)
    (d / "samples/notes.png").write_text("hello\n")
    return score()


@case("error", "samples/img1.png", "not an image")
def case_png_with_corrupt_magic(d):
    folder(d)
    data = bytearray((d / "samples/img1.png").read_bytes())
    data[1:4] = b"XYZ"
    (d / "samples/img1.png").write_bytes(bytes(data))
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_jpeg_named_png(d):
    root = folder(d)
    Image.fromarray(rgb(1)[0]).save(root / "img0.png", format="JPEG")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_png_named_jpg(d):
    root = folder(d, ext="jpg")
    Image.fromarray(rgb(1)[0]).save(root / "img0.jpg", format="PNG")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_upper_case_extensions(d):
    root = folder(d)
    for path in root.iterdir():
        path.rename(path.with_suffix(".PNG"))
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_every_format(d):
    root = d / "samples"
    root.mkdir()
    for i, ext in enumerate(["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff", "gif", "ppm", "tga"]):
        Image.fromarray(rgb(1, seed=i)[0]).save(root / f"img{i}.{ext}")
    return score()


# ---- image files: modes, depth, frames, orientation ----------------------------------------------------------


@case("handled", check=shape_is(1, 8, 8))
def case_sixteen_bit_grayscale(d):
    root = d / "samples"
    root.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 65536, (8, 8), dtype=np.uint16)).save(root / f"{i}.png")
    return score()


@case("handled", check=shape_is(1, 8, 8))
def case_sixteen_bit_mixed_with_eight_bit(d):
    folder(d, mode="L")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(d / "samples/deep.png")
    return score()


@case("error", "samples/img0.tif", "mode I", "no declared range")
def case_thirty_two_bit_integer_tiff(d):
    folder(d)
    Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8) * 1000).save(d / "samples/img0.tif")
    return score()


@case("error", "samples/img0.tif", "mode F", "no declared range")
def case_float_tiff(d):
    folder(d)
    Image.fromarray(np.random.default_rng(0).random((8, 8), dtype=np.float32)).save(d / "samples/img0.tif")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_palette(d):
    folder(d, mode="P")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_palette_with_transparency(d):
    folder(d)
    image = Image.fromarray(rgb(1)[0]).convert("P")
    image.save(d / "samples/img0.png", transparency=0)
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_cmyk_jpeg(d):
    folder(d, mode="CMYK", ext="jpg")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_rgba(d):
    folder(d, mode="RGBA")
    return score()


@case("handled", check=shape_is(1, 8, 8))
def case_la(d):
    folder(d, mode="LA")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_mixed_channels(d):
    folder(d)
    Image.fromarray(rgb(1)[0]).convert("L").save(d / "samples/gray.png")
    Image.fromarray(rgb(1)[0]).convert("RGBA").save(d / "samples/alpha.png")
    return score()


@case("handled", check=shape_is(1, 8, 8))
def case_one_bit(d):
    folder(d, mode="1")
    return score()


@case("error", "samples/img0.gif", "animated")
def case_animated_gif(d):
    folder(d)
    frames = [Image.fromarray(image).convert("P") for image in rgb(3)]
    frames[0].save(d / "samples/img0.gif", save_all=True, append_images=frames[1:], duration=50)
    return score()


@case("error", "samples/img0.png", "animated")
def case_animated_png(d):
    folder(d)
    frames = [Image.fromarray(image) for image in rgb(3, seed=5)]
    frames[0].save(d / "samples/img0.png", save_all=True, append_images=frames[1:], duration=50)
    return score()


@case("error", "samples/img0.tif", "multi-page")
def case_multipage_tiff(d):
    folder(d)
    frames = [Image.fromarray(image) for image in rgb(2)]
    frames[0].save(d / "samples/img0.tif", save_all=True, append_images=frames[1:])
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_single_frame_gif(d):
    folder(d, ext="gif")
    return score()


def _exif_rotated(d: Path, ext: str) -> list:
    """Three 8x12 (HxW) images and one stored 12x8 with EXIF orientation 6 (90°): shown 8x12, so no resize."""
    folder(d, h=8, w=12, ext=ext)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb(1, 12, 8)[0]).save(d / f"samples/img0.{ext}", exif=exif.tobytes())
    return score()


@case("handled", "EXIF orientation applied", check=shape_is(3, 8, 12))
def case_exif_rotated_jpeg(d):
    return _exif_rotated(d, "jpg")


@case("handled", check=shape_is(3, 8, 12))
def case_exif_rotated_png(d):
    return _exif_rotated(d, "png")


@case("error", "samples/img0.png", "MAX_IMAGE_PIXELS", "refused without decoding")
def case_decompression_bomb_huge_declared_size(d):
    folder(d)
    (d / "samples/img0.png").write_bytes(png_with_header(100_000, 100_000))
    return score()


@case("error", "samples/img0.png", "MAX_IMAGE_PIXELS", "refused without decoding")
def case_decompression_bomb_over_limit(d):
    folder(d)
    (d / "samples/img0.png").write_bytes(png_with_header(12_000, 9_000))  # 1.08e8 > 89.5 M pixels
    return score()


@case("handled", check=shape_is(3, 1, 1))
def case_tiny_one_pixel(d):
    folder(d, h=1, w=1)
    return score()


@case("handled", check=shape_is(3, 1, 300))
def case_extreme_aspect_ratio(d):
    folder(d, h=1, w=300)
    return score()


@case("error", "samples", "differ in size", "--resize")
def case_mixed_sizes(d):
    folder(d)
    Image.fromarray(rgb(1, 10, 6)[0]).save(d / "samples/odd.png")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_mixed_sizes_resized(d):
    folder(d)
    Image.fromarray(rgb(1, 10, 6)[0]).save(d / "samples/odd.png")
    Image.fromarray(rgb(1, 1, 40)[0]).save(d / "samples/wide.png")
    return score("samples", ref_npz(d), "--resize", "8x8")  # --resize applies to the samples only


# ---- files that are not regular files ------------------------------------------------------------------------


@case("error", "samples/img9.png", "FIFO")
def case_fifo_in_folder(d):
    folder(d)
    os.mkfifo(d / "samples/img9.png")
    return score()


@case("error", "fifo.npz", "not a regular file")
def case_fifo_as_samples(d):
    folder(d)
    os.mkfifo(d / "fifo.npz")
    return score("fifo.npz")


@case("error", "samples/img9.png", "socket")
def case_socket_in_folder(d):
    folder(d)
    here = os.getcwd()
    os.chdir(d / "samples")  # AF_UNIX paths are limited to ~100 bytes: bind a short relative name
    try:
        server = socket.socket(socket.AF_UNIX)
        server.bind("img9.png")
        server.close()
    finally:
        os.chdir(here)
    return score()


@case("error", "samples/img9.png", "character device")
def case_device_in_folder(d):
    folder(d)
    os.symlink("/dev/zero", d / "samples/img9.png")
    return score()


@case("error", "samples/img8.png", "symlink loop")
def case_symlink_loop(d):
    folder(d)
    os.symlink("img9.png", d / "samples/img8.png")
    os.symlink("img8.png", d / "samples/img9.png")
    return score()


@case("error", "samples/img9.png", "broken symlink")
def case_broken_symlink(d):
    folder(d)
    os.symlink("missing.png", d / "samples/img9.png")
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_symlink_to_image(d):
    folder(d)
    os.symlink("img0.png", d / "samples/img9.png")
    return score()


@case("error", "samples/img0.png", "Permission denied",
      skip="running as root: chmod 000 does not stop root from reading" if IS_ROOT else None)
def case_unreadable_file(d):
    folder(d)
    (d / "samples/img0.png").chmod(0)
    return score()


@case("error", "samples/a", "cannot list folder",
      skip="running as root: chmod 000 does not stop root from listing" if IS_ROOT else None)
def case_unreadable_subfolder(d):
    folder(d, name="samples/a")
    folder(d, name="samples/b")
    (d / "samples/a").chmod(0)
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_folder_named_like_an_image(d):
    folder(d)
    (d / "samples/dir.png").mkdir()
    return score()


# ---- folder structure and names ------------------------------------------------------------------------------


def four_images_no_notes(record):
    samples = record["provenance"]["samples"]
    assert samples["count"] == 4 and "notes" not in samples, samples


@case("handled", check=four_images_no_notes)
def case_macos_metadata_files(d):
    root = folder(d)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (root / "._img0.png").write_bytes(b"\0\5\26\7\0\2\0\0Mac OS X")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX/._img1.png").write_bytes(b"\0\5\26\7")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints/broken.png").write_bytes(b"")
    return score()


@case("handled", "skipped 2 non-image files", check=shape_is(3, 8, 8))
def case_non_image_files_skipped(d):
    root = folder(d)
    (root / "notes.txt").write_text("how these were made")
    (root / "labels.csv").write_text("0,1,2\n")
    return score()


@case("error", "samples", "no images")
def case_only_hidden_files(d):
    (d / "samples").mkdir()
    (d / "samples/.DS_Store").write_bytes(b"x")
    (d / "samples/._a.png").write_bytes(b"x")
    return score()


@case("error", "samples", "no images")
def case_empty_folder(d):
    (d / "samples").mkdir()
    return score()


@case("error", "samples/b", "empty class folder")
def case_empty_class_folder(d):
    folder(d, name="samples/a")
    (d / "samples/b").mkdir()
    folder(d, name="samples/c")
    return score()


@case("error", "samples/b", "empty class folder")
def case_class_folder_with_only_metadata(d):
    folder(d, name="samples/a")
    folder(d, name="samples/c")
    (d / "samples/b").mkdir()
    (d / "samples/b/.DS_Store").write_bytes(b"x")
    return score()


@case("handled", check=labels_are(2))
def case_class_folders(d):
    folder(d, name="samples/cat")
    folder(d, name="samples/dog", seed=1)
    return score()


@case("handled", check=shape_is(3, 8, 8))
def case_non_ascii_names(d):
    root = d / "samples_ß画像"
    root.mkdir()
    for i, name in enumerate(["ünïcödé.png", "画像.png", "emoji-🙂.png", "Ωmega.png"]):
        Image.fromarray(rgb(1, seed=i)[0]).save(root / name)
    return score("samples_ß画像", "samples_ß画像")


@case("handled", check=shape_is(3, 8, 8))
def case_undecodable_byte_name(d):
    root = folder(d)
    os.rename(os.fsencode(root / "img0.png"), os.fsencode(root) + b"/bad-\xff\xfe.png")
    return score()


@case("error", "no file or folder named 'missing/'")
def case_missing_path(d):
    folder(d)
    return score("missing/")


# ---- arrays ---------------------------------------------------------------------------------------------------


@case("error", "bad.npz", "has keys", "arr_0")
def case_npz_wrong_keys(d):
    np.savez(d / "bad.npz", pictures=rgb())
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "several image arrays")
def case_npz_several_image_keys(d):
    np.savez(d / "bad.npz", x=rgb(), images=rgb())
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "has no key 'y'")
def case_npz_missing_named_key(d):
    np.savez(d / "bad.npz", x=rgb())
    return score("bad.npz:y", ref_npz(d))


@case("error", "bad.npz", "pickle", "allow_pickle=False")
def case_npz_object_array(d):
    np.savez(d / "bad.npz", x=np.array([rgb(1)[0], "payload"], dtype=object))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npy", "pickle", "allow_pickle=False")
def case_npy_object_array(d):
    np.save(d / "bad.npy", np.array([rgb(1)[0], "payload"], dtype=object))
    return score("bad.npy", ref_npz(d))


@case("error", "bad.npz", "dtype bool")
def case_npz_bool(d):
    np.savez(d / "bad.npz", x=rgb() > 128)
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "dtype complex")
def case_npz_complex(d):
    np.savez(d / "bad.npz", x=rgb().astype(np.complex64))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "is not an image type")
def case_npz_strings(d):
    np.savez(d / "bad.npz", x=np.full((4, 8, 8, 3), "a"))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npy", "2 dimensions")
def case_npy_rank_two(d):
    np.save(d / "bad.npy", rgb().reshape(4, -1))
    return score("bad.npy", ref_npz(d))


@case("error", "bad.npy", "5 dimensions")
def case_npy_rank_five(d):
    np.save(d / "bad.npy", rgb()[:, None])
    return score("bad.npy", ref_npz(d))


@case("error", "bad.npy", "expected 1 or 3")
def case_npy_four_channels(d):
    np.save(d / "bad.npy", np.random.default_rng(0).integers(0, 256, (4, 8, 8, 4), dtype=np.uint8))
    return score("bad.npy", ref_npz(d))


@case("error", "bad.npy", "expected 1 or 3")
def case_npy_two_channels_first(d):
    np.save(d / "bad.npy", np.random.default_rng(0).integers(0, 256, (4, 2, 8, 8), dtype=np.uint8))
    return score("bad.npy", ref_npz(d))


@case("handled", check=shape_is(3, 8, 8))
def case_npy_nchw(d):
    np.save(d / "ok.npy", rgb().transpose(0, 3, 1, 2).copy())
    return score("ok.npy", ref_npz(d))


@case("handled", check=shape_is(3, 8, 8))
def case_npy_nhwc(d):
    np.save(d / "ok.npy", rgb())
    return score("ok.npy", ref_npz(d))


@case("handled", check=shape_is(1, 8, 8))
def case_npy_grayscale_nhw(d):
    np.save(d / "ok.npy", rgb()[..., 0].copy())
    return score("ok.npy", ref_npz(d, shape=(8, 8)))


@case("handled", "assumed channels-last", check=shape_is(3, 3, 3))
def case_npy_ambiguous_layout(d):
    np.save(d / "ok.npy", np.random.default_rng(0).integers(0, 256, (4, 3, 3, 3), dtype=np.uint8))
    return score("ok.npy", ref_npz(d, shape=(3, 3, 3)))


@case("error", "bad.npy", "--range", "does not guess")
def case_float_without_range(d):
    np.save(d / "bad.npy", rgb() / 255.0)
    return score("bad.npy", ref_npz(d))


@case("handled", check=shape_is(3, 8, 8))
def case_float_with_range(d):
    np.save(d / "ok.npy", (rgb() / 127.5 - 1).astype(np.float32))
    return score("ok.npy", ref_npz(d), "--range", "-1,1")


@case("handled", check=shape_is(3, 8, 8))
def case_float16_and_big_endian(d):
    np.save(d / "ok.npy", (rgb() / 255.0).astype(">f2"))
    return score("ok.npy", ref_npz(d), "--range", "0,1")


@case("error", "bad.npy", "NaN or infinite")
def case_nan_in_last_image(d):
    data = (rgb() / 255.0).astype(np.float32)
    data[-1, 4, 4, 1] = np.nan
    np.save(d / "bad.npy", data)
    return score("bad.npy", ref_npz(d), "--range", "0,1")


@case("error", "bad.npz", "NaN or infinite")
def case_inf_in_npz(d):
    data = (rgb() / 255.0).astype(np.float64)
    data[2, 0, 0, 0] = -np.inf
    np.savez(d / "bad.npz", x=data)
    return score("bad.npz", ref_npz(d), "--range", "0,1")


@case("error", "bad.npy", "integer values span", "0..255")
def case_int_out_of_range(d):
    data = rgb().astype(np.int64)
    data[-1, 0, 0, 0] = 1000
    np.save(d / "bad.npy", data)
    return score("bad.npy", ref_npz(d))


@case("handled", check=shape_is(3, 8, 8))
def case_int16_pixels(d):
    np.save(d / "ok.npy", rgb().astype(np.int16))
    return score("ok.npy", ref_npz(d))


@case("error", "bad.npz", "expected an .npz")
def case_npz_random_bytes(d):
    (d / "bad.npz").write_bytes(np.random.default_rng(2).bytes(300))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "zero-byte")
def case_npz_zero_byte(d):
    (d / "bad.npz").write_bytes(b"")
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npy", "expected an .npy")
def case_npy_pickle_file(d):
    import pickle
    (d / "bad.npy").write_bytes(pickle.dumps({"x": 1}))
    return score("bad.npy", ref_npz(d))


@case("error", "bad.npy", "cannot read as .npy")
def case_npy_truncated(d):
    np.save(d / "bad.npy", rgb(40))
    data = (d / "bad.npy").read_bytes()
    (d / "bad.npy").write_bytes(data[: len(data) // 2])
    return score("bad.npy", ref_npz(d))


@case("error", "bad.npz", "need at least 2 images")
def case_npz_one_image(d):
    np.savez(d / "bad.npz", x=rgb(1))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "need at least 2 images")
def case_npz_empty(d):
    np.savez(d / "bad.npz", x=rgb(0))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "labels of dtype float")
def case_npz_float_labels(d):
    np.savez(d / "bad.npz", x=rgb(), y=np.zeros(4))
    return score("bad.npz", ref_npz(d))


@case("error", "labels", "length 3", "4 images")
def case_npz_labels_wrong_length(d):
    np.savez(d / "bad.npz", x=rgb(), y=np.zeros(3, np.int64))
    return score("bad.npz", ref_npz(d))


@case("error", "bad.npz", "labels include -1")
def case_npz_negative_labels(d):
    np.savez(d / "bad.npz", x=rgb(), y=np.array([0, 1, -1, 0]))
    return score("bad.npz", ref_npz(d))


def has_labels(record):
    assert record["provenance"]["samples"]["labels"] is True, record["provenance"]["samples"]


@case("handled", check=has_labels)
def case_npz_adm_layout_with_labels(d):
    np.savez(d / "ok.npz", rgb(), np.array([0, 1, 1, 0]))
    return score("ok.npz", ref_npz(d))


# ---- HDF5 -------------------------------------------------------------------------------------------------------


@case("error", "bad.h5", "has no dataset 'images'", "available: pixels")
def case_h5_missing_dataset(d):
    with h5py.File(d / "bad.h5", "w") as handle:
        handle["pixels"] = rgb()
    return score("bad.h5:images", ref_npz(d))


@case("error", "bad.h5", "2 datasets", "name one")
def case_h5_several_datasets(d):
    with h5py.File(d / "bad.h5", "w") as handle:
        handle["a"] = rgb()
        handle["b"] = rgb()
    return score("bad.h5", ref_npz(d))


@case("error", "bad.h5", "has no dataset 'grp'")
def case_h5_group_not_dataset(d):
    with h5py.File(d / "bad.h5", "w") as handle:
        handle.create_group("grp")["x"] = rgb()
    return score("bad.h5:grp", ref_npz(d))


@case("error", "bad.h5", "cannot open as HDF5")
def case_h5_random_bytes(d):
    (d / "bad.h5").write_bytes(np.random.default_rng(3).bytes(2000))
    return score("bad.h5", ref_npz(d))


@case("handled", check=shape_is(3, 8, 8))
def case_h5_nested_dataset(d):
    with h5py.File(d / "ok.h5", "w") as handle:
        handle.create_group("run")["samples"] = rgb()
    return score("ok.h5:run/samples", ref_npz(d))


# ---- statistics files (mu/sigma) as the reference ------------------------------------------------------------------


def fmnist_like(d: Path, n=6) -> str:
    np.savez(d / "gen.npz", x=np.random.default_rng(4).integers(0, 256, (n, 28, 28), dtype=np.uint8))
    return "gen.npz"


def stats_file(d: Path, mu, sigma, **extra) -> str:
    np.savez(d / "stats.npz", mu=mu, sigma=sigma, **extra)
    return "stats.npz"


DOMAIN = ["--features", "fashion-mnist-cnn", "--metrics", "fid"]


@case("error", "stats.npz", "dimension 10", "dimension 256")
def case_stats_wrong_dimension(d):
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(10), np.eye(10)), *DOMAIN]


@case("error", "stats.npz", "'mu' is float64 of shape [4, 4]")
def case_stats_mu_matrix(d):
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros((4, 4)), np.eye(4)), *DOMAIN]


@case("error", "stats.npz", "expected [D] and [D, D]")
def case_stats_sigma_mismatch(d):
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(5), np.eye(4)), *DOMAIN]


@case("error", "stats.npz", "NaN or infinite")
def case_stats_nan(d):
    sigma = np.eye(256)
    sigma[3, 3] = np.nan
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(256), sigma), *DOMAIN]


@case("error", "stats.npz", "not symmetric")
def case_stats_not_symmetric(d):
    sigma = np.eye(256)
    sigma[0, 1] = 5.0
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(256), sigma), *DOMAIN]


@case("error", "stats.npz", "only mu/sigma", "KID")
def case_stats_with_kid(d):
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(256), np.eye(256)), "--features", "fashion-mnist-cnn",
            "--metrics", "fid,kid"]


@case("error", "stats.npz", "pickle")
def case_stats_object_array(d):
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(256), np.eye(256),
                                                 geneval_provenance=np.array([{"a": 1}], dtype=object)), *DOMAIN]


@case("handled")
def case_stats_file_ok(d):
    return [fmnist_like(d), "--ref", stats_file(d, np.zeros(256), np.eye(256)), *DOMAIN]


# ---- counts -----------------------------------------------------------------------------------------------------


@case("error", "samples has 4 images", "--num 50")
def case_num_larger_than_the_set(d):
    folder(d)
    return score("samples", "samples", "--num", "50")


@case("error", "ref.npz has 6 images", "--num-ref 7")
def case_num_ref_larger_than_the_set(d):
    folder(d)
    return score("samples", ref_npz(d), "--num-ref", "7")


@case("error", "samples", "need at least 2 images")
def case_single_image_folder(d):
    folder(d, n=1)
    return score()


# ---- the reference side gets the same checks ------------------------------------------------------------------------


@case("error", "reference/img3.png", "zero-byte")
def case_bad_reference_folder(d):
    folder(d)
    folder(d, name="reference")
    (d / "reference/img3.png").write_bytes(b"")
    return score("samples", "reference")


@case("error", "reference/img1.jpg", "cannot decode")
def case_truncated_jpeg_in_reference(d):
    folder(d, h=64, w=64)
    folder(d, name="reference", h=64, w=64, ext="jpg")
    data = (d / "reference/img1.jpg").read_bytes()
    (d / "reference/img1.jpg").write_bytes(data[: len(data) * 3 // 4])
    return score("samples", "reference")


# ---- cheap checks come before any weights are resolved (Inception, offline, no weights anywhere) -------------------


INCEPTION_OFFLINE = ["--features", "inception-v3-fid", "--metrics", "fid"]


@case("error", "samples/img9.png", "zero-byte")
def case_inception_offline_zero_byte_png(d):
    folder(d)
    (d / "samples/img9.png").write_bytes(b"")
    return ["samples", "--ref", "samples", *INCEPTION_OFFLINE]


@case("error", "bad.npz", "has keys")
def case_inception_offline_bad_reference(d):
    folder(d)
    np.savez(d / "bad.npz", nothing=np.zeros(3))
    return ["samples", "--ref", "bad.npz", *INCEPTION_OFFLINE]


@case("error", "stats.npz", "not symmetric")
def case_inception_offline_bad_stats(d):
    folder(d)
    sigma = np.eye(8)
    sigma[0, 1] = 1.0
    return ["samples", "--ref", stats_file(d, np.zeros(8), sigma), *INCEPTION_OFFLINE]


@case("error", "samples", "--num 9")
def case_inception_offline_num_too_large(d):
    folder(d)
    return ["samples", "--ref", "samples", "--num", "9", *INCEPTION_OFFLINE]


@case("error", "ref.npz", "float values need a declared range")
def case_inception_offline_float_reference(d):
    folder(d)
    np.savez(d / "ref.npz", x=rgb() / 255.0)
    return ["samples", "--ref", "ref.npz", *INCEPTION_OFFLINE]


# ---- the runner ----------------------------------------------------------------------------------------------------


def _files(root: Path) -> set[str]:
    out = set()
    for folder_, subfolders, names in os.walk(root):
        for name in names + [s for s in subfolders if os.path.islink(os.path.join(folder_, s))]:
            out.add(os.path.relpath(os.path.join(folder_, name), root))
    return out


@dataclass
class Outcome:
    result: subprocess.CompletedProcess | None
    new_files: set
    timed_out: bool = False


CASE_ENV = {"GENEVAL_CACHE": "cache", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "GENEVAL_INCEPTION_URL": "file:///nonexistent/geneval-test-no-network", "GENEVAL_INCEPTION_WEIGHTS": "",
            "GENEVAL_DOWNLOAD": "0", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}

def run_in_fork_server(server: ForkServer, args: list, cwd: Path) -> Outcome:
    before = _files(cwd)
    result, status = server.run(["score", *args], cwd=cwd, env=CASE_ENV, timeout_s=TIMEOUT_S)
    if status == "timeout":
        return Outcome(None, set(), timed_out=True)
    return Outcome(result, _files(cwd) - before)


def run_console_script(args: list, cwd: Path) -> Outcome:
    """The installed ``geneval`` console script in a subprocess, as a user runs it."""
    before = _files(cwd)
    try:
        result = subprocess.run([GENEVAL, "score", *args], cwd=cwd, capture_output=True, text=True,
                                env={**os.environ, **CASE_ENV}, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Outcome(None, set(), timed_out=True)
    return Outcome(result, _files(cwd) - before)


def _check(case_: Case, outcome: Outcome) -> None:
    assert not outcome.timed_out, f"{case_.name}: no answer within {TIMEOUT_S} s (a blocking open?)"
    result, new_files = outcome.result, outcome.new_files
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    assert not [f for f in new_files if f.endswith(".tmp")], new_files
    if case_.expect == "error":
        assert result.returncode == 2, f"exit {result.returncode}\n{stderr}\n{result.stdout[:500]}"
        errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, stderr
        line = errors[0]
        assert len(line) <= MAX_ERROR_CHARS, f"{len(line)} chars: {line}"
        for needle in case_.needles:
            assert needle in line, f"{needle!r} not in {line!r}"
        assert "weights" not in line.lower(), line  # the input is found bad before any weights are looked for
        assert result.stdout == ""
        assert not new_files, f"left behind after an error: {sorted(new_files)}"
    else:
        assert result.returncode == 0, stderr
        record = json.loads(result.stdout)
        values = [r["value"] for r in record["results"]]
        assert values and all(isinstance(v, float) and math.isfinite(v) for v in values), record["results"]
        for needle in case_.needles:
            assert needle in stderr or needle in json.dumps(record, ensure_ascii=False), needle
        if case_.check is not None:
            case_.check(record)
        assert all(f.startswith(os.path.join("cache", "features", "")) and f.endswith(".h5") for f in new_files), new_files


def _unlock(root: Path) -> None:
    """Make chmod-000 files and folders removable again, so that pytest can clean up."""
    for folder_, subfolders, names in os.walk(root):
        for name in subfolders + names:
            path = os.path.join(folder_, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


def _selected(request, test_name: str) -> list[Case]:
    names = {item.callspec.params["case_"].name for item in request.session.items
             if item.originalname == test_name and item.module is request.module}
    return [c for c in CASES if c.name in names and not c.skip]


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Every selected case's inputs built in a folder of its own, then run one after the other by the fork server."""
    chosen = _selected(request, "test_bad_input")
    folders = {c.name: tmp_path_factory.mktemp(c.name) / "case" for c in chosen}
    server = ForkServer() if chosen else None
    results = {}
    try:
        for c in chosen:
            folders[c.name].mkdir()
            args = [str(a) for a in c.build(folders[c.name])] + ["--json", "-q"]
            results[c.name] = run_in_fork_server(server, args, folders[c.name])
    finally:
        if server is not None:
            server.close()
    yield results
    for folder_ in folders.values():
        _unlock(folder_)


def _params(only=None):
    for c in CASES:
        if only is not None and c.name not in only:
            continue
        marks = [pytest.mark.skip(reason=c.skip)] if c.skip else []
        yield pytest.param(c, id=c.name, marks=marks)


def test_the_matrix_is_large_and_covers_both_outcomes():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.expect for c in CASES} == {"error", "handled"}


@pytest.mark.parametrize("case_", list(_params()))
def test_bad_input(case_: Case, outcomes):
    _check(case_, outcomes[case_.name])


# The same cases through the installed console script (a fresh Python per case, ~2 s of CPU each): a few by
# default, all of them with -m slow.
CONSOLE_SCRIPT_CASES = {"zero_byte_png", "fifo_in_folder", "rgba", "npz_object_array", "stats_wrong_dimension",
                        "inception_offline_zero_byte_png", "empty_class_folder", "exif_rotated_jpeg"}


def _console(case_: Case, tmp_path: Path) -> None:
    cwd = tmp_path / "case"
    cwd.mkdir()
    try:
        _check(case_, run_console_script([str(a) for a in case_.build(cwd)] + ["--json", "-q"], cwd))
    finally:
        _unlock(cwd)


@pytest.mark.parametrize("case_", list(_params(CONSOLE_SCRIPT_CASES)))
def test_bad_input_console_script(case_: Case, tmp_path):
    _console(case_, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case_", list(_params({c.name for c in CASES} - CONSOLE_SCRIPT_CASES)))
def test_bad_input_console_script_all(case_: Case, tmp_path):
    _console(case_, tmp_path)
