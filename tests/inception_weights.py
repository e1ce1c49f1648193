"""A fake FID-Inception state dict for tests and benchmarks (the real one is a 92 MB download).

``fake_inception_state_dict(path)`` writes a state dict with exactly the keys and shapes of pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (so it loads into geneval, pytorch-fid and torch-fidelity alike),
randomly initialised from a fixed seed, with every BatchNorm's running mean/variance calibrated on real
images so that activations neither collapse nor explode and pool3 features differ between images.

Calibration images: 16 CIFAR-10 test images from ``shared_datasets_dir()/cifar10.npz`` when present; if that
file is absent, a deterministic synthetic set (seeded smooth colour fields with edges) is used instead, so
the weights can always be built offline. Either way the result is deterministic for a given torch build.

Calibration runs the network once in training mode with ``momentum=1``: each BatchNorm then records the
batch statistics of its own input, which was already normalised by the layers before it — i.e. the layers
are calibrated one after another in a single pass (~5 s on 2 CPU cores).

Fixture: ``fake_inception_weights`` (session scope) gives the path of one such file per test session (one
per session even under pytest-xdist, built under a file lock). Use it in a test module with
``from inception_weights import fake_inception_weights  # noqa: F401`` or in conftest.py with
``pytest_plugins = ["inception_weights"]``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from geneval.features.inception import BasicConv2d, FIDInceptionV3
from geneval.features.tf_resize import resize_bilinear_tf1

SEED = 20151205
NUM_CALIBRATION_IMAGES = 16
FILENAME = "fake-pt_inception-2015-12-05.pth"
LOGIT_STD = 2.0  # spread of the fake classifier's logits, so that softmax/IS are not trivially uniform


def _datasets_dir() -> Path:
    from conftest import shared_datasets_dir  # tests/ is on sys.path under pytest and in the benchmarks

    return shared_datasets_dir()


def calibration_images(num: int = NUM_CALIBRATION_IMAGES) -> tuple[torch.Tensor, str]:
    """uint8 ``[num, 3, 32, 32]`` images and a word saying where they came from ("cifar10" or "synthetic")."""
    try:
        path = _datasets_dir() / "cifar10.npz"
    except ImportError:
        path = Path(os.environ.get("GENEVAL_SHARED_DATASETS", "/nonexistent")) / "cifar10.npz"
    if path.exists():
        with np.load(path) as data:
            images = data["x_test"][: num * 10 : 10]  # every 10th test image: a mix of classes
        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), "cifar10"
    return synthetic_images(num), "synthetic"


def synthetic_images(num: int, size: int = 32, seed: int = SEED) -> torch.Tensor:
    """Deterministic stand-ins for natural images: smooth random colour fields plus a bright random edge."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num, 3, 4, 4, generator=gen)
    fields = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    angle = torch.rand(num, generator=gen) * 2 * torch.pi
    offset = (torch.rand(num, generator=gen) - 0.5) * size
    side = (xs - size / 2) * angle.cos().view(-1, 1, 1) + (ys - size / 2) * angle.sin().view(-1, 1, 1)
    edge = (side > offset.view(-1, 1, 1)).float().unsqueeze(1) * 0.35
    return ((fields + edge).clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def fake_inception_state_dict(path: str | os.PathLike, *, seed: int = SEED) -> Path:
    """Build the calibrated fake state dict and write it atomically to ``path``; return ``path``."""
    path = Path(path)
    gen = torch.Generator().manual_seed(seed)
    net = FIDInceptionV3()
    for module in net.modules():
        if isinstance(module, BasicConv2d):
            fan_in = module.conv.weight[0].numel()
            module.conv.weight.copy_(torch.randn(module.conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            # gamma near 1 and a slightly positive beta keep most ReLUs alive and channels distinct
            module.bn.weight.copy_(0.8 + 0.4 * torch.rand(module.bn.num_features, generator=gen))
            module.bn.bias.copy_(0.1 + 0.2 * torch.randn(module.bn.num_features, generator=gen))
            module.bn.momentum = 1.0  # running stats := this batch's statistics
    images, _ = calibration_images()
    x = (resize_bilinear_tf1(images.float(), (299, 299)) - 128) / 128
    net.train()
    pool3 = net(x, ("pool3",))["pool3"]
    net.eval()
    for module in net.modules():
        if isinstance(module, BasicConv2d):
            module.bn.momentum = 0.1
            module.bn.num_batches_tracked.zero_()
    centred = pool3 - pool3.mean(0)
    scale = LOGIT_STD / (centred.norm(dim=1).mean() + 1e-12)
    net.fc.weight.copy_(torch.randn(net.fc.weight.shape, generator=gen) * scale)
    net.fc.bias.copy_(0.1 * torch.randn(net.fc.bias.shape, generator=gen))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@pytest.fixture(scope="session")
def fake_inception_weights(tmp_path_factory) -> Path:
    """Path of the session's fake FID-Inception weights (built once, shared by xdist workers)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's directory, shared by all workers
    path = root / FILENAME
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        if not path.exists():
            fake_inception_state_dict(path)
    return path
