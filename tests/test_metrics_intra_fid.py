"""intra-FID: per-class FID by construction, Fashion-MNIST test vs train (pixels projection and the domain net),
per-class values in the record, and clear errors for unlabelled or thin classes."""

import json

import numpy as np
import pytest

from geneval import fid, intra_fid, score
from geneval.errors import GenevalInputError
from geneval.features.domain import WEIGHTS_DIR


def _labelled(seed, n=300, classes=3, dim=6, shift=0.0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    x = rng.normal(size=(n, dim)) + labels[:, None] * 2.0 + shift
    return x, labels


def test_each_class_is_the_fid_of_its_subsets_and_the_value_their_mean():
    gen, gl = _labelled(0)
    ref, rl = _labelled(1, n=450, shift=0.3)
    result = intra_fid(gen, gl, ref, rl)
    for c in range(3):
        assert result.per_class[c] == pytest.approx(fid(gen[gl == c], ref[rl == c]), rel=1e-12)
    assert result.mean == pytest.approx(np.mean([result.per_class[c] for c in range(3)]), rel=1e-12)
    assert result.counts == {0: (100, 150), 1: (100, 150), 2: (100, 150)}


def test_swapped_labels_are_caught_where_plain_fid_is_blind():
    gen, gl = _labelled(2)
    ref, rl = _labelled(3)
    swapped = np.where(gl == 0, 1, np.where(gl == 1, 0, gl))
    good, bad = intra_fid(gen, gl, ref, rl), intra_fid(gen, swapped, ref, rl)
    assert bad.per_class[0] > 20 * good.per_class[0] and bad.per_class[2] == good.per_class[2]


def test_errors():
    gen, gl = _labelled(4, n=30)
    ref, rl = _labelled(5, n=30)
    with pytest.raises(GenevalInputError, match="needs class labels for the generated samples"):
        intra_fid(gen, None, ref, rl)
    with pytest.raises(GenevalInputError, match=r"too few samples per class \(need ≥ 2 on each side\): class 2: 1 generated"):
        keep = np.concatenate([np.flatnonzero(gl != 2), np.flatnonzero(gl == 2)[:1]])
        intra_fid(gen[keep], gl[keep], ref, rl)
    with pytest.raises(GenevalInputError, match=r"generated labels \[7\] do not occur in the reference"):
        intra_fid(gen, np.where(gl == 2, 7, gl), ref, rl)
    with pytest.raises(GenevalInputError, match="feature dimensions differ"):
        intra_fid(gen, gl, ref[:, :5], rl)
    with pytest.raises(GenevalInputError, match="expected 30 integer labels"):
        intra_fid(gen, gl[:-1], ref, rl)


def _projection(images):
    """A fixed random projection of pixels to 64-d: a cheap stand-in feature space (seeded, no weights)."""
    proj = np.random.default_rng(0).normal(size=(images[0].size, 64)) / 28
    return (images.reshape(len(images), -1) / 255.0) @ proj


def test_fashion_mnist_test_vs_train_small_and_one_swap_large(fashion_mnist_dir):
    from geneval.datasets import open_dataset

    x_train, y_train, _ = open_dataset("fashion-mnist", "train")
    x_test, y_test, _ = open_dataset("fashion-mnist", "test")
    ref, gen = _projection(x_train[:20000]), _projection(x_test)
    swapped = np.where(y_test == 0, 6, np.where(y_test == 6, 0, y_test))  # T-shirt/top ↔ shirt
    honest, wrong = intra_fid(gen, y_test, ref, y_train[:20000]), intra_fid(gen, swapped, ref, y_train[:20000])
    assert honest.mean < 0.1 and max(honest.per_class.values()) < 0.1
    assert wrong.per_class[0] > 10 * honest.per_class[0] and wrong.per_class[6] > 10 * honest.per_class[6]
    assert wrong.per_class[3] == honest.per_class[3]


def test_score_records_per_class_values(fashion_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    from geneval.datasets import open_dataset

    x, y, _ = open_dataset("fashion-mnist", "test")
    x = np.ascontiguousarray(x[:, :, ::2, ::2])  # 14×14: 196 pixel features keep the ten FIDs fast
    gen = {"x": x[:2000:2].copy(), "y": y[:2000:2].copy()}
    np.savez(tmp_path / "gen.npz", **gen)
    np.savez(tmp_path / "ref.npz", x=x[1:2000:2], y=y[1:2000:2])
    record = score(str(tmp_path / "gen.npz"), str(tmp_path / "ref.npz"), metrics=("intra_fid",), features="pixels",
                   progress=False)
    data = json.loads(record.to_json())["results"][0]
    assert set(data["details"]["per_class"]) == {str(c) for c in range(10)}
    assert data["value"] == pytest.approx(np.mean(list(data["details"]["per_class"].values())))
    assert any("N=" in w and "class-" in w for w in record.warnings)  # 100 per class ≤ 196 pixels: biased, said so
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, x=gen["x"])
    with pytest.raises(GenevalInputError, match="needs class labels for the generated samples"):
        score(str(unlabelled), str(tmp_path / "ref.npz"), metrics=("intra_fid",), features="pixels", progress=False)


@pytest.mark.slow
def test_fashion_mnist_with_the_domain_network(fashion_mnist_dir):
    if not (WEIGHTS_DIR / "fashion-mnist-cnn.pt").is_file():
        pytest.skip("fashion-mnist-cnn weights are not shipped yet (geneval/weights/fashion-mnist-cnn.pt)")
    from geneval.datasets import open_dataset
    from geneval.extract import extract_features
    from geneval.features.domain import build
    from geneval.sources import open_source

    net = build("fashion-mnist-cnn")
    x_train, y_train, _ = open_dataset("fashion-mnist", "train")
    x_test, y_test, _ = open_dataset("fashion-mnist", "test")
    features = lambda x: extract_features(open_source(x), net, ("embedding",), batch_size=500,
                                          progress=False).features["embedding"]
    ref, gen = features(x_train[:10000]), features(x_test[:5000])
    honest = intra_fid(gen, y_test[:5000], ref, y_train[:10000])
    swapped = np.where(y_test[:5000] == 0, 6, np.where(y_test[:5000] == 6, 0, y_test[:5000]))
    wrong = intra_fid(gen, swapped, ref, y_train[:10000])
    assert wrong.per_class[0] > 3 * honest.per_class[0] and wrong.mean > 1.2 * honest.mean
