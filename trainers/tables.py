"""Markdown tables generated from run records (never hand-typed numbers).

    python -m trainers.tables likelihood                 # → leaderboards/tables/likelihood.md
    python -m trainers.tables likelihood --records DIR --out FILE

``likelihood_table(records)`` is the function the leaderboards reuse: one table per dataset, a row per
model, with the test NLL (nats or bits/dim, ± standard error over test examples), what kind of number it
is (exact or a bound), the published value where there is one and the gap to it, the training budget
(steps, wall time on the machine that ran it), the parameter count, the sampling time of 100 images and the
sample metrics measured by the domain extractor.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "leaderboards" / "records" / "likelihood"
TABLE = ROOT / "leaderboards" / "tables" / "likelihood.md"
MODEL_ORDER = ("fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn", "vae")
NAMES = {"fvsbn": "FVSBN", "nade": "NADE", "made": "MADE", "pixelcnn": "PixelCNN", "gated-pixelcnn": "Gated PixelCNN",
         "vae": "VAE"}


def load_records(folder: Path = RECORDS) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*/record.json"))]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _metric(final: dict, name: str, digits: int = 2) -> str:
    m = final.get(name)
    if not m or m.get("value") is None:
        return "—"
    return f"{m['value']:.{digits}f}"


def _sample_metrics(record: dict) -> str:
    final = record["metrics"]["final"]
    parts = [f"FID {_metric(final, 'fid', 1)}", f"IS {_metric(final, 'is', 2)}", f"KID {_metric(final, 'kid', 4)}"]
    for name in ("precision", "recall"):
        if name in final:
            parts.append(f"{name[0].upper()} {_metric(final, name, 3)}")
    if all("—" in p for p in parts):
        return "not scored (" + record["evaluation"].get("skipped", "no extractor") + ")"
    return ", ".join(p for p in parts if "—" not in p) + f" ({record['evaluation'].get('extractor')}, " \
        f"{record['evaluation'].get('num_samples')} samples)"


def _sampling(record: dict) -> str:
    s = record["sampling"]
    return f"{s['seconds']:.2f} s" + ("" if s["num_images"] == 100 else f" ({s['num_images']} images)")


def _nll(final: dict, key: str, digits: int, record: dict) -> str:
    n = record["likelihood"]["num_examples"]
    text = f"{final[key]['value']:.{digits}f} ± {final[key]['std']:.{digits}f}"
    return text if n == 10_000 else f"{text} (first {n} test images)"


def _size(record: dict) -> str:
    """The network's size settings, so rows of one model at different sizes are told apart."""
    c, model = record["config"], record["model"]
    if model == "fvsbn":
        return "" if record["dataset"] == "binarized-mnist" else f"rank {c['rank']}"
    if model in ("nade", "made"):
        layers = f"{c['hidden_layers']}×" if model == "made" and c["hidden_layers"] > 1 else ""
        masks = f", {c['num_masks']} masks" if model == "made" and c["num_masks"] > 1 else ""
        rank = f", rank {c['rank']}" if record["dataset"] != "binarized-mnist" else ""
        return f"{layers}{c['hidden']} hidden{masks}{rank}"
    if model in ("pixelcnn", "gated-pixelcnn"):
        return f"{c['num_layers']} layers × {c['channels']} ch"
    if model == "vae":
        return f"latent {c['latent_dim']}, {c['hidden']} hidden"
    return ""


def _name(record: dict) -> str:
    size = _size(record)
    return NAMES.get(record["model"], record["model"]) + (f" ({size})" if size else "")


def _row_order(record: dict) -> tuple:
    model = record["model"]
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model, record["preset"])


def _kind(record: dict) -> str:
    lik = record["likelihood"]
    text = lik["kind"] if not lik["bound"] else f"≤ ({lik['kind']})"
    return text + (", p(x|y)" if lik.get("conditional") else "")


