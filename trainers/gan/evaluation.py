"""The GAN run's evaluation protocol: which metrics can be measured, against which reference, and the plots.

Two references, so that selecting the best checkpoint does not bias the number reported for it:

* **validation**: the last ``val_holdout`` images of the train split, never trained on. Periodic
  evaluations (FID, IS) on it pick the best checkpoint and detect collapse.
* **report**: the test split (``<dataset>:test``). Final and best checkpoints are both scored on it, once,
  at the end, with every requested metric that geneval has registered and the extractor supports.

All scoring goes through ``trainers.common.evaluation.evaluate_samples`` (geneval's public API).
"""

from __future__ import annotations

import logging

import torch

from trainers.common.evaluation import evaluate_samples, kid_subsets_for

log = logging.getLogger(__name__)

VALIDATION_METRICS = ("fid", "is")


def extractor_name(cfg) -> str:
    """The extractor of both references (explicit: an array reference would otherwise default to Inception)."""
    from geneval.evaluate import default_extractor

    return cfg.eval_features or default_extractor(f"{cfg.dataset}:test")


def available_metrics(cfg, requested: tuple[str, ...]) -> tuple[tuple[str, ...], dict]:
    """``(metrics to compute, {skipped metric: why})``: a metric is requested only if geneval registers it, the
    extractor has a layer for it, and it has the labels it needs."""
    from geneval.features import EXTRACTORS
    from geneval.metrics import METRICS

    name = extractor_name(cfg)
    if name not in EXTRACTORS:
        raise ValueError(f"feature extractor {name!r} is not registered")
    layers = _default_layers(name)
    keep, skipped = [], {}
    for metric in requested:
        if metric not in METRICS:
            skipped[metric] = "not registered in geneval.metrics.METRICS"
            continue
        spec = METRICS.get(metric)
        if spec.role not in layers:
            skipped[metric] = f"extractor {name} has no layer for it"
        elif spec.needs_labels and not cfg.conditional:
            skipped[metric] = "needs class labels (unconditional model)"
        else:
            keep.append(metric)
    return tuple(keep), skipped


_LAYER_CACHE: dict[str, dict] = {}


def _default_layers(name: str) -> dict:
    if name not in _LAYER_CACHE:
        from geneval.evaluate import build_extractor

        _LAYER_CACHE[name] = dict(build_extractor(name, mode=None, weights=None, device="cpu").info.default_layers)
    return _LAYER_CACHE[name]


def score(samples: torch.Tensor, labels: torch.Tensor | None, *, cfg, reference, reference_name: str,
          metrics: tuple[str, ...], num_ref: int | None = None, **interval) -> tuple[dict, dict]:
    """Score uint8 samples; ``reference`` is a dataset name or an opened Source (with labels);
    ``num_ref``: use the reference's first N images; ``interval``: ``ci`` / ``ci_resamples`` for a bootstrap."""
    values, protocol = evaluate_samples(samples, reference=reference, metrics=metrics,
                                        features=extractor_name(cfg), labels=labels, num_ref=num_ref or None,
                                        kid_subsets=kid_subsets_for(len(samples)), **interval)
    protocol["reference"] = reference_name
    return values, protocol


def rescore(samples: torch.Tensor, labels: torch.Tensor | None, *, config, metrics: tuple[str, ...],
            ci: float | None, ci_resamples: int) -> tuple[dict, dict]:
    """A family's ``evaluate``: a checkpoint's samples (drawn with the run's sample seeds) scored on the test
    split with the run's extractor and reference count, optionally with a bootstrap interval; the metrics the
    run cannot measure are listed in the protocol, not computed."""
    keep, skipped = available_metrics(config, metrics)
    reference = f"{config.dataset}:test"
    values, protocol = score(samples, labels, cfg=config, reference=reference, reference_name=reference, metrics=keep,
                             num_ref=config.eval_num_ref, **({"ci": ci, "ci_resamples": ci_resamples} if ci else {}))
    protocol.update({"sample_seed": config.sample_seed, "metrics_skipped": skipped})
    return values, protocol


def plot_curves(log_entries: list[dict], path, *, title: str) -> None:
    """Losses per logged step and validation FID per evaluation, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geneval.atomic import write_bytes_atomic

    train = [e for e in log_entries if e.get("kind") == "train"]
    val = [e for e in log_entries if e.get("kind") == "val" and e.get("fid") is not None]
    fig, (ax_loss, ax_fid) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        steps = [e["step"] for e in train]
        ax_loss.plot(steps, [e["loss_d"] for e in train], marker=".", label="D loss")
        ax_loss.plot(steps, [e["loss_g"] for e in train], marker=".", label="G loss")
        ax_loss.legend()
    ax_loss.set_xlabel("generator step")
    ax_loss.set_title("losses (mean over the logging interval)")
    if val:
        ax_fid.plot([e["step"] for e in val], [e["fid"] for e in val], marker="o")
        best = min(val, key=lambda e: e["fid"])
        ax_fid.scatter([best["step"]], [best["fid"]], color="red", zorder=3, label=f"best {best['fid']:.2f}")
        ax_fid.legend()
    ax_fid.set_xlabel("generator step")
    ax_fid.set_title("validation FID (held-out train slice)")
    fig.suptitle(title)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
