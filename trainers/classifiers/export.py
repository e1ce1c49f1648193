"""Export a finished classifier run to the shipped weights ``geneval/weights/<name>.pt`` + ``<name>.json``.

    python -m trainers.classifiers.export --run runs/classifiers/fashion-mnist --name fashion-mnist-cnn

The ``.pt`` is the model's state dict alone (loadable with ``torch.load(weights_only=True)``). The test accuracy
in the ``.json`` is measured on the real test split through the geneval extractor that will load the file, so
it is the number a user gets. Refuses a run that has not finished or misses its target accuracy (unless
``--force``). Both files are written to temporary names and moved into place with ``os.replace``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import logging
import os
import sys
from pathlib import Path

import torch

from geneval.datasets import open_dataset
from geneval.features.domain import NETS, WEIGHTS_DIR, build
from trainers.classifiers.models import RECIPES
from trainers.common.checkpoint import load_checkpoint


def test_accuracy(name: str, weights: Path, batch_size: int = 1000) -> tuple[float, dict]:
    """Top-1 accuracy of the extractor ``name`` loaded from ``weights`` on its dataset's test split."""
    extractor = build(name, weights=weights)
    images, labels, info = open_dataset(NETS[name].dataset, "test")
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = extractor.features(torch.tensor(images[start:start + batch_size]), ("logits",))["logits"]
        correct += int((logits.argmax(1).numpy() == labels[start:start + batch_size]).sum())
    return correct / len(images), info


def export(run: Path, name: str, *, force: bool = False, out_dir: Path = WEIGHTS_DIR) -> dict:
    from trainers.classifiers.train import epoch_history

    record_path, ckpt_path = run / "record.json", run / "checkpoint.pt"
    if not record_path.is_file() and not force:
        raise SystemExit(f"{run} has not finished (no record.json); train it to the end or pass --force")
    state = load_checkpoint(ckpt_path)  # the harness's layout (trainers.common.harness)
    history = epoch_history(state["validation"])
    dataset = state["config"]["dataset"]
    if NETS[name].dataset != dataset:
        raise SystemExit(f"{ckpt_path} trained on {dataset!r}, but {name!r} is the {NETS[name].dataset} network")
    # Plain contiguous tensors: the file must not depend on the memory layout used in training.
    weights = {k: v.detach().contiguous().clone() for k, v in state["trainer"]["model"].items()}
    buffer = io.BytesIO()  # saving from memory keeps the archive's internal names independent of the file name
    torch.save(weights, buffer)
    payload = buffer.getvalue()

    out_dir.mkdir(parents=True, exist_ok=True)
    pt_path, json_path = out_dir / f"{name}.pt", out_dir / f"{name}.json"
    tmp_pt = out_dir / f".{name}.pt.tmp"
    tmp_pt.write_bytes(payload)
    logging.getLogger("geneval.features.domain").setLevel(logging.ERROR)  # "no .json beside the .tmp": expected
    accuracy, test_info = test_accuracy(name, tmp_pt)
    target = NETS[name].target_accuracy
    if accuracy < target and not force:
        tmp_pt.unlink()
        raise SystemExit(f"{name}: test accuracy {accuracy:.4f} is below the target {target}; not exported")

    seed = state["config"]["seed"]
    recipe = state["config"]["recipe"]
    epochs_flag = "" if recipe["epochs"] == RECIPES[dataset].epochs else f" --epochs {recipe['epochs']}"
    metadata = {
        "name": name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "dataset": dataset,
        "test_accuracy": round(accuracy, 6),
        "target_accuracy": target,
        "test_split": {"count": test_info["count"], "fingerprint": test_info["fingerprint"]},
        "train_fingerprint": state.get("data", {}).get("train"),
        "seed": seed,
        "epochs": len(history),
        "recipe": recipe,
        "history": history,
        "layers": {"embedding": NETS[name].embedding_dim, "logits": 10, "probs": 10},
        "input_shape": list(NETS[name].input_shape),
        "retrain_command": (
            f"python -m trainers.classifiers.train --dataset {dataset} --out runs/classifiers/{dataset} "
            f"--seed {seed}{epochs_flag} && python -m trainers.classifiers.export "
            f"--run runs/classifiers/{dataset} --name {name}"
        ),
        "reproducibility": "deterministic on CPU for a given machine and thread count; "
                           "other CPUs or thread counts may differ in the last float bits",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp_json = out_dir / f".{name}.json.tmp"
    tmp_json.write_text(json.dumps(metadata, indent=2) + "\n")
    os.replace(tmp_pt, pt_path)
    os.replace(tmp_json, json_path)
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path, metavar="DIR", help="run folder with checkpoint.pt")
    parser.add_argument("--name", required=True, choices=sorted(NETS))
    parser.add_argument("--force", action="store_true", help="export an unfinished or below-target run")
    parser.add_argument("--out-dir", type=Path, default=WEIGHTS_DIR, metavar="DIR")
    args = parser.parse_args(argv)
    meta = export(args.run, args.name, force=args.force, out_dir=args.out_dir)
    print(json.dumps({k: meta[k] for k in ("name", "sha256", "test_accuracy", "epochs", "seed")}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
