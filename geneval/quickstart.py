"""The quickstart: score held-out Fashion-MNIST test images, and degraded copies of them, against the train split.

Until a trained model's samples take their place, real images and controlled degradations show what the
metrics do: each degradation should move FID and KID up and (for class-destroying ones) IS down, relative to
the clean test split. Everything runs offline with the shipped ``fashion-mnist-cnn`` extractor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from geneval.atomic import write_text_atomic
from geneval.datasets import open_dataset
from geneval.evaluate import ScoreOptions, score
from geneval.grid import save_grid

DATASET = "fashion-mnist"
REFERENCE = f"{DATASET}:train"


@dataclass(frozen=True)
class Condition:
    name: str
    make: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (images [N,C,H,W] uint8, labels) -> images


def add_noise(sigma: float, seed: int = 0):
    def make(images, labels):
        rng = np.random.default_rng(seed)
        noisy = images.astype(np.float64) + rng.normal(0.0, sigma, size=images.shape)
        return np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8)

    return make


def blur(radius: float):
    def make(images, labels):
        out = np.empty_like(images)
        for i, image in enumerate(images[:, 0]):
            out[i, 0] = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
        return out

    return make


def drop_class(label: int):
    return lambda images, labels: images[labels != label]


def only_class(label: int):
    return lambda images, labels: images[labels == label]


def conditions(class_names: list[str]) -> list[Condition]:
    return [
        Condition("test split (held out)", lambda images, labels: images),
        Condition("test + Gaussian noise σ=16", add_noise(16)),
        Condition("test + Gaussian noise σ=48", add_noise(48)),
        Condition("test, blurred (radius 1)", blur(1.0)),
        Condition("test, blurred (radius 2)", blur(2.0)),
        Condition(f"test without class '{class_names[1]}'", drop_class(1)),
        Condition(f"only class '{class_names[7]}' (mode collapse)", only_class(7)),
    ]


def run_quickstart(*, out_dir: Path, num: int | None = None, progress: bool = True) -> list[dict]:
    """Score every condition; write ``records.json`` and ``samples.png`` into ``out_dir``; return table rows."""
    images, labels, info = open_dataset(DATASET, "test")
    if num is not None:
        images, labels = images[:num], labels[:num]
    options = ScoreOptions(metrics=("fid", "is", "kid"), progress=progress)
    rows, records, grid_rows = [], [], []
    for condition in conditions(info["classes"]):
        samples = condition.make(images, labels)
        record = score(samples, REFERENCE, options=options)
        records.append({"condition": condition.name, **record.as_dict()})
        rows.append({
            "condition": condition.name,
            "n": record["fid"].details["num_gen"],
            "fid": record["fid"].value,
            "is": record["is"].value,
            "is_std": record["is"].std,
            "kid": record["kid"].value,
            "kid_std": record["kid"].std,
            "extractor": record.provenance["extractor"]["extractor"],
            "reference_cache": record.provenance["reference"].get("cache"),
        })
        grid_rows.append(samples[:10])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "records.json", json.dumps(records, indent=2, default=_to_list) + "\n")
    save_grid(out_dir / "samples.png", np.concatenate(grid_rows), ncols=10, scale=2)
    return rows


def table_cells(rows: list[dict]) -> list[tuple[str, ...]]:
    """Header and one row per condition; headers name the extractor (a domain FID is not an Inception FID)."""
    extractor = rows[0]["extractor"]
    cells = [(f"samples (vs {REFERENCE})", "N", f"FID ({extractor}) ↓", f"IS ({extractor}) ↑", f"KID ({extractor}) ↓")]
    for row in rows:
        cells.append((row["condition"], str(row["n"]), f"{row['fid']:.3f}", f"{row['is']:.3f} ± {row['is_std']:.3f}",
                      f"{row['kid']:.5f} ± {row['kid_std']:.5f}"))
    return cells


def markdown_table(rows: list[dict]) -> str:
    cells = table_cells(rows)
    lines = ["| " + " | ".join(cells[0]) + " |", "|---|" + "---:|" * (len(cells[0]) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def _to_list(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(type(value))
