"""The post-FID metrics on the quickstart's degraded Fashion-MNIST sets: do they move the way they should?

    python benchmarks/post_fid_degradations.py --num 2000 --out docs/metrics/post_fid_degradations.md
    # the metrics of pretrained extractors (their weights: a local file or the checked download)
    python benchmarks/post_fid_degradations.py --features inception --metrics fid,sfid --out docs/metrics/degr_inception.md
    python benchmarks/post_fid_degradations.py --features dinov2-vit-l14 --metrics fid   # FD-DINOv2
    python benchmarks/post_fid_degradations.py --features clip-vit-l14-336 --metrics cmmd

Samples: the first ``--num`` test images and the quickstart's degraded copies of them (``geneval.quickstart``:
noise, blur, a dropped class, one class only). Reference (FLD's train set): the first 10,000 training images; FLD's
held-out real set: training images 50,000–59,999 (never in the reference). Features: ``--features`` (default
``fashion-mnist-cnn``, the only extractor whose weights are shipped). What
each metric should do as a set moves away from the data: FID up; PRD F8 (recall) and F1/8 (precision) down;
authenticity (the fraction of samples that are not copies) up for noisy/blurred sets, which copy nothing; rarity
(the smallest real ball holding a sample) up for samples off the data; Vendi (effective number of modes) down when
classes collapse; FLD (the held-out set's likelihood under a KDE on the samples, against a KDE on training images)
up. 3 of the 256 ReLU features are constant over the held-out images; FLD leaves them out (and warns).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

METRICS = ("fid", "prd_f8", "prd_f1_8", "authenticity", "rarity", "vendi", "fld")


def main() -> None:
    from geneval.atomic import write_text_atomic
    from geneval.datasets import open_dataset
    from geneval.evaluate import ScoreOptions, score
    from geneval.quickstart import conditions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--out", default=None)
    parser.add_argument("--features", default="fashion-mnist-cnn", help="extractor (geneval features)")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated metric names")
    args = parser.parse_args()
    from geneval.metrics.base import METRICS as REGISTRY

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    specs = {m: REGISTRY.get(m) for m in metrics}  # an unknown name fails here, before any work
    images, labels, info = open_dataset("fashion-mnist", "test")
    images, labels = images[:args.num], labels[:args.num]
    train, _, _ = open_dataset("fashion-mnist", "train")
    with tempfile.TemporaryDirectory() as tmp:
        heldout = Path(tmp) / "heldout.npz"
        np.savez(heldout, x=train[50000:60000])
        options = ScoreOptions.create(metrics=metrics, features=args.features, num_ref=10000,
                                      heldout=str(heldout), progress=False)
        rows, warnings = [], set()
        for condition in conditions(info["classes"]):
            samples = condition.make(images, labels)
            record = score(samples, "fashion-mnist:train", options=options)
            rows.append((condition.name, len(samples), {m: record[m].value for m in metrics}))
            warnings.update(w for w in record.warnings if w.startswith("fld:"))
            print(condition.name, {m: round(v, 4) for m, v in rows[-1][2].items()}, flush=True)
    undirected = {"rarity", "vendi"}  # rarer or more diverse is not better fidelity: no arrow
    header = ["samples (vs fashion-mnist:train[:10000])", "N"] + [
        spec.label + ("" if m in undirected else " ↑" if spec.higher_is_better else " ↓") for m, spec in specs.items()]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, n, values in rows:
        lines.append(f"| {name} | {n} | " + " | ".join(f"{values[m]:.4g}" for m in metrics) + " |")
    table = "\n".join(lines) + "\n" + "".join(f"\n{w}\n" for w in sorted(warnings))
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        command = f"python benchmarks/post_fid_degradations.py --num {args.num} --out {args.out}" + (
            f" --features {args.features}" if args.features != "fashion-mnist-cnn" else "") + (
            f" --metrics {args.metrics}" if metrics != METRICS else "")
        write_text_atomic(Path(args.out), f"# Post-FID metrics on degraded Fashion-MNIST ({args.features} features)\n\n"
                          f"`{command}`\n\n" + table)


if __name__ == "__main__":
    main()
