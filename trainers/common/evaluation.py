"""Auto-evaluation of a trained model's samples through geneval's public API (never a re-implementation).

``evaluate_samples`` scores uint8 samples against a named reference split with the dataset's default
extractor (the domain classifier for the embedded datasets) and returns a compact, JSON-ready dict per metric
plus the evaluation protocol that the leaderboards print under their tables.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from geneval.evaluate import ScoreOptions, score


def kid_subsets_for(num_samples: int) -> int:
    """How many KID subsets a trainer's evaluation of ``num_samples`` samples averages: 100 (torch-fidelity's
    default) from 1000 samples on, else 10 — below 1000 every subset holds all the generated samples (the subset
    size is capped by the smaller set), so more subsets would only resample the reference side."""
    return 100 if num_samples >= 1000 else 10


def timed(draw, num: int) -> tuple[torch.Tensor, dict]:
    """``(draw(), record["sampling"])``: the ``num`` samples ``draw`` returns and the wall time it took, as seconds
    and seconds per 1,000 samples (``sampling.s_per_1000``, the record key every family's tables compare)."""
    started = time.perf_counter()
    samples = draw()
    if isinstance(samples, torch.Tensor) and samples.is_cuda:
        torch.cuda.synchronize(samples.device)  # kernels are queued: the clock stops when they have run
    seconds = time.perf_counter() - started
    return samples, {"num_images": num, "seconds": round(seconds, 3), "s_per_1000": round(seconds / num * 1000, 3),
                     "threads": torch.get_num_threads()}


def sampler_protocol_overrides(evaluation: dict) -> dict:
    """A spec's ``[evaluation]`` as the config keys of the families that score their own samples at the end of a
    run (GANs, StyleGAN, diffusion): ``eval_samples``, ``eval_features``, ``eval_metrics``, ``eval_num_ref``."""
    mapping = {"num_samples": "eval_samples", "features": "eval_features", "metrics": "eval_metrics",
               "num_ref": "eval_num_ref"}
    out = {mapping[k]: v for k, v in evaluation.items() if k in mapping}
    if "eval_metrics" in out:
        out["eval_metrics"] = tuple(out["eval_metrics"])
    return out


def evaluate_samples(
    samples_uint8: torch.Tensor | np.ndarray,
    *,
    reference: str,
    metrics: tuple[str, ...] = ("fid", "is", "kid"),
    features: str | None = None,
    labels: torch.Tensor | np.ndarray | None = None,
    kid_subsets: int = 100,
    progress: bool = False,
    **options,
) -> tuple[dict, dict]:
    """``(metrics, protocol)``: ``metrics[name] = {"value", "std", "label", "higher_is_better", "details"}``."""
    from geneval.sources import open_source

    source = open_source(samples_uint8, labels=labels) if labels is not None else samples_uint8
    opts = ScoreOptions.create(metrics=metrics, features=features, kid_subsets=kid_subsets, progress=progress, **options)
    record = score(source, reference, options=opts)
    out = {
        r.metric: {"value": r.value, "std": r.std, "label": r.label, "higher_is_better": r.higher_is_better,
                   "details": {k: v for k, v in r.details.items() if k != "split_values"}}
        for r in record.results
    }
    prov = record.provenance
    protocol = {
        "extractor": prov["extractor"]["extractor"],
        "weights_sha256": prov["extractor"]["weights_sha256"],
        "mode": prov["extractor"]["mode"],
        "num_samples": prov["samples"]["count"],
        "reference": reference,
        "reference_count": prov["reference"].get("count"),
        "reference_fingerprint": prov["reference"].get("fingerprint"),
        "kid_subsets": kid_subsets,
        "warnings": record.warnings,
    }
    return out, protocol
