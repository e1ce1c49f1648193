"""pool3 feature throughput of the FID Inception network: geneval vs pytorch-fid vs torch-fidelity, on CPU.

    python benchmarks/bench_inception_throughput.py [--num 64] [--batch-size 32] [--rounds 3] [--weights PATH]

All three load the *same* state-dict file (``--weights``; default: the tests' calibrated fake with the
official keys, built on the fly, because the official file cannot be downloaded here) and see the same
uint8 CIFAR-10 images (``../shared/datasets/cifar10.npz``; synthetic images when absent), upsampled to 299².
Each peer runs its own extractor as its own pipeline calls it, with torch's default thread count:

- geneval: ``InceptionFeatureExtractor.features(uint8, ("pool3",))`` (tf mode and pytorch-fid mode);
- torch-fidelity: ``FeatureExtractorInceptionV3`` on uint8 (TF1 resize inside);
- pytorch-fid: ``InceptionV3([3])`` on float [0, 1] (``F.interpolate`` inside).

Rounds interleave the implementations (g, tf, pf, g, tf, pf, ...) so that a load change on a shared machine
hits all of them alike; the median round is reported. It also checks that pool3 features agree with the
matching peer (tf ↔ torch-fidelity, pytorch-fid ↔ pytorch-fid) and prints the largest relative difference.
One JSON line on stdout; the target is geneval ≥ 2.5× the faster peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def images_uint8(num: int) -> torch.Tensor:
    from conftest import shared_datasets_dir
    from inception_weights import synthetic_images

    path = shared_datasets_dir() / "cifar10.npz"
    if not path.exists():
        return synthetic_images(num)
    with np.load(path) as data:
        return torch.from_numpy(np.ascontiguousarray(data["x_test"][:num].transpose(0, 3, 1, 2)))


def build_all(weights: Path):
    from pytorch_fid.inception import InceptionV3
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from geneval.features.inception import build

    ours_tf = build(mode="tf", weights=str(weights), progress=False)
    ours_pf = build(mode="pytorch-fid", weights=str(weights), progress=False)
    fidelity = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    # pytorch-fid loads its weights from torch.hub's checkpoint folder: point TORCH_HOME at a copy there.
    home = Path(tempfile.mkdtemp(prefix="bench_torch_home_"))
    (home / "hub" / "checkpoints").mkdir(parents=True)
    os.symlink(weights.resolve(), home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
    os.environ["TORCH_HOME"] = str(home)
    pytorch_fid = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    return {
        "geneval (tf)": lambda x: ours_tf.features(x, ("pool3",))["pool3"],
        "geneval (pytorch-fid)": lambda x: ours_pf.features(x, ("pool3",))["pool3"],
        "torch-fidelity": lambda x: fidelity(x)[0],
        "pytorch-fid": lambda x: pytorch_fid(x.float() / 255)[0].flatten(1),
    }


def run(fn, batches) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    with torch.inference_mode():
        out = torch.cat([fn(b) for b in batches])
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=64, help="images per round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", type=Path, default=None, help="state-dict file (default: the tests' fake)")
    args = parser.parse_args()

    weights = args.weights
    if weights is None:
        from inception_weights import fake_inception_state_dict

        weights = fake_inception_state_dict(Path(tempfile.mkdtemp()) / "fake-pt_inception.pth")
    impls = build_all(weights)
    batches = torch.split(images_uint8(args.num), args.batch_size)
    for fn in impls.values():  # warm-up: oneDNN chooses kernels on first use
        run(fn, batches[:1])
    seconds: dict[str, list[float]] = {name: [] for name in impls}
    features: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for name, fn in impls.items():
            elapsed, features[name] = run(fn, batches)
            seconds[name].append(elapsed)
    rate = {name: args.num / statistics.median(times) for name, times in seconds.items()}

    def rel_diff(a: str, b: str) -> float:
        x, y = features[a].double(), features[b].double()
        return float((x - y).abs().max() / y.abs().max())

    faster_peer = max(rate["torch-fidelity"], rate["pytorch-fid"])
    print(json.dumps({
        "images_per_s": {k: round(v, 2) for k, v in rate.items()},
        "ratio_vs_faster_peer": round(rate["geneval (tf)"] / faster_peer, 2),
        "ratio_pytorch_fid_mode_vs_pytorch_fid": round(rate["geneval (pytorch-fid)"] / rate["pytorch-fid"], 2),
        "ratio_vs_torch_fidelity": round(rate["geneval (tf)"] / rate["torch-fidelity"], 2),
        "target_ratio": 2.5,
        "max_rel_diff_pool3": {"tf vs torch-fidelity": rel_diff("geneval (tf)", "torch-fidelity"),
                               "pytorch-fid mode vs pytorch-fid": rel_diff("geneval (pytorch-fid)", "pytorch-fid")},
        "num_images": args.num, "batch_size": args.batch_size, "rounds": args.rounds,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
