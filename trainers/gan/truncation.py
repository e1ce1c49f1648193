"""The truncation trade-off (Brock et al. 2019, §3.1 and Fig. 2): sample a trained generator with latents
resampled to ``|z| ≤ threshold`` for a range of thresholds and score each set with the same protocol.
Smaller thresholds trade variety (FID, recall) for fidelity (IS, precision).

    geneval train gan-truncation runs/gan/biggan-lite --thresholds none,2,1.5,1,0.5 --num-samples 5000

Writes ``truncation.csv``, ``truncation.md``, ``truncation.png`` (IS vs FID, precision vs recall) and
``truncation_samples.png`` (one row per threshold, same seeds) in the run folder (or ``--out``). Every threshold uses the same sample seeds, so only the truncation differs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from geneval.atomic import write_bytes_atomic, write_text_atomic
from geneval.errors import GenevalInputError

# density/coverage (Naeem et al. 2020) beside precision/recall: k-NN precision rewards samples that land inside
# an outlier's large real-data ball, which strongly truncated, near-empty images can do.
SWEEP_METRICS = ("fid", "is", "precision", "recall", "density", "coverage", "intra_fid")


def parse_thresholds(text: str) -> list[float | None]:
    out: list[float | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item in ("none", "inf", ""):
            out.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise GenevalInputError(f"threshold {item!r} is not a number; expected e.g. none,2,1,0.5") from None
        if value <= 0:
            raise GenevalInputError(f"threshold {value} must be > 0 (or none for no truncation)")
        out.append(value)
    return out


def truncation_sweep(run_dir, *, thresholds: list[float | None], num_samples: int, which: str = "best",
                     seed: int | None = None, out_dir=None) -> list[dict]:
    from geneval.optional import require_plotting
    from trainers.gan import evaluation
    from trainers.gan.config import GanConfig
    from trainers.gan.sampler import GanSampler, config_from_json

    require_plotting("a truncation sweep (its trade-off plot)")
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise GenevalInputError(f"{run_dir} is not a GAN run folder (no config.json)")
    cfg = config_from_json(json.loads((run_dir / "config.json").read_text()), GanConfig)
    sampler = GanSampler.from_run(run_dir, which=which)
    metrics, skipped = evaluation.available_metrics(cfg, SWEEP_METRICS)
    reference = f"{cfg.dataset}:test"
    seed = cfg.sample_seed if seed is None else seed
    labels = sampler.labels_for(num_samples)
    rows, protocol = [], None
    for threshold in thresholds:
        samples = sampler.sample(num_samples, seed, labels, truncation=threshold)
        values, protocol = evaluation.score(samples, labels, cfg=cfg, reference=reference, reference_name=reference,
                                            metrics=metrics, num_ref=cfg.eval_num_ref)
        rows.append({"threshold": "none" if threshold is None else f"{threshold:g}",
                     **{name: values[name]["value"] for name in metrics}})
    out_dir = Path(out_dir) if out_dir else run_dir
    truncation_grid(sampler, thresholds, seed=seed, path=out_dir / "truncation_samples.png")
    write_outputs(rows, out_dir=out_dir, title=f"{cfg.preset} ({which}) on {cfg.dataset}",
                  protocol={**protocol, "which": which, "sample_seed": seed, "metrics_skipped": skipped})
    return rows


def truncation_grid(sampler, thresholds: list[float | None], *, seed: int, path: Path, per_row: int = 10) -> None:
    """One row per threshold, the same seeds (and classes) in every column: what truncation does to a sample."""
    import torch

    from geneval.grid import save_grid

    labels = sampler.labels_for(per_row)
    rows = [sampler.sample(per_row, seed, labels, truncation=t) for t in thresholds]
    save_grid(path, torch.cat(rows), ncols=per_row, scale=2)


def write_outputs(rows: list[dict], *, out_dir: Path, title: str, protocol: dict) -> None:
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "truncation.csv", buffer.getvalue())

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [f"### Truncation sweep: {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row[c]) for c in columns) + " |" for row in rows]
    lines += ["", f"Protocol: extractor {protocol.get('extractor')} (weights sha256 "
                  f"{str(protocol.get('weights_sha256'))[:12]}), {protocol.get('num_samples')} samples per threshold "
                  f"(seed {protocol.get('sample_seed')}, {protocol.get('which')} checkpoint), reference "
                  f"{protocol.get('reference')} ({protocol.get('reference_count')} images). "
                  f"Not measured: {protocol.get('metrics_skipped') or 'none'}.", ""]
    write_text_atomic(out_dir / "truncation.md", "\n".join(lines))
    plot(rows, out_dir / "truncation.png", title=title)


def plot(rows: list[dict], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [("fid", "is", "FID (lower is better)", "IS (higher is better)"),
             ("recall", "precision", "recall", "precision")]
    pairs = [p for p in pairs if p[0] in rows[0] and p[1] in rows[0]]
    fig, axes = plt.subplots(1, max(1, len(pairs)), figsize=(5 * max(1, len(pairs)), 4), squeeze=False)
    for ax, (x, y, xlabel, ylabel) in zip(axes[0], pairs):
        xs, ys = [r[x] for r in rows], [r[y] for r in rows]
        ax.plot(xs, ys, marker="o")
        for r, xv, yv in zip(rows, xs, ys):
            ax.annotate(f"ψ={r['threshold']}", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.suptitle(f"truncation trade-off: {title}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
