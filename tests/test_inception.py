"""The FID-Inception extractor against its references, on a fake (random, BN-calibrated) state dict.

The same weights file is loaded into geneval, pytorch-fid's InceptionV3 and torch-fidelity's extractor, and
features of real CIFAR-10 images (32×32, upsampled to 299² by each tool's own resize) are compared.

Tolerances: geneval runs channels_last with BatchNorm folded into the convolutions, so its float32 sums are
ordered differently from the peers'. On these weights the float32 error of *any* implementation, the peers
included, is ~1e-5 relative to a float64 evaluation (checked below), so two float32 implementations agree to
~1.5e-5 (relative Frobenius norm of the difference); the tolerances leave 3× room over that.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geneval.errors import GenevalInputError
from geneval.features import EXTRACTORS
from geneval.features.inception import FIDInceptionV3, LAYERS, build, preprocess
from geneval.features.tf_resize import resize_bilinear_tf1
from geneval.weights import file_sha256

NUM_IMAGES = 16
REL_NORM_TOL = 5e-5  # ‖ours − theirs‖ / ‖theirs‖ over a whole feature matrix
MAX_ABS_TOL = 5e-5  # max |ours − theirs| / max |theirs|


def diffs(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """(relative Frobenius norm of the difference, max abs difference relative to the largest value)."""
    ours, theirs = ours.double(), theirs.double()
    rel_norm = float((ours - theirs).norm() / theirs.norm())
    max_abs = float((ours - theirs).abs().max() / theirs.abs().max())
    return rel_norm, max_abs


def assert_close(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape, name
    rel_norm, max_abs = diffs(ours, theirs)
    print(f"{name}: relative norm diff {rel_norm:.2e}, max abs diff / max {max_abs:.2e}")
    assert rel_norm <= REL_NORM_TOL and max_abs <= MAX_ABS_TOL, f"{name}: {rel_norm:.2e}, {max_abs:.2e}"


@pytest.fixture(scope="module")
def cifar_images(cifar10_npz) -> torch.Tensor:
    with np.load(cifar10_npz) as data:
        images = data["x_test"][:NUM_IMAGES]
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


@pytest.fixture(scope="module")
def geneval_tf(fake_inception_weights):
    return build(weights=str(fake_inception_weights))


@pytest.fixture(scope="module")
def fidelity_features(fake_inception_weights, cifar_images) -> dict[str, torch.Tensor]:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    names = ("64", "192", "768", "2048", "logits_unbiased", "logits")
    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat", list(names), feature_extractor_weights_path=str(fake_inception_weights)
    )
    with torch.inference_mode():
        return dict(zip(names, extractor(cifar_images)))


@pytest.fixture(scope="module")
def torch_home_with_weights(fake_inception_weights, tmp_path_factory):
    """A TORCH_HOME whose hub checkpoint folder holds our file under the official name: pytorch-fid's own
    ``load_state_dict_from_url`` finds it there and runs unchanged, without fetching anything."""
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth").symlink_to(fake_inception_weights)
    return home


def pytorch_fid_model(torch_home, *, whole_network: bool = False):
    """pytorch-fid's InceptionV3 (block 3 = pool3), or its bare ``fid_inception_v3()``, loading our file."""
    import pytorch_fid.inception as pfi

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        if whole_network:
            return pfi.fid_inception_v3()
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def test_registered():
    assert EXTRACTORS.get("inception-v3-fid") is build


def test_state_dict_keys_are_the_official_ones(fake_inception_weights, torch_home_with_weights):
    """One file must load into all three: the keys of pytorch-fid's model and torch-fidelity's are ours."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ours = list(FIDInceptionV3().state_dict())
    assert list(torch.load(fake_inception_weights, weights_only=True)) == ours
    assert list(pytorch_fid_model(torch_home_with_weights).blocks.state_dict()) != []  # it loaded (strict)
    assert list(pytorch_fid_model(torch_home_with_weights, whole_network=True).state_dict()) == ours
    fidelity = FeatureExtractorInceptionV3("x", ["2048"], feature_extractor_weights_path=str(fake_inception_weights))
    assert list(fidelity.state_dict()) == ours


def test_info(geneval_tf, fake_inception_weights):
    info = geneval_tf.info
    assert (info.name, info.mode) == ("inception-v3-fid", "tf")
    assert info.weights_sha256 == file_sha256(fake_inception_weights)
    assert info.layers == {"64": 64, "192": 192, "768": 768, "spatial": 2023, "pool3": 2048, "logits_unbiased": 1008,
                           "logits": 1008}
    assert info.default_layers == {"fid": "pool3", "kid": "pool3", "is": "logits_unbiased", "prdc": "pool3",
                                   "sfid": "spatial"}
    assert geneval_tf.default_layer("is") == "logits_unbiased"


def test_tf_preprocessing_is_bit_exact_with_torch_fidelity(cifar_images):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    theirs = interpolate_bilinear_2d_like_tensorflow1x(cifar_images.float(), size=(299, 299), align_corners=False)
    assert torch.equal(preprocess(cifar_images, "tf"), (theirs - 128) / 128)


def test_pytorch_fid_preprocessing_is_bit_exact(cifar_images):
    from torchvision.transforms.functional import to_tensor

    # pytorch-fid: ToTensor on each HWC uint8 image, then InceptionV3.forward's resize and 2x − 1
    theirs = torch.stack([to_tensor(image.permute(1, 2, 0).numpy()) for image in cifar_images])
    theirs = 2 * F.interpolate(theirs, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert torch.equal(preprocess(cifar_images, "pytorch-fid"), theirs)


def test_tf_mode_matches_torch_fidelity(geneval_tf, cifar_images, fidelity_features):
    ours = geneval_tf.features(cifar_images, tuple(LAYERS))
    for layer, theirs in (("pool3", "2048"), ("logits_unbiased", "logits_unbiased"), ("logits", "logits"),
                          ("64", "64"), ("192", "192"), ("768", "768")):
        assert ours[layer].dtype == torch.float32
        assert_close(f"tf {layer} vs torch-fidelity {theirs}", ours[layer], fidelity_features[theirs])


def test_pytorch_fid_mode_matches_pytorch_fid(fake_inception_weights, torch_home_with_weights, cifar_images):
    model = pytorch_fid_model(torch_home_with_weights)
    with torch.inference_mode():
        theirs = model(cifar_images.float() / 255)[0].squeeze(-1).squeeze(-1)
    extractor = build(mode="pytorch-fid", weights=str(fake_inception_weights))
    assert extractor.info.mode == "pytorch-fid"
    assert_close("pytorch-fid pool3 vs pytorch-fid", extractor.features(cifar_images, ("pool3",))["pool3"], theirs)


def test_float32_error_is_that_of_the_reference(geneval_tf, cifar_images, fidelity_features, fake_inception_weights):
    """Against a float64 evaluation, our float32 pool3 is about as accurate as torch-fidelity's."""
    images = cifar_images[:4]
    exact = FIDInceptionV3()
    exact.load_state_dict(torch.load(fake_inception_weights, weights_only=True))
    with torch.inference_mode():
        truth = exact.double().eval()(preprocess(images, "tf").double(), ("pool3",))["pool3"]
    ours, _ = diffs(geneval_tf.features(images, ("pool3",))["pool3"], truth)
    theirs, _ = diffs(fidelity_features["2048"][:4], truth)
    print(f"float32 vs float64 pool3, relative norm: geneval {ours:.2e}, torch-fidelity {theirs:.2e}")
    assert ours <= 2 * theirs + 1e-6


