"""Sources: every kind of input yields the same uint8 batches and fingerprint for the same pixels."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from geneval.errors import GenevalInputError
from geneval.sources import Source, open_source

N, C, H, W = 10, 3, 16, 12  # H != W so that a swapped axis cannot pass unnoticed


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """uint8 [N, C, H, W]."""
    return np.random.default_rng(0).integers(0, 256, (N, C, H, W), dtype=np.uint8)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.arange(N) * 3 // N  # sorted, so a class-folder listing keeps the index order


def save_folder(root, images: np.ndarray, *, labels=None, class_names=("cat", "dog", "zebra"), ext="png"):
    root.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        folder = root if labels is None else root / class_names[labels[i]]
        folder.mkdir(exist_ok=True)
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(array).save(folder / f"img{i:03d}.{ext}")
    return root


def collect(source: Source, batch_size: int = 4, limit=None):
    parts = list(source.batches(batch_size, limit=limit))
    for batch, _ in parts:
        assert batch.dtype == torch.uint8 and batch.is_contiguous() and batch.ndim == 4
    images = torch.cat([b for b, _ in parts]).numpy()
    labels = None if parts[0][1] is None else torch.cat([lab for _, lab in parts]).numpy()
    return images, labels


class ItemDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def all_kinds(tmp_path, images: np.ndarray) -> dict:
    """The same pixels as every kind of source (no labels)."""
    nhwc = images.transpose(0, 2, 3, 1)
    np.savez(tmp_path / "adm.npz", nhwc)
    np.savez(tmp_path / "xy.npz", x=images)
    np.save(tmp_path / "a.npy", nhwc)
    np.save(tmp_path / "float.npy", images.astype(np.float32) / 127.5 - 1)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["group/images"] = images
        f["other"] = np.zeros(3)
    pil = [Image.fromarray(x) for x in nhwc]
    return {
        "folder": open_source(save_folder(tmp_path / "png", images)),
        "npz arr_0 NHWC": open_source(tmp_path / "adm.npz"),
        "npz x NCHW": open_source(str(tmp_path / "xy.npz")),
        "npy": open_source(tmp_path / "a.npy"),
        "npy float [-1,1]": open_source(tmp_path / "float.npy", value_range="[-1,1]"),
        "h5": open_source(f"{tmp_path / 'a.h5'}:group/images"),
        "tensor": open_source(torch.from_numpy(images)),
        "ndarray NHWC": open_source(nhwc),
        "dataset PIL": open_source(ItemDataset(pil)),
        "dataset tensor CHW": open_source(ItemDataset([(torch.from_numpy(x),) for x in images])),
        "dataset ToTensor": open_source(ItemDataset([torch.from_numpy(x) / 255.0 for x in images]), value_range="0,1"),
        "generator": open_source(lambda num, seed: images[seed : seed + num], num=N),
    }


def test_every_kind_round_trips_the_same_pixels(tmp_path, images):
    sources = all_kinds(tmp_path, images)
    fingerprint = sources["folder"].fingerprint()
    for kind, source in sources.items():
        got, got_labels = collect(source, batch_size=3)
        np.testing.assert_array_equal(got, images, err_msg=kind)
        assert got_labels is None and not source.has_labels, kind
        assert len(source) == N and source.image_shape == (C, H, W), kind
        json.dumps(source.describe())
        assert source.describe()["count"] == N
        if kind == "generator":
            assert source.fingerprint() is None
        else:
            assert source.fingerprint() == fingerprint, kind
    assert sources["npz arr_0 NHWC"].description.startswith("npz adm.npz key 'arr_0', 10 images 3x16x12, layout NHWC (detected)")
    assert "NCHW" in sources["npz x NCHW"].description
    assert "[-1,1]" in sources["npy float [-1,1]"].description


def test_labels_from_every_kind(tmp_path, images, labels):
    nhwc = images.transpose(0, 2, 3, 1)
    np.savez(tmp_path / "xy.npz", x=nhwc, y=labels.astype(np.uint8))
    np.savez(tmp_path / "adm.npz", images, labels)  # ADM class-conditional: arr_0, arr_1
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["images"], f["labels"] = images, labels
    sources = {
        "class folders": open_source(save_folder(tmp_path / "classes", images, labels=labels)),
        "npz x,y": open_source(tmp_path / "xy.npz"),
        "npz arr_0,arr_1": open_source(tmp_path / "adm.npz"),
        "h5 + labels spec": open_source(f"{tmp_path}/a.h5:images", labels=f"{tmp_path}/a.h5:labels"),
        "tensor + labels": open_source(torch.from_numpy(images), labels=torch.from_numpy(labels)),
        "dataset": open_source(ItemDataset([(torch.from_numpy(x), int(y)) for x, y in zip(images, labels)])),
        "generator": open_source(lambda num, seed: (images[seed : seed + num], labels[seed : seed + num]), num=N),
    }
    fingerprint = sources["class folders"].fingerprint()
    assert sources["class folders"].class_names == ["cat", "dog", "zebra"]
    for kind, source in sources.items():
        got, got_labels = collect(source, batch_size=4)
        np.testing.assert_array_equal(got, images, err_msg=kind)
        np.testing.assert_array_equal(got_labels, labels, err_msg=kind)
        assert source.has_labels, kind
        assert source.fingerprint() in (fingerprint, None), kind
    unlabeled = open_source(torch.from_numpy(images))
    assert unlabeled.fingerprint() != fingerprint  # labels are part of the content


def test_batch_size_independence_limit_and_num(tmp_path, images):
    source = open_source(save_folder(tmp_path / "png", images))
    for batch_size in (1, 3, 64):
        np.testing.assert_array_equal(collect(source, batch_size)[0], images)
    assert [len(b) for b, _ in source.batches(4, limit=6)] == [4, 2]
    np.testing.assert_array_equal(collect(source, 4, limit=6)[0], images[:6])
    assert len(list(source.batches(4, limit=100))) == 3  # clipped to len(source)
    first6 = open_source(torch.from_numpy(images), num=6)
    assert len(first6) == 6 and first6.describe()["count"] == 6
    np.testing.assert_array_equal(collect(first6)[0], images[:6])
    assert source.fingerprint(6) == first6.fingerprint() != source.fingerprint()


def test_generator_seed_contract(tmp_path):
    def sample(num: int, seed: int) -> torch.Tensor:  # sample j depends only on seed + j
        out = [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(seed + j)) * 2 - 1 for j in range(num)]
        return torch.stack(out)

    source = open_source(sample, num=100, seed=3, value_range="[-1,1]")
    small, large = collect(source, 7)[0], collect(source, 64)[0]
    np.testing.assert_array_equal(small, large)
    shifted = collect(open_source(sample, num=50, seed=53, value_range="[-1,1]"), 9)[0]
    np.testing.assert_array_equal(shifted, small[50:])
    assert source.fingerprint() is None
    assert source.describe()["seed"] == 3

    calls = []

    def keyword_only(num, *, seed):
        calls.append((num, seed))
        return np.full((num, 4, 4), 7, dtype=np.uint8)  # grayscale [N, H, W]

    gray = open_source(keyword_only, num=5, seed=10)
    assert gray.image_shape == (1, 4, 4)
    assert collect(gray, 2)[0].shape == (5, 1, 4, 4)
    assert calls == [(1, 10), (1, 11), (2, 12), (1, 14)]  # the probe (sample 0) is reused, not drawn twice


def test_folder_extensions_any_case_and_jpeg(tmp_path, images):
    root = tmp_path / "mixed"
    root.mkdir()
    rgb = images.transpose(0, 2, 3, 1)
    formats = {"PNG": "PNG", "Jpg": "JPEG", "jpeg": "JPEG", "BMP": "BMP", "webp": "WEBP", "TIF": "TIFF", "tiff": "TIFF"}
    for i, (ext, fmt) in enumerate(formats.items()):
        Image.fromarray(rgb[i]).save(root / f"{i}.{ext}", format=fmt)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"not an image either")  # hidden files are skipped
    source = open_source(root)
    assert len(source) == 7 and source.image_shape == (C, H, W) and not source.has_labels
    got = collect(source)[0]
    assert got.shape == (7, C, H, W)
    lossless = [0, 3, 5, 6]  # png, bmp, tif, tiff; order: 0.PNG 1.Jpg 2.jpeg 3.BMP 4.webp 5.TIF 6.tiff
    np.testing.assert_array_equal(got[lossless], images[lossless])


def test_folder_modes_grayscale_rgba_palette(tmp_path, images):
    gray = save_folder(tmp_path / "gray", images[:, :1])
    assert open_source(gray).image_shape == (1, H, W)
    np.testing.assert_array_equal(collect(open_source(gray))[0], images[:, :1])

    mixed = save_folder(tmp_path / "mixed", images[:4])
    Image.fromarray(images[4, 0]).save(mixed / "gray.png")
    rgba = np.concatenate([images[5].transpose(1, 2, 0), np.full((H, W, 1), 9, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(mixed / "rgba.png")
    Image.fromarray(images[6].transpose(1, 2, 0)).convert("P").save(mixed / "palette.png")
    source = open_source(mixed)
    assert source.image_shape == (3, H, W)
    assert "converted to RGB: 1 L, 1 P, 1 RGBA" in source.description
    got = collect(source)[0]  # order: gray, img000..img003, palette, rgba
    assert (got[0] == images[4, 0]).all()  # grayscale repeated into three channels
    np.testing.assert_array_equal(got[-1], images[5])  # alpha dropped, colour kept


def test_resize(tmp_path, images):
    root = save_folder(tmp_path / "sizes", images[:3])
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / "wide.png")
    with pytest.raises(GenevalInputError, match=r"img000.png is 16x12 \(HxW\) but wide.png is 20x30.*--resize") as err:
        open_source(root)
    assert "\n" not in str(err.value)
    source = open_source(root, resize=(8, 10))
    assert source.image_shape == (3, 8, 10) and len(source) == 4
    assert "resized to 8x10 (PIL bicubic)" in source.description
    assert source.describe()["resize"] == {"size_hw": [8, 10], "filter": "PIL bicubic"}
    got = collect(source)[0]
    expected = np.asarray(Image.fromarray(images[0].transpose(1, 2, 0)).resize((10, 8), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(got[0], expected.transpose(2, 0, 1))
    # Arrays and datasets resized by the source give the same bytes as the resized PNG folder.
    as_array = open_source(torch.from_numpy(images[:3]), resize="8x10")
    assert as_array.fingerprint() == open_source(save_folder(tmp_path / "same", images[:3]), resize=(8, 10)).fingerprint()
    pil = [Image.open(path) for path in sorted(root.iterdir())]  # img000..img002, wide: two sizes
    assert open_source(ItemDataset(pil), resize=(8, 10)).fingerprint() == source.fingerprint()
    with pytest.raises(GenevalInputError, match=r"ItemDataset item 3: image \[3, 20, 30\].*resize"):
        collect(open_source(ItemDataset(pil)))


# ---- errors: one line, GenevalInputError, naming the file or value ---------------------------------------


def test_named_dataset(mnist_npz):
    source = open_source("mnist:test", num=100)
    assert len(source) == 100 and source.image_shape == (1, 28, 28) and source.has_labels
    assert source.describe()["split"] == "test" and source.class_names[:2] == ["0", "1"]
    assert open_source(source) is source  # an open Source passes through
    with pytest.raises(GenevalInputError, match="no file or folder named 'mnist:val'"):
        open_source("mnist:val")


def test_error_nonexistent_paths(tmp_path):
    for spec in [tmp_path / "missing", f"{tmp_path}/missing.npz", f"{tmp_path}/nope.h5:images", "samples.npz"]:
        with pytest.raises(GenevalInputError, match="no file or folder named .*(missing|nope|samples)"):
            open_source(spec)
    with pytest.raises(GenevalInputError, match="definitely-not-a-dataset"):
        open_source("definitely-not-a-dataset")


def test_error_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(GenevalInputError, match=r"empty: no images in this folder or below; expected files ending in .png"):
        open_source(empty)


def test_error_unreadable_and_truncated_images(tmp_path, images):
    broken = save_folder(tmp_path / "broken", images[:3])
    (broken / "img001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(GenevalInputError, match="img001.png: not an image Pillow can read"):
        open_source(broken)

    truncated = save_folder(tmp_path / "truncated", images[:5])
    data = (truncated / "img003.png").read_bytes()
    (truncated / "img003.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    with pytest.raises(GenevalInputError, match="img003.png: truncated or corrupt"):
        open_source(truncated)  # PNG chunk CRCs are checked at open time, without decoding

    jpegs = tmp_path / "jpegs"
    jpegs.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    for i in range(5):
        Image.fromarray(noise[i]).save(jpegs / f"img{i:03d}.jpg", quality=95)
    data = (jpegs / "img003.jpg").read_bytes()
    (jpegs / "img003.jpg").write_bytes(data[: len(data) * 3 // 4])  # headers intact, entropy-coded data cut
    source = open_source(jpegs)  # a JPEG's truncation only shows when its pixels are decoded
    batches = source.batches(2)
    next(batches)  # items 0, 1 decode fine
    with pytest.raises(GenevalInputError, match="img003.jpg: cannot decode image"):
        next(batches)


def test_error_npz_keys(tmp_path):
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(GenevalInputError, match=r"^stats.npz has keys mu, sigma; expected 'arr_0'.*'x'/'images'"):
        open_source(tmp_path / "stats.npz")
    with pytest.raises(GenevalInputError, match=r"stats.npz has no key 'images'; keys found: mu, sigma"):
        open_source(f"{tmp_path}/stats.npz:images")
    np.savez(tmp_path / "both.npz", x=np.zeros((2, 4, 4), np.uint8), images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(GenevalInputError, match=r"^both.npz has several image arrays \(x, images\); name one as both.npz:<key>"):
        open_source(tmp_path / "both.npz")
    assert len(open_source(f"{tmp_path}/both.npz:images")) == 2


def test_error_float_range_nan_and_integers(tmp_path, images):
    floats = images.astype(np.float32) / 255
    np.save(tmp_path / "floats.npy", floats)
    with pytest.raises(GenevalInputError, match="floats.npy: float values need a declared range"):
        open_source(tmp_path / "floats.npy")
    with pytest.raises(GenevalInputError, match="float values need a declared range"):
        open_source(ItemDataset([torch.from_numpy(x) / 255.0 for x in images]))
    floats[7, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", floats)
    with pytest.raises(GenevalInputError, match=r"nan.npy: 1 NaN or infinite values"):
        open_source(tmp_path / "nan.npy", value_range="[0,1]")  # every value is checked at open time
    wide = images.astype(np.int64)
    np.testing.assert_array_equal(collect(open_source(wide))[0], images)  # integers 0..255 are pixels
    wide[0, 0, 0, 0] = 300
    with pytest.raises(GenevalInputError, match=r"integer values span \[0, 300\]; expected 0..255"):
        open_source(wide)


def test_error_counts_and_num(tmp_path, images):
    with pytest.raises(GenevalInputError, match="need at least 2 images, got 1"):
        open_source(images[:1])
    with pytest.raises(GenevalInputError, match="need at least 2 images, got 1"):
        open_source(images, num=1)
    np.savez(tmp_path / "samples.npz", images)
    with pytest.raises(GenevalInputError, match="samples.npz has 10 images; --num 1000 requested"):
        open_source(tmp_path / "samples.npz", num=1000)
    with pytest.raises(GenevalInputError, match="num is required"):
        open_source(lambda num, seed: images[:num])


def test_error_dimensionality(tmp_path):
    for shape, expected in [
        ((10, 16), r"\[10, 16\] has 2 dimensions; expected \[N,H,W\]"),
        ((4, 5, 8, 8), r"\[4, 5, 8, 8\] has 5 channels \(NCHW\) or 8 \(NHWC\); expected 1 or 3"),
        ((2, 3, 3, 8, 8), "has 5 dimensions"),
    ]:
        with pytest.raises(GenevalInputError, match=expected):
            open_source(np.zeros(shape, np.uint8))
    np.save(tmp_path / "flat.npy", np.zeros((10, 16), np.uint8))
    with pytest.raises(GenevalInputError, match="flat.npy: array of shape"):
        open_source(tmp_path / "flat.npy")
    with pytest.raises(GenevalInputError, match="dtype bool is not an image type"):
        open_source(np.zeros((4, 8, 8), bool))


def test_error_labels(tmp_path, images):
    with pytest.raises(GenevalInputError, match=r"labels .* have length 3 but Tensor \[10, 3, 16, 12\] has 10 images"):
        open_source(torch.from_numpy(images), labels=[0, 1, 2])
    with pytest.raises(GenevalInputError, match="expected integer class indices"):
        open_source(images, labels=np.zeros(N, np.float32))
    np.save(tmp_path / "labels.npy", np.arange(5))
    with pytest.raises(GenevalInputError, match=r"labels from .*labels.npy have length 5 but .* has 10 images"):
        open_source(images, labels=tmp_path / "labels.npy")
    with pytest.raises(GenevalInputError, match="does not apply to a generator"):
        open_source(lambda num, seed: images[:num], num=4, labels=np.zeros(4, np.int64))


def test_error_hdf5_dataset(tmp_path, images):
    with h5py.File(tmp_path / "data.hdf5", "w") as f:
        f["train/images"], f["train/labels"] = images, np.arange(N)
    with pytest.raises(GenevalInputError, match=r"data.hdf5 has no dataset 'imgs'; available: train/images, train/labels"):
        open_source(f"{tmp_path}/data.hdf5:imgs")
    with pytest.raises(GenevalInputError, match=r"data.hdf5 holds 2 datasets; name one as data.hdf5:<dataset>"):
        open_source(tmp_path / "data.hdf5")
    with pytest.raises(GenevalInputError, match="data.hdf5 has no dataset 'nope'"):
        open_source(f"{tmp_path}/data.hdf5:train/images", labels=f"{tmp_path}/data.hdf5:nope")
    source = open_source(f"{tmp_path}/data.hdf5:train/images", labels=f"{tmp_path}/data.hdf5:train/labels")
    assert source.describe()["dataset"] == "train/images" and source.has_labels
