"""pool3 feature throughput of the FID Inception network: geneval vs pytorch-fid vs torch-fidelity, on CPU.

    python benchmarks/bench_inception_throughput.py [--num 64] [--batch-size 32] [--rounds 3] [--weights PATH]

All three load the *same* state-dict file (``--weights``; default: the tests' calibrated fake with the
official keys, built on the fly, because the official file cannot be downloaded here) and see the same
uint8 CIFAR-10 images (``../shared/datasets/cifar10.npz``; synthetic images when absent), upsampled to 299².
Each implementation runs in a process of its own, as a user's would, with torch's default thread count,
and is called as its own pipeline calls it:

- geneval: ``InceptionFeatureExtractor.features(uint8, ("pool3",))`` (tf mode and pytorch-fid mode);
- torch-fidelity: ``FeatureExtractorInceptionV3`` on uint8 (TF1 resize inside);
- pytorch-fid: ``InceptionV3([3])`` on float [0, 1] (``F.interpolate`` inside).

Separate processes matter because geneval tunes glibc malloc in its own process (geneval/features/
allocator.py); in a shared process the peers would silently inherit that. To separate the lever, the peers
also run a second time in processes given the same tuning ("[tuned malloc]"), and both ratios are printed.
Only one process computes at a time. Rounds interleave the implementations (g, tf, pf, g, tf, pf, ...) so
that a load change on a shared machine hits all of them alike; the median round is reported. It also checks that pool3 features agree with the
matching peer (tf ↔ torch-fidelity, pytorch-fid ↔ pytorch-fid) and prints the largest relative difference.
One JSON line on stdout; the target is geneval ≥ 2.5× the faster peer.

Roofline: the network costs a fixed number of multiply-adds per image (counted here from the module
shapes), so images/s × FLOPs/image is each implementation's arithmetic rate. The script also times this
CPU's fastest case, one large 3×3 convolution of the network (Conv2d_4a at batch 32) through the same oneDNN
call geneval uses, in a fresh process, and prints what fraction of it geneval sustains over the whole
network and the ratio that would be reached at 100% of it ("ceiling_ratio_vs_faster_peer"): how far a
float32 implementation can lead the peers on this CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
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


def build(name: str, weights: Path):
    """One implementation, called as its own pipeline calls it: uint8 batch → pool3 features."""
    if name.startswith("geneval"):
        from geneval.features.inception import build as build_geneval

        mode = "tf" if name == "geneval (tf)" else "pytorch-fid"
        ours = build_geneval(mode=mode, weights=str(weights), progress=False)
        return lambda x: ours.features(x, ("pool3",))["pool3"]
    if name.startswith("torch-fidelity"):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        fidelity = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
        return lambda x: fidelity(x)[0]
    from pytorch_fid.inception import InceptionV3

    # pytorch-fid loads its weights from torch.hub's checkpoint folder: point TORCH_HOME at a copy there.
    home = Path(tempfile.mkdtemp(prefix="bench_torch_home_"))
    (home / "hub" / "checkpoints").mkdir(parents=True)
    os.symlink(weights.resolve(), home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
    os.environ["TORCH_HOME"] = str(home)
    pytorch_fid = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    return lambda x: pytorch_fid(x.float() / 255)[0].flatten(1)


def worker(name: str, weights: Path, tuned_malloc: bool, images: np.ndarray, batch_size: int, conn) -> None:
    """A process of its own per implementation, like a user's: timed on request, features sent back."""
    if tuned_malloc and not name.startswith("geneval"):  # geneval tunes its own process when it builds
        from geneval.features.allocator import keep_freed_memory_for_reuse

        keep_freed_memory_for_reuse()
    fn = build(name, weights)
    batches = torch.split(torch.from_numpy(images), batch_size)
    run(fn, batches[:1])  # warm-up: oneDNN chooses kernels on first use
    conn.send("ready")
    while conn.recv() == "run":
        elapsed, features = run(fn, batches)
        conn.send((elapsed, features.double().numpy()))


def network_gmacs_per_image() -> float:
    """Multiply-adds of one 299² image up to pool3, from the conv shapes (fc excluded: pool3 does not use it)."""
    from geneval.features.inception import FIDInceptionV3

    net, total = FIDInceptionV3().eval(), [0]

    def count(module, _inputs, output):
        kh, kw = module.kernel_size
        total[0] += output.numel() * module.in_channels // module.groups * kh * kw

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(count)
    with torch.inference_mode():
        net(torch.zeros(1, 3, 299, 299), ("pool3",))
    return total[0] / 1e9