def test_batch_size_independence(geneval_tf, cifar_images):
    """Batches of 16 vs 3 + 3 + 3 + 3 + 3 + 1: the same features to 1e-5."""
    whole = geneval_tf.features(cifar_images, ("pool3", "logits_unbiased"))
    for size in (3,):
        parts = [geneval_tf.features(cifar_images[i : i + size], ("pool3", "logits_unbiased"))
                 for i in range(0, len(cifar_images), size)]
        for layer in whole:
            joined = torch.cat([part[layer] for part in parts])
            rel_norm, max_abs = diffs(joined, whole[layer])
            print(f"batch size {size} vs {len(cifar_images)}, {layer}: {rel_norm:.2e}, {max_abs:.2e}")
            assert rel_norm <= 1e-5 and max_abs <= 1e-5


def test_grayscale_is_repeated_to_rgb(geneval_tf, cifar_images):
    gray = cifar_images[:2, :1]
    ours = geneval_tf.features(gray, ("pool3",))["pool3"]
    assert torch.equal(ours, geneval_tf.features(gray.repeat(1, 3, 1, 1), ("pool3",))["pool3"])


def test_layer_subsets_and_order(geneval_tf, cifar_images):
    images = cifar_images[:2]
    full = geneval_tf.features(images, ("logits", "pool3", "64"))
    assert list(full) == ["logits", "pool3", "64"]
    assert torch.equal(geneval_tf.features(images, ("64",))["64"], full["64"])  # stops early, same values
    assert full["pool3"].shape == (2, 2048) and full["logits"].shape == (2, 1008)


def test_bad_inputs_are_named(geneval_tf, fake_inception_weights):
    with pytest.raises(GenevalInputError, match="unknown"):
        geneval_tf.features(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ("pool4",))
    with pytest.raises(GenevalInputError, match="uint8"):
        geneval_tf.features(torch.zeros(1, 3, 8, 8), ("pool3",))
    with pytest.raises(GenevalInputError, match="'clean'"):
        build(mode="clean", weights=str(fake_inception_weights))


# --- the TF1 resize on its own ---------------------------------------------------------------------------


def test_tf_resize_hand_computed():
    """2×2 → 4×4: TF1 samples src = dst · ½ (no half-pixel centres) and clamps the upper neighbour."""
    image = torch.tensor([[0.0, 10.0], [20.0, 30.0]]).view(1, 1, 2, 2)
    expected = torch.tensor([
        [0.0, 5.0, 10.0, 10.0],
        [10.0, 15.0, 20.0, 20.0],
        [20.0, 25.0, 30.0, 30.0],
        [20.0, 25.0, 30.0, 30.0],
    ])
    assert torch.equal(resize_bilinear_tf1(image, (4, 4))[0, 0], expected)
    # 3 → 2 samples source columns 0 and 1.5; PyTorch's half-pixel resize would sample 0.25 and 1.75
    row = torch.tensor([0.0, 6.0, 12.0]).view(1, 1, 1, 3)
    assert resize_bilinear_tf1(row, (1, 2)).flatten().tolist() == [0.0, 9.0]


@pytest.mark.parametrize("size", [(32, 32), (28, 28), (7, 300), (299, 299), (512, 411)])
def test_tf_resize_matches_torch_fidelity(size):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    images = torch.randint(0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(0)).float()
    theirs = interpolate_bilinear_2d_like_tensorflow1x(images, size=(299, 299), align_corners=False)
    assert torch.equal(resize_bilinear_tf1(images, (299, 299)), theirs)
