"""``score(samples, ref)``: sources → extractor → statistics (reference side cached) → metrics → Record.

This is the one function behind ``geneval score`` and the Python API's end-to-end call. The metrics
themselves live in ``geneval.metrics`` and know nothing of files, extractors or caches.
"""

from __future__ import annotations

import logging
import platform
import time
import dataclasses
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np
import torch

from geneval import cache, distributed, metrics
from geneval.errors import GenevalInputError
from geneval.extract import FeatureSet, extract_features, extract_sharded
from geneval.features import EXTRACTORS
from geneval.features.base import FeatureExtractor
from geneval.results import Record, Result
from geneval.sources import Source, open_source
from geneval.sources.base import ContentFingerprint
from geneval.stats_io import is_stats_file, read_stats_npz

log = logging.getLogger(__name__)

INCEPTION = "inception-v3-fid"
IMAGES_ROLE = "images"  # a metric of the uint8 samples themselves (MS-SSIM), not of an extractor's features


@dataclass(frozen=True)
class ScoreOptions:
    """How to measure: what no single metric owns. Every field ends up in the record's provenance.

    A metric's own knobs (KID's subsets, PRDC's k, ...) are ``Param``s declared where it is registered; their
    values go in ``params`` by name. ``ScoreOptions.create(**kwargs)`` takes both kinds as keywords.
    """

    metrics: tuple[str, ...] = ("fid", "is", "kid")
    features: str | None = None  # extractor name; None: chosen from the reference (see default_extractor)
    mode: str | None = None  # extractor preprocessing mode; None: the extractor's default
    weights: str | None = None
    num: int | None = None  # generated samples to use (first N); None: all
    num_ref: int | None = None
    batch_size: int | None = None  # None: the extractor's own (64 for Inception, 500 for domain nets)
    seed: int = 2020  # random draws of KID subsets (torch-fidelity's default seed), NDB's k-means, FD∞, MS-SSIM
    heldout: str | None = None  # real samples the model never saw, for metrics that need them (memorisation)
    targets: Any = None  # paired metrics: target i of sample i (anything open_source accepts; geneval.paired)
    out_dir: str | None = None  # where metrics write files for a person to look at (memorisation pairs PNG)
    ci: float | None = None  # bootstrap confidence level for every metric, e.g. 0.95; None: no interval
    ci_resamples: int = 100
    ci_seed: int = 0
    use_cache: bool = True
    progress: bool = True
    device: str = "cpu"  # auto, cpu, cuda, cuda:N (geneval.distributed.resolve_device)
    fast: bool = False  # allow TF32 on CUDA (faster; features then differ from the CPU's beyond float32 rounding)
    params: Mapping[str, Any] = field(default_factory=dict)  # metric parameters by name; absent: the default

    @classmethod
    def create(cls, **kwargs) -> "ScoreOptions":
        """Options from keywords that are fields or any registered metric's parameters (``kid_subsets=10``)."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"params"}
        declared = metrics.declared_params()
        unknown = sorted(set(kwargs) - fields - set(declared))
        if unknown:
            raise TypeError(f"unknown score options {unknown}; options: {sorted(fields)}; "
                            f"metric parameters: {sorted(declared)}")
        params = {k: v for k, v in kwargs.items() if k not in fields}
        return cls(**{k: v for k, v in kwargs.items() if k in fields}, params=params)


def score(samples, ref=None, *, options: ScoreOptions | None = None, value_range=None, resize=None,
          **kwargs) -> Record | None:
    """Score ``samples`` against ``ref`` (each anything ``open_source`` accepts; ``ref`` may be a mu/sigma .npz).

    Keyword arguments not given in ``options`` are ScoreOptions fields or metric parameters, e.g.
    ``score(x, "cifar10:train", metrics=("fid", "kid"), num=10_000, kid_subsets=10)``.

    Inside a torch.distributed process group (``torchrun ... -m geneval score``) every rank extracts its shard
    (``geneval.distributed``); rank 0 computes the metrics and returns the Record, the other ranks None.
    """
    opts = options or ScoreOptions.create(**kwargs)
    if options is not None and kwargs:
        raise TypeError("pass either options= or keyword options, not both")
    with distributed.precision(fast=opts.fast) as precision:
        return _score(samples, ref, opts, value_range=value_range, resize=resize, precision=precision)


def _score(samples, ref, opts: ScoreOptions, *, value_range, resize, precision: str) -> Record | None:
    specs = [metrics.METRICS.get(name) for name in opts.metrics]
    if not specs:
        raise GenevalInputError("no metrics requested; expected some of " + ", ".join(metrics.METRICS.names()))
    if any(spec.needs_reference for spec in specs) and ref is None:
        needing = [s.name for s in specs if s.needs_reference]
        raise GenevalInputError(f"metrics {', '.join(needing)} need a reference (--ref)")

    started = time.perf_counter()
    device = distributed.resolve_device(opts.device)
    ctx = distributed.current()
    # Cheap checks first: every input is opened and validated (headers, shapes, dtypes, values, stats files)
    # before any weights are resolved or a network runs, so a bad file is never reported after a download.
    gen_source = open_source(samples, value_range=value_range, resize=resize, num=opts.num, num_option="--num")
    needing_labels = [s.name for s in specs if s.needs_labels]
    if needing_labels and not gen_source.has_labels:  # fail before any feature pass, not after
        raise GenevalInputError(
            f"{', '.join(needing_labels)} needs class labels for the generated samples; {gen_source.name} has none "
            "(use class sub-folders, an .npz with labels, labels=..., or a generator returning (images, labels))"
        )
    targets_source = None
    needing_targets = [s.name for s in specs if s.needs_targets]
    if needing_targets:
        from geneval.paired import open_targets

        targets_source = open_targets(opts.targets, gen_source, metrics=needing_targets, num=opts.num,
                                      value_range=value_range)
    needs_ref = any(s.needs_reference for s in specs)
    ref_input = open_reference(ref, num_ref=opts.num_ref) if needs_ref else None
    heldout_input = None
    if opts.heldout is not None and any(s.needs_heldout for s in specs):
        heldout_input = open_reference(opts.heldout, num_ref=None)
    if isinstance(ref_input, StatsFile) and any(s.reference_needs_features for s in specs if s.needs_reference):
        raise GenevalInputError(f"{ref} holds only mu/sigma statistics; KID and k-NN metrics need reference images")

    # Metrics of the images alone (SSIM, PSNR, MS-SSIM) need no network: the pixels "extractor" only counts them.
    images_only = all(s.role == IMAGES_ROLE for s in specs)
    extractor_name = opts.features or ("pixels" if images_only else default_extractor(ref if ref is not None else opts.targets))
    extractor = build_extractor(extractor_name, mode=opts.mode, weights=opts.weights, device=str(device))
    # Metrics of images (MS-SSIM) read no layer; one layer is still extracted for the count and labels.
    gen_layers = tuple(dict.fromkeys(_layer(extractor, s) for s in specs if s.role != IMAGES_ROLE))
    gen_layers = gen_layers or (extractor.default_layer("fid"),)
    ref_layers = tuple(dict.fromkeys(_layer(extractor, s) for s in specs if s.needs_reference))

    warnings: list[str] = []
    # The generated side first: a file that only fails when decoded (a truncated JPEG) stops the run before
    # anything is written to the reference cache.
    gen_fingerprint = ContentFingerprint()
    gen_set = _extract(gen_source, extractor, gen_layers, opts, ctx=ctx, desc="generated features",
                       fingerprint=gen_fingerprint)
    ref_set, ref_info = (None, {})
    if ref_layers:
        needs_ref_features = any(s.reference_needs_features for s in specs)
        ref_set, ref_info = reference_features(ref_input, extractor, ref_layers, opts, needs_features=needs_ref_features)

    heldout_set, heldout_info = (None, None)
    heldout_layers = tuple(dict.fromkeys(_layer(extractor, s) for s in specs if s.needs_heldout))
    if heldout_layers and heldout_input is not None:
        heldout_set, heldout_info = reference_features(heldout_input, extractor, heldout_layers,
                                                       replace(opts, num_ref=None), needs_features=True)
    targets_set = None
    target_layers = tuple(dict.fromkeys(_layer(extractor, s) for s in specs if s.needs_targets and s.role != IMAGES_ROLE))
    if target_layers:
        targets_set = _extract(targets_source, extractor, target_layers, opts, ctx=ctx, desc="target features")
    if ctx is not None:  # every rank has the gathered features; rank 0 alone computes and records
        gen_digest = distributed.agree(ctx, lambda: gen_source.fingerprint() if ctx.is_main else None)
        if not ctx.is_main:
            return None
    sources = {"gen_source": gen_source, "heldout": heldout_set, "targets_source": targets_source,
               "targets": targets_set}
    if opts.out_dir is not None and isinstance(ref_input, Source):
        sources["ref_source"] = ref_input  # for pictures of reference samples
    cache = metrics.MetricCache()  # intermediate results the metrics of this call share (k-NN radii), then dropped
    results = [_compute(spec, extractor, gen_set, ref_set, opts, warnings, sources, cache) for spec in specs]
    provenance = {
        "geneval_version": _version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extractor": {**extractor.info.as_dict(), "layers": {s.name: _layer(extractor, s) for s in specs}},
        "samples": {**gen_source.describe(), "count": gen_set.count,
                    "fingerprint": gen_digest if ctx is not None else gen_fingerprint.hexdigest()},
        "reference": ref_info,
        **({"heldout": heldout_info} if heldout_info is not None else {}),
        **({"targets": {**targets_source.describe(), "fingerprint": targets_source.fingerprint(),
                        "aligned_by": targets_source.aligned_by}} if targets_source is not None else {}),
        "options": {k: v for k, v in opts.__dict__.items() if k not in ("progress", "use_cache", "params", "targets")},
        "metric_params": {spec.name: spec.param_values(opts.params) for spec in specs},
        "software": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "compute": {"device": str(device), "precision": precision,
                    "processes": ctx.world_size if ctx is not None else 1},
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    return Record(results=results, provenance=provenance, warnings=warnings)


def default_extractor(ref) -> str:
    """The domain classifier of a named embedded dataset (``fashion-mnist:test`` → ``fashion-mnist-cnn``)
    when one is registered; otherwise the FID-Inception network."""
    if isinstance(ref, str):
        try:
            from geneval.datasets import default_extractor_for
        except ImportError:
            return INCEPTION
        name = default_extractor_for(ref)
        if name is not None and name in EXTRACTORS:
            return name
    return INCEPTION


def build_extractor(name: str, *, mode: str | None, weights: str | None, device: str) -> FeatureExtractor:
    factory = EXTRACTORS.get(name)
    kwargs = {"weights": weights, "device": device}
    if mode is not None:
        kwargs["mode"] = mode
    return factory(**kwargs)


@dataclass(frozen=True)
class StatsFile:
    """A mu/sigma ``.npz`` read and validated by ``open_reference`` (before any extractor is built)."""

    path: str
    stats: object  # GaussianStats
    provenance: dict


def open_reference(ref, *, num_ref: int | None, num_option: str = "--num-ref") -> "Source | StatsFile":
    """Open and validate a reference: a mu/sigma statistics file, or anything ``open_source`` accepts.

    Cheap: headers, shapes, dtypes and values are checked; no feature is computed and no weights are touched.
    """
    if isinstance(ref, (Source, StatsFile)):
        return ref
    if is_stats_file(ref):
        stats, provenance = read_stats_npz(ref)
        return StatsFile(str(ref), stats, provenance)
    return open_source(ref, num=num_ref, num_option=num_option)


def reference_features(ref, extractor, layers, opts: ScoreOptions, *, needs_features: bool) -> tuple[FeatureSet, dict]:
    """Reference features for ``layers``: from a mu/sigma file, the cache, or one extraction pass.

    ``ref``: what ``open_reference`` returns, or anything it accepts (then opened here).
    """
    ref = open_reference(ref, num_ref=opts.num_ref)
    if isinstance(ref, StatsFile):
        return _reference_from_stats_file(ref, extractor, layers, needs_features=needs_features)
    source: Source = ref
    count = len(source)
    info = {**source.describe(), "count": count}
    base = {**extractor.info.as_dict(), "count": count}
    ctx = distributed.current()
    main = ctx is None or ctx.is_main
    if opts.use_cache:  # rank 0 alone reads the source's fingerprint and the cache, and tells the others
        fingerprint = distributed.agree(ctx, lambda: source.fingerprint() if main else None)
        info["fingerprint"] = fingerprint
        keys = {layer: {**base, "source_fingerprint": fingerprint, "layer": layer} for layer in layers}
        cached = cache.load_feature_set(keys) if main else None
        if distributed.broadcast_object(ctx, cached is not None):
            info.update(cache="hit (0 reference feature passes)", feature_passes=0)
            return (cached if main else FeatureSet(count=count)), info
    feature_set = _extract(source, extractor, layers, opts, ctx=ctx, desc="reference features")
    if opts.use_cache:
        written = cache.save_feature_set(keys, feature_set) if main else True
        info.update(cache="miss (1 reference feature pass, now cached)" if written else
                    "miss (1 reference feature pass; the cache could not be written)", feature_passes=1)
    else:
        info.update(cache="disabled (1 reference feature pass)", feature_passes=1)
    return feature_set, info


def _reference_from_stats_file(ref: StatsFile, extractor, layers, *, needs_features: bool) -> tuple[FeatureSet, dict]:
    path, stats, provenance = ref.path, ref.stats, ref.provenance
    if needs_features:
        raise GenevalInputError(f"{path} holds only mu/sigma statistics; KID and k-NN metrics need reference images")
    recorded = provenance.get("extractor")
    if recorded is not None and recorded != extractor.info.name:
        raise GenevalInputError(f"{path} was computed with extractor {recorded!r}; use --features {recorded}")
    expected_dim = extractor.info.layers[layers[0]]
    if len(layers) != 1 or (expected_dim > 0 and stats.dim != expected_dim):
        raise GenevalInputError(
            f"{path}: statistics of dimension {stats.dim} do not fit layer {layers[0]!r} of {extractor.info.name} "
            f"(dimension {extractor.info.layers[layers[0]]})"
        )
    info = {"kind": "stats-file", "path": str(path), "count": stats.count, "cache": "statistics file", "feature_passes": 0,
            "file_provenance": provenance}
    return FeatureSet(count=stats.count, gaussians={layers[0]: stats}), info


def _extract(source, extractor, layers, opts: ScoreOptions, *, ctx, desc: str, fingerprint=None) -> FeatureSet:
    """One feature pass: the whole source, or under torch.distributed this rank's shard, gathered."""
    batch_size = opts.batch_size or extractor.batch_size
    if ctx is None:
        return extract_features(source, extractor, layers, batch_size=batch_size, progress=opts.progress, desc=desc,
                                fingerprint=fingerprint)
    return extract_sharded(source, extractor, layers, ctx=ctx, batch_size=batch_size, progress=opts.progress, desc=desc)