def binarized_mnist_table(records: list[dict]) -> list[str]:
    lines = [
        "| model | preset | test NLL (nats) | kind | published | gap | steps | train time | params | 100 samples | sample metrics (binarised test split) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(records, key=_row_order):
        final = r["metrics"]["final"]
        nats = final["test_nats"]["value"]
        pub = r.get("published") or {}
        published = f"{'≤ ' if pub.get('bound') else ''}{pub['nats']:.2f}" if pub else "—"
        gap = f"{nats - pub['nats']:+.2f}" if pub else "—"
        extra = ""
        if "test_elbo_nats" in final:
            extra = f" (ELBO {final['test_elbo_nats']['value']:.2f})"
        lines.append(
            f"| {_name(r)} | {r['preset']} | {_nll(final, 'test_nats', 2, r)}{extra} | {_kind(r)} | "
            f"{published} | {gap} | {r['steps']} | {_minutes(r['wall_time_s'])} | {r['params']['total']:,} | "
            f"{_sampling(r)} | {_sample_metrics(r)} |"
        )
    return lines


def fashion_mnist_table(records: list[dict]) -> list[str]:
    lines = [
        "| model | preset | test bits/dim | test NLL (nats) | kind | steps | train time | params | 100 samples | sample metrics (fashion-mnist:test) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(records, key=_row_order):
        final = r["metrics"]["final"]
        extra = ""
        if "test_elbo_bits_per_dim" in final:
            extra = f" (ELBO {final['test_elbo_bits_per_dim']['value']:.4f})"
        lines.append(
            f"| {_name(r)} | {r['preset']} | {_nll(final, 'test_bits_per_dim', 4, r)}{extra} | "
            f"{final['test_nats']['value']:.1f} | {_kind(r)} | {r['steps']} | {_minutes(r['wall_time_s'])} | "
            f"{r['params']['total']:,} | {_sampling(r)} | {_sample_metrics(r)} |"
        )
    return lines


def likelihood_table(records: list[dict]) -> str:
    """The Markdown likelihood leaderboard of ``records`` (dicts as in ``record.json``)."""
    records = [r for r in records if "likelihood" in r]
    by_dataset = {name: [r for r in records if r["dataset"] == name] for name in ("binarized-mnist", "fashion-mnist")}
    out = ["# Likelihood of explicit-density models", "",
           "Generated by `python -m trainers.tables likelihood` from `leaderboards/records/likelihood/*/record.json`; "
           "do not edit by hand. Reproduce a row with `geneval train <model> --dataset <dataset> --preset small "
           "--out runs/<model>-<dataset>` (all of them: `leaderboards/likelihood_small.sh`).", ""]
    out += ["## Binarised MNIST (dynamic binarisation), test NLL in nats", ""]
    if by_dataset["binarized-mnist"]:
        out += binarized_mnist_table(by_dataset["binarized-mnist"])
    else:
        out += ["(no finished runs yet)"]
    out += ["",
            "Published: pytorch-generative's README (EugenHotaj/pytorch-generative), dynamically binarised MNIST. "
            "Its models are trained to convergence on a GPU at the reference sizes (our `paper` preset); the `small` "
            "rows here are minutes of training on one CPU core with smaller networks, so the gap is the price of that "
            "budget, not a claim about the method. The test split is binarised once with the recorded seed (one "
            "Bernoulli(x/255) draw per pixel, example i by its own generator), training draws fresh pixels every step.",
            "", "## Fashion-MNIST (8-bit, 256 levels), test bits/dim", ""]
    if by_dataset["fashion-mnist"]:
        out += fashion_mnist_table(by_dataset["fashion-mnist"])
    else:
        out += ["(no finished runs yet)"]
    machines = sorted({r.get("machine", "") for r in records} - {""})
    out += ["",
            "bits/dim = nats / (784 · ln 2), computed by `geneval.likelihood` over every test example (10,000); ± is the "
            "standard error of the mean over examples. `exact` rows are exact discrete log-likelihoods; `≤ (iwae-K)` rows "
            "are the importance-weighted upper bound on the NLL (the VAE's negative ELBO in brackets). Train time is wall "
            "time on a 2-core CPU shared with other jobs, one thread (`OMP_NUM_THREADS=1`); \"100 samples\" is the time "
            "to draw 100 images (autoregressive samplers cache what they can; see each record's `sampling.note`). "
            "Sample metrics use the domain classifier of the dataset (records' `evaluation` hold the extractor, its "
            "weights' sha256 and the sample counts) and are computed on few samples (see `num_samples` in the configs), "
            "so compare them only across rows with the same count." + (f" Machines: {', '.join(machines)}." if machines else ""),
            ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table", choices=["likelihood"])
    parser.add_argument("--records", default=str(RECORDS), metavar="DIR")
    parser.add_argument("--out", default=str(TABLE), metavar="FILE")
    args = parser.parse_args(argv)
    from geneval.atomic import write_text_atomic

    text = likelihood_table(load_records(Path(args.records)))
    write_text_atomic(args.out, text)
    print(f"wrote {args.out} ({platform.node()})")


if __name__ == "__main__":
    main()
