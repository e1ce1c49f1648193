"""End-to-end parity: the same images and the same Inception state-dict file through geneval and the peers.

- ``tf`` mode vs torch-fidelity's ``calculate_metrics``: FID and KID to ≤1e-5 relative, IS to ≤5e-3.
- ``pytorch-fid`` mode vs pytorch-fid's ``calculate_fid_given_paths`` on PNG folders: FID to ≤1e-6 relative.

The weights are the tests' own random-initialised file with the official keys and BatchNorm statistics
calibrated on real images (``tests/inception_weights.py``); the official file cannot be downloaded here.
pytorch-fid is given it through torch.hub's checkpoint folder, where it looks before downloading, so its own
code path runs unchanged and nothing is fetched.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from geneval import score

NUM = 40  # per side: enough to exercise every step at 32×32; the slow test uses more


def cifar_sets(path, num):
    with np.load(path) as data:
        x = data["x_train"][: 2 * num].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x[:num]), np.ascontiguousarray(x[num:])


class _Uint8Dataset(torch.utils.data.Dataset):
    """What torch-fidelity takes: a Dataset of uint8 CHW tensors."""

    def __init__(self, images):
        self.images = torch.from_numpy(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def _geneval(gen, ref, weights, mode, **kwargs):
    return score(gen, ref, features="inception-v3-fid", mode=mode, weights=str(weights), use_cache=False,
                 progress=False, **kwargs)


def _check_tf_mode_against_torch_fidelity(gen, ref, weights, *, kid_subset_size, is_splits):
    import torch_fidelity

    ours = _geneval(gen, ref, weights, "tf", metrics=("fid", "kid", "is"), kid_subsets=10,
                    kid_subset_size=kid_subset_size, is_splits=is_splits, is_shuffle_seed=2020, batch_size=16)
    theirs = torch_fidelity.calculate_metrics(
        input1=_Uint8Dataset(gen), input2=_Uint8Dataset(ref), cuda=False, fid=True, kid=True, isc=True,
        kid_subsets=10, kid_subset_size=kid_subset_size, isc_splits=is_splits, samples_shuffle=True, rng_seed=2020,
        feature_extractor_weights_path=str(weights), batch_size=16, cache=False, verbose=False,
    )
    assert ours["fid"].value == pytest.approx(theirs["frechet_inception_distance"], rel=1e-5)
    assert ours["kid"].value == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5)
    assert ours["is"].value == pytest.approx(theirs["inception_score_mean"], rel=5e-3)
    return ours, theirs


def test_tf_mode_matches_torch_fidelity(fake_inception_weights, cifar10_npz):
    gen, ref = cifar_sets(cifar10_npz, NUM)
    _check_tf_mode_against_torch_fidelity(gen, ref, fake_inception_weights, kid_subset_size=20, is_splits=4)


def _write_pngs(folder, images):
    folder.mkdir()
    for i, image in enumerate(images.transpose(0, 2, 3, 1)):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return folder


def _check_pytorch_fid_mode(gen, ref, weights, tmp_path, monkeypatch):
    from pytorch_fid.fid_score import calculate_fid_given_paths

    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(weights, checkpoints / "pt_inception-2015-12-05-6726825d.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    theirs = calculate_fid_given_paths(
        [str(_write_pngs(tmp_path / "gen", gen)), str(_write_pngs(tmp_path / "ref", ref))],
        batch_size=16, device="cpu", dims=2048, num_workers=0,
    )
    ours = _geneval(gen, ref, weights, "pytorch-fid", metrics=("fid",), batch_size=16)
    assert ours["fid"].value == pytest.approx(theirs, rel=1e-6)
    return ours["fid"].value, theirs


@pytest.fixture
def two_threads():
    """oneDNN picks different convolution algorithms (different float32 summation orders) for one thread and
    two. At N = 40 < D = 2048 the covariances are singular and FID amplifies those ~1e-7 feature differences:
    with both tools on two threads (torch's default here) they agree within 1e-6; with one thread each, 1.2e-6.
    Known gap (see the issue note): the 1e-6 criterion holds at the default thread count only."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")
def test_pytorch_fid_mode_matches_pytorch_fid(fake_inception_weights, cifar10_npz, tmp_path, monkeypatch,
                                              two_threads):
    gen, ref = cifar_sets(cifar10_npz, NUM)
    _check_pytorch_fid_mode(gen, ref, fake_inception_weights, tmp_path, monkeypatch)


def test_inception_fid_is_independent_of_batch_size_and_zero_on_itself(fake_inception_weights, cifar10_npz):
    gen, ref = cifar_sets(cifar10_npz, NUM)
    small = _geneval(gen, ref, fake_inception_weights, "tf", metrics=("fid",), batch_size=7)
    large = _geneval(gen, ref, fake_inception_weights, "tf", metrics=("fid",), batch_size=40)
    assert small["fid"].value == pytest.approx(large["fid"].value, rel=1e-5)
    same = _geneval(gen, gen, fake_inception_weights, "tf", metrics=("fid",), batch_size=16)
    assert abs(same["fid"].value) < 1e-6


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")
def test_parity_on_more_images(fake_inception_weights, cifar10_npz, tmp_path, monkeypatch):
    gen, ref = cifar_sets(cifar10_npz, 500)
    _check_tf_mode_against_torch_fidelity(gen, ref, fake_inception_weights, kid_subset_size=200, is_splits=10)
    _check_pytorch_fid_mode(gen, ref, fake_inception_weights, tmp_path, monkeypatch)