def _layer(extractor, spec) -> str | None:
    return None if spec.role == IMAGES_ROLE else extractor.default_layer(spec.role)


def _compute(spec, extractor, gen: FeatureSet, ref: FeatureSet | None, opts: ScoreOptions, warnings: list,
             sources: dict, cache: metrics.MetricCache) -> Result:
    layer = _layer(extractor, spec)
    inputs = metrics.MetricInputs(gen=gen, ref=ref if spec.needs_reference else None, layer=layer, options=opts,
                                  params=spec.param_values(opts.params), cache=cache, warnings=warnings, **sources)
    measured = spec.compute(inputs)
    details = {"num_gen": gen.count, "num_ref": ref.count if ref is not None and spec.needs_reference else None,
               **measured.details}
    if opts.ci is not None:
        details.update(_interval(spec, inputs, opts, warnings))
    # A metric of the images themselves names no extractor: "SSIM to target", not "SSIM (inception-v3-fid)".
    label = spec.label if spec.role == IMAGES_ROLE else f"{spec.label} ({extractor.info.name})"
    return Result(spec.name, label, measured.value, measured.std,
                  spec.higher_is_better, layer, details)


def _interval(spec, inputs, opts: ScoreOptions, warnings: list) -> dict:
    """Bootstrap CI over the generated set (``geneval.metrics.bootstrap``); image metrics are not resampled."""
    from geneval.metrics.bootstrap import bootstrap_metric

    if spec.role == IMAGES_ROLE:
        warnings.append(f"--ci: {spec.name} reads images, not features, and has no bootstrap interval")
        return {}
    if spec.ci_caveat:  # declared where the metric is registered
        warnings.append(f"--ci: {spec.name}: {spec.ci_caveat}")
    interval = bootstrap_metric(spec, inputs, level=opts.ci, resamples=opts.ci_resamples, seed=opts.ci_seed)
    return interval.as_details()


def _version() -> str:
    from geneval import __version__

    return __version__
