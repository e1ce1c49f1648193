"""Mode counting on stacked-MNIST and class-histogram KL: closed forms, the true labels as a constructed case, the
stacked extractor's joint argmax, and the end-to-end protocol with mnist-cnn (skipped until its weights ship)."""

import numpy as np
import pytest
import torch

from geneval import class_histogram_kl, count_modes, stacked_modes
from geneval.errors import GenevalInputError
from geneval.features.domain import NETS, WEIGHTS_DIR, DomainExtractor
from geneval.features.stacked import StackedMnistExtractor


def test_closed_forms():
    uniform = count_modes(np.repeat(np.arange(1000), 3))
    assert uniform.covered == 1000 and uniform.kl_uniform == pytest.approx(0.0, abs=1e-12)
    ten = count_modes(np.repeat(np.arange(0, 1000, 100), 5))
    assert ten.covered == 10 and ten.kl_uniform == pytest.approx(np.log(100), rel=1e-12)
    assert count_modes(np.zeros(7, np.int64)).kl_uniform == pytest.approx(np.log(1000), rel=1e-12)
    assert np.array_equal(stacked_modes(np.array([[1, 2, 3], [9, 0, 9]])), [123, 909])
    # KL(p‖q) for p = (1/2, 1/2, 0), q = (1/4, 1/4, 1/2): log 2.
    assert class_histogram_kl([0, 1], [0, 1, 2, 2], num_classes=3) == pytest.approx(np.log(2), rel=1e-12)
    assert class_histogram_kl([2], [0, 1], num_classes=3) == np.inf


def test_real_stacked_mnist_labels_cover_all_modes_and_ten_digits_worth_is_reported(mnist_npz):
    from geneval.datasets import open_dataset

    _, labels, _ = open_dataset("stacked-mnist", "test")
    real = count_modes(labels)
    assert real.covered >= 995 and real.kl_uniform < 0.1  # 10,000 samples: ≈ 999.95 expected, KL ≈ 0.05
    # A generator that only ever produces 10 of the 1000 modes (d1 = d2 = 0, any d0): "10 digits' worth".
    collapsed = labels[labels % 100 == 0]
    result = count_modes(collapsed)
    assert result.covered == 10
    assert result.kl_uniform == pytest.approx(np.log(100), abs=0.05)  # log(1000/10), up to the digits' imbalance


def _random_stacked_extractor():
    torch.manual_seed(0)
    net = NETS["mnist-cnn"].build().eval()
    return StackedMnistExtractor(DomainExtractor(NETS["mnist-cnn"], net, "untrained"))


def test_stacked_extractor_joint_argmax_is_the_per_channel_argmaxes():
    extractor = _random_stacked_extractor()
    images = torch.randint(0, 256, (16, 3, 28, 28), dtype=torch.uint8)
    out = extractor.features(images, ("logits", "channel_logits", "embedding"))
    digits = out["channel_logits"].reshape(16, 3, 10).argmax(dim=2).numpy()
    assert np.array_equal(out["logits"].argmax(dim=1).numpy(), stacked_modes(digits))
    assert out["embedding"].shape == (16, 768)
    with pytest.raises(GenevalInputError, match=r"expected \[B, 3, 28, 28\]"):
        extractor.features(images[:, :1], ("logits",))


def test_errors():
    with pytest.raises(GenevalInputError, match="values range over 0..1000; expected 0..999"):
        count_modes(np.array([0, 1000]))
    with pytest.raises(GenevalInputError, match=r"expected \[N, 3\] integers 0–9"):
        stacked_modes(np.array([[1, 2, 10]]))
    with pytest.raises(GenevalInputError, match="non-empty 1-D integer array"):
        count_modes(np.array([0.5]))


def test_stacked_mnist_end_to_end_with_mnist_cnn(mnist_npz, tmp_path, monkeypatch):
    if not (WEIGHTS_DIR / "mnist-cnn.pt").is_file():
        pytest.skip("mnist-cnn weights are not shipped yet (geneval/weights/mnist-cnn.pt is being trained)")
    from geneval import score

    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    record = score("stacked-mnist:test", None, metrics=("modes", "modes_kl"), features="stacked-mnist-cnn",
                   batch_size=500, progress=False)
    assert record["modes"].value >= 990 and record["modes_kl"].value < 0.15


def test_class_histogram_through_score_with_a_domain_classifier(fashion_mnist_dir, tmp_path, monkeypatch):
    if not (WEIGHTS_DIR / "fashion-mnist-cnn.pt").is_file():
        pytest.skip("fashion-mnist-cnn weights are not shipped yet (geneval/weights/fashion-mnist-cnn.pt)")
    from geneval import score
    from geneval.datasets import open_dataset

    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    x, y, _ = open_dataset("fashion-mnist", "test")
    opts = {"metrics": ("modes", "modes_kl", "class_kl"), "features": "fashion-mnist-cnn", "batch_size": 500,
            "progress": False}
    honest = score(x[:1000], x[1000:3000], **opts)
    assert honest["modes"].value == 10 and honest["class_kl"].value < 0.02 and honest["modes_kl"].value < 0.02
    only_shoes = x[:3000][np.isin(y[:3000], (5, 7, 9))][:600]  # sandals, sneakers, ankle boots
    collapsed = score(only_shoes, x[1000:3000], **opts)
    assert collapsed["modes"].value <= 4 and collapsed["class_kl"].value > 0.9  # ≈ log(10/3) = 1.2


def test_an_extractor_without_class_logits_is_a_one_line_error():
    from geneval import score

    with pytest.raises(GenevalInputError, match="extractor 'pixels' has no default layer for metric 'modes'"):
        score(np.zeros((10, 1, 4, 4), np.uint8), None, metrics=("modes",), features="pixels", progress=False)