def conv_peak_worker(batch_size: int, conn) -> None:
    """GFLOP/s of Conv2d_4a (80 → 192, 3×3, 73² → 71², ReLU fused) via oneDNN, best of 5, in its own process."""
    from geneval.features.allocator import keep_freed_memory_for_reuse
    from geneval.features.fusion import conv2d

    keep_freed_memory_for_reuse()
    conv = torch.nn.Conv2d(80, 192, 3).requires_grad_(False)
    x = torch.randn(batch_size, 80, 73, 73).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(6):  # the first call chooses the kernel
            start = time.perf_counter()
            conv2d(conv, x, relu=True)
            best = min(best, time.perf_counter() - start)
    conn.send(2 * batch_size * 71 * 71 * 192 * 80 * 9 / best / 1e9)


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
    images = images_uint8(args.num).numpy()
    # Peers twice: as shipped (default allocator) and with geneval's allocator tuning, to separate that lever.
    impls = [("geneval (tf)", True), ("geneval (pytorch-fid)", True), ("torch-fidelity", False),
             ("pytorch-fid", False), ("torch-fidelity [tuned malloc]", True), ("pytorch-fid [tuned malloc]", True)]
    context = mp.get_context("spawn")
    workers = {}
    for name, tuned in impls:  # started one at a time so that no two processes compete for the cores
        parent, child = context.Pipe()
        process = context.Process(target=worker, args=(name, weights, tuned, images, args.batch_size, child))
        process.start()
        if parent.recv() != "ready":
            raise SystemExit(f"{name}: worker failed to start")
        workers[name] = (process, parent)
    seconds: dict[str, list[float]] = {name: [] for name in workers}
    features: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, (_, conn) in workers.items():
            conn.send("run")
            elapsed, features[name] = conn.recv()
            seconds[name].append(elapsed)
    for process, conn in workers.values():
        conn.send("stop")
        process.join()
    rate = {name: args.num / statistics.median(times) for name, times in seconds.items()}
    parent, child = context.Pipe()
    process = context.Process(target=conv_peak_worker, args=(args.batch_size, child))
    process.start()
    conv_peak = parent.recv()
    process.join()
    gflop_per_image = 2 * network_gmacs_per_image()

    def rel_diff(a: str, b: str) -> float:
        x, y = features[a], features[b]
        return float(np.abs(x - y).max() / np.abs(y).max())

    faster_peer = max(rate["torch-fidelity"], rate["pytorch-fid"])
    faster_tuned_peer = max(rate["torch-fidelity [tuned malloc]"], rate["pytorch-fid [tuned malloc]"])
    print(json.dumps({
        "images_per_s": {k: round(v, 2) for k, v in rate.items()},
        "ratio_vs_faster_peer": round(rate["geneval (tf)"] / faster_peer, 2),
        "ratio_vs_faster_peer_with_tuned_malloc": round(rate["geneval (tf)"] / faster_tuned_peer, 2),
        "ratio_pytorch_fid_mode_vs_pytorch_fid": round(rate["geneval (pytorch-fid)"] / rate["pytorch-fid"], 2),
        "ratio_vs_torch_fidelity": round(rate["geneval (tf)"] / rate["torch-fidelity"], 2),
        "target_ratio": 2.5,
        "roofline": {
            "gflop_per_image": round(gflop_per_image, 3),
            "gflop_per_s": {k: round(v * gflop_per_image, 1) for k, v in rate.items()},
            "conv_gflop_per_s_this_cpu": round(conv_peak, 1),
            "geneval_fraction_of_conv_peak": round(rate["geneval (tf)"] * gflop_per_image / conv_peak, 3),
            "ceiling_ratio_vs_faster_peer": round(conv_peak / gflop_per_image / faster_peer, 2),
        },
        "max_rel_diff_pool3": {"tf vs torch-fidelity": rel_diff("geneval (tf)", "torch-fidelity"),
                               "pytorch-fid mode vs pytorch-fid": rel_diff("geneval (pytorch-fid)", "pytorch-fid")},
        "num_images": args.num, "batch_size": args.batch_size, "rounds": args.rounds,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
