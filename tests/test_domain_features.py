"""Domain classifiers (fashion-mnist-cnn, mnist-cnn, cifar10-cnn): shipped weights, accuracy, features, errors.

Tests of the shipped weights skip with a reason until a network has been trained and exported; the others run
on randomly initialised networks saved to a temporary folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from geneval.datasets import open_dataset
from geneval.errors import GenevalInputError
from geneval.features import domain
from geneval.features.base import EXTRACTORS
from geneval.features.domain import DEFAULT_LAYERS, NETS, WEIGHTS_DIR, build, file_sha256

DATA_FIXTURE = {"fashion-mnist": "fashion_mnist_dir", "mnist": "mnist_npz", "cifar10": "cifar10_npz"}


def shipped(name: str) -> Path:
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        pytest.skip(f"{name} weights not shipped yet ({NETS[name].train_command})")
    return path


def random_weights(name: str, folder: Path, *, seed: int = 0) -> Path:
    """A randomly initialised network saved with a matching .json, as an exported one would be."""
    torch.manual_seed(seed)
    path = folder / f"{name}.pt"
    torch.save(NETS[name].build().state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"sha256": file_sha256(path)}))
    return path


def random_images(name: str, count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, *NETS[name].input_shape), dtype=torch.uint8, generator=generator)


@pytest.fixture(scope="module")
def extractors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {name: build(name, weights=random_weights(name, folder)) for name in NETS}


# --------------------------------------------------------------------------------------------- shipped weights


@pytest.mark.parametrize("name", sorted(NETS))
def test_shipped_weights_match_their_json(name):
    path = shipped(name)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert file_sha256(path) == meta["sha256"]
    assert meta["name"] == name and meta["dataset"] == NETS[name].dataset
    for key in ("seed", "epochs", "test_accuracy", "retrain_command", "torch", "date"):
        assert key in meta
    state = torch.load(path, weights_only=True)
    assert set(state) == set(NETS[name].build().state_dict())
    assert path.stat().st_size < 8 * 2**20  # small: a few MB


@pytest.mark.parametrize("name", sorted(NETS))
def test_shipped_accuracy_on_the_real_test_split(name, request):
    path = shipped(name)
    request.getfixturevalue(DATA_FIXTURE[NETS[name].dataset])
    meta = json.loads(path.with_suffix(".json").read_text())
    extractor = EXTRACTORS.get(name)()
    assert extractor.info.weights_sha256 == meta["sha256"]
    images, labels, info = open_dataset(NETS[name].dataset, "test")
    assert info["fingerprint"] == meta["test_split"]["fingerprint"]
    predictions = np.concatenate([
        extractor.features(torch.tensor(images[i:i + 1000]), ("logits",))["logits"].argmax(1).numpy()
        for i in range(0, len(images), 1000)
    ])
    accuracy = float((predictions == labels).mean())
    assert accuracy >= NETS[name].target_accuracy
    assert abs(accuracy - meta["test_accuracy"]) <= 0.001  # within 0.1 point of the recorded value


def test_missing_shipped_weights_give_the_training_command(tmp_path, monkeypatch):
    monkeypatch.setattr(domain, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(GenevalInputError, match="not shipped yet.*python -m trainers.classifiers.train "
                                                "--dataset cifar10"):
        EXTRACTORS.get("cifar10-cnn")()


def test_sha256_mismatch_is_an_error(tmp_path):
    path = random_weights("mnist-cnn", tmp_path)
    path.with_suffix(".json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(GenevalInputError, match="does not match"):
        build("mnist-cnn", weights=path)


def test_shipped_files_need_their_json(tmp_path, monkeypatch):
    monkeypatch.setattr(domain, "WEIGHTS_DIR", tmp_path)
    random_weights("mnist-cnn", tmp_path).with_suffix(".json").unlink()
    with pytest.raises(GenevalInputError, match="shipped weights need their metadata"):
        build("mnist-cnn")


def test_wrong_state_dict_is_an_error(tmp_path):
    path = random_weights("cifar10-cnn", tmp_path)
    shutil.copy(path, tmp_path / "x.pt")
    with pytest.raises(GenevalInputError, match="not a state dict of 'mnist-cnn'"):
        build("mnist-cnn", weights=tmp_path / "x.pt")


# --------------------------------------------------------------------------------------------- features


@pytest.mark.parametrize("name", sorted(NETS))
def test_registered_with_layers_and_defaults(name, extractors):
    assert name in EXTRACTORS
    info = extractors[name].info
    assert info.name == name and info.mode == "native" and len(info.weights_sha256) == 64
    assert info.layers == {"embedding": NETS[name].embedding_dim, "logits": 10, "probs": 10}
    assert 128 <= info.layers["embedding"] <= 512
    assert info.default_layers == DEFAULT_LAYERS and extractors[name].default_layer("is") == "logits"


@pytest.mark.parametrize("name", sorted(NETS))
def test_feature_shapes(name, extractors):
    out = extractors[name].features(random_images(name, 5), ("embedding", "logits", "probs"))
    assert out["embedding"].shape == (5, NETS[name].embedding_dim) and out["logits"].shape == (5, 10)
    assert all(v.dtype == torch.float32 for v in out.values())
    torch.testing.assert_close(out["probs"], torch.softmax(out["logits"], 1))
    assert (out["embedding"] >= 0).all()  # after ReLU


@pytest.mark.parametrize("name", sorted(NETS))
def test_batch_size_independence(name, extractors):
    images = random_images(name, 40, seed=1)
    whole = extractors[name].features(images, ("embedding", "logits"))
    for size in (1, 7):
        parts = [extractors[name].features(images[i:i + size], ("embedding", "logits")) for i in range(0, 40, size)]
        for layer in whole:
            torch.testing.assert_close(torch.cat([p[layer] for p in parts]), whole[layer], rtol=1e-4, atol=1e-5)


def test_gray_network_accepts_three_equal_channels(extractors):
    images = random_images("fashion-mnist-cnn", 4)
    one = extractors["fashion-mnist-cnn"].features(images, ("logits",))["logits"]
    three = extractors["fashion-mnist-cnn"].features(images.expand(-1, 3, -1, -1), ("logits",))["logits"]
    torch.testing.assert_close(one, three)


def test_gray_network_rejects_colour(extractors):
    images = random_images("mnist-cnn", 2).repeat(1, 3, 1, 1)
    images[:, 1] ^= 1
    with pytest.raises(GenevalInputError, match="3 different channels"):
        extractors["mnist-cnn"].features(images, ("embedding",))


def test_rgb_network_repeats_grayscale(extractors):
    gray = random_images("cifar10-cnn", 3)[:, :1]
    torch.testing.assert_close(extractors["cifar10-cnn"].features(gray, ("logits",))["logits"],
                               extractors["cifar10-cnn"].features(gray.repeat(1, 3, 1, 1), ("logits",))["logits"])


@pytest.mark.parametrize("name, size", [("mnist-cnn", 32), ("cifar10-cnn", 28), ("fashion-mnist-cnn", 64)])
def test_wrong_size_names_the_expected_size(name, size, extractors):
    c, h, w = NETS[name].input_shape
    with pytest.raises(GenevalInputError, match=f"expects {h}×{w}"):
        extractors[name].features(torch.zeros(2, c, size, size, dtype=torch.uint8), ("embedding",))


def test_other_input_mistakes(extractors):
    extractor = extractors["mnist-cnn"]
    with pytest.raises(GenevalInputError, match="dtype torch.float32; expected uint8"):
        extractor.features(torch.zeros(2, 1, 28, 28), ("embedding",))
    with pytest.raises(GenevalInputError, match=r"expected \[B, C, H, W\]"):
        extractor.features(torch.zeros(1, 28, 28, dtype=torch.uint8), ("embedding",))
    with pytest.raises(GenevalInputError, match="4 channels; expected 1"):
        extractor.features(torch.zeros(2, 4, 28, 28, dtype=torch.uint8), ("embedding",))
    with pytest.raises(GenevalInputError, match="unknown layer.*pool3.*known: embedding, logits, probs"):
        extractor.features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), ("pool3",))
    with pytest.raises(GenevalInputError, match="mode 'tf' is not supported"):
        build("mnist-cnn", mode="tf")


def test_numpy_input_and_eval_mode(extractors):
    extractor = extractors["mnist-cnn"]
    images = random_images("mnist-cnn", 3)
    torch.testing.assert_close(extractor.features(images.numpy(), ("embedding",))["embedding"], extractor(images))
    assert not extractor.net.training
