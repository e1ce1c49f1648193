"""sFID: FID on the first 7 channels of Inception's ``mixed_6/conv`` (guided-diffusion's ``evaluator.py``).

On the calibrated fake FID-Inception weights (``inception_weights.py``): the ``spatial`` layer is the ReLU output
of Mixed_6d's 1×1 branch, channels 0–6, flattened in TF's NHWC order (guided-diffusion slices ``[..., :7]`` of the
NHWC tensor and reshapes row-major); ``sfid`` equals FID computed by hand on those activations; and scoring FID and
sFID together runs one forward pass per image batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geneval import score
from geneval.features.inception import FIDInceptionV3, build, preprocess
from geneval.metrics import METRICS, frechet_distance
from inception_weights import fake_inception_weights  # noqa: F401  (fixture)

NUM = 24


@pytest.fixture(scope="module")
def cifar_pair(cifar10_npz) -> tuple[np.ndarray, np.ndarray]:
    with np.load(cifar10_npz) as data:
        images = np.ascontiguousarray(data["x_test"][: 2 * NUM].transpose(0, 3, 1, 2))
    return images[:NUM], images[NUM:]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))


def hand_spatial(extractor, images: np.ndarray) -> np.ndarray:
    """Mixed_6d's 1×1 branch (after its ReLU) caught by a hook, sliced and flattened as guided-diffusion does."""
    caught = []
    hook = extractor.net.Mixed_6d.fused.register_forward_hook(lambda module, args, out: caught.append(out[0]))
    try:
        extractor.features(torch.from_numpy(images), ("pool3",))
    finally:
        hook.remove()
    nhwc = caught[0].permute(0, 2, 3, 1).numpy()  # [B, 17, 17, 192], as TF's mixed_6/conv:0
    return nhwc[..., :7].reshape(len(images), -1)


def test_registered_on_the_sfid_role():
    spec = METRICS.get("sfid")
    assert spec.role == "sfid" and not spec.higher_is_better and not spec.reference_needs_features


def test_spatial_layer_is_mixed_6d_branch1x1_nhwc(fake_inception_weights, cifar_pair):
    extractor = build(weights=str(fake_inception_weights))
    gen, _ = cifar_pair
    ours = extractor.features(torch.from_numpy(gen), ("spatial",))["spatial"].numpy()
    assert ours.shape == (NUM, 2023)
    np.testing.assert_array_equal(ours, hand_spatial(extractor, gen))
    # The same activations from the unfused reference path (BatchNorm separate, every branch its own conv).
    net = FIDInceptionV3()
    net.load_state_dict(torch.load(fake_inception_weights, weights_only=True))
    caught = []
    net.eval().Mixed_6d.branch1x1.register_forward_hook(lambda module, args, out: caught.append(out))
    with torch.inference_mode():
        net(preprocess(torch.from_numpy(gen), "tf"), ("768",))
    reference = caught[0][:, :7].permute(0, 2, 3, 1).reshape(NUM, -1).numpy()
    rel = np.linalg.norm(ours - reference) / np.linalg.norm(reference)
    print(f"spatial vs unfused reference path: relative norm diff {rel:.2e}")
    assert rel < 5e-5 and (ours > 0).mean() > 0.1  # calibrated: ReLUs alive, channels not collapsed


def test_sfid_is_fid_on_the_hand_extracted_activations(fake_inception_weights, cifar_pair):
    gen, ref = cifar_pair
    record = score(gen, ref, metrics=("fid", "sfid"), features="inception-v3-fid", weights=str(fake_inception_weights),
                   use_cache=False, progress=False)
    extractor = build(weights=str(fake_inception_weights))
    x, y = hand_spatial(extractor, gen).astype(np.float64), hand_spatial(extractor, ref).astype(np.float64)
    by_hand = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    print(f"sFID {record['sfid'].value:.10g}, by hand {by_hand:.10g}, FID {record['fid'].value:.6g}")
    assert record["sfid"].value == pytest.approx(by_hand, rel=1e-9)
    assert record["sfid"].layer == "spatial" and record["fid"].layer == "pool3"
    assert record["sfid"].value != pytest.approx(record["fid"].value, rel=1e-3)


def test_fid_and_sfid_share_one_forward_pass_per_batch(fake_inception_weights, cifar_pair, tmp_path, monkeypatch):
    from geneval.cli import main

    calls = []
    original = FIDInceptionV3.forward

    def counting(self, x, layers):
        calls.append((len(x), tuple(layers)))
        return original(self, x, layers)

    monkeypatch.setattr(FIDInceptionV3, "forward", counting)
    gen, ref = cifar_pair
    np.savez(tmp_path / "gen.npz", x=gen.transpose(0, 2, 3, 1))
    np.savez(tmp_path / "ref.npz", x=ref.transpose(0, 2, 3, 1))
    batch = 10
    result = CliRunner().invoke(main, [
        "score", str(tmp_path / "gen.npz"), "--ref", str(tmp_path / "ref.npz"), "--metrics", "fid,sfid",
        "--weights", str(fake_inception_weights), "--batch-size", str(batch), "--no-cache", "-q", "--json",
    ])
    assert result.exit_code == 0, result.output
    batches_per_side = -(-NUM // batch)
    assert len(calls) == 2 * batches_per_side, calls  # generated + reference, one pass per batch
    assert all(set(layers) == {"pool3", "spatial"} for _, layers in calls)
    assert sum(size for size, _ in calls) == 2 * NUM
