"""The ``geneval`` command line. Results go to stdout, progress bars and logs to stderr."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from geneval.errors import GenevalInputError


def _parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}; expected HxW, e.g. 32x32") from None
    return height, width


def _write_output(path: str, write) -> None:
    """Run ``write()`` (an atomic write of ``path``); a full disk or a read-only folder is one line, not a traceback."""
    try:
        write()
    except OSError as error:
        reason = error.strerror or str(error)
        raise GenevalInputError(f"cannot write {path} ({reason}); any previous {path} is unchanged") from None


class _UserErrors(click.Group):
    """Turn a user's mistake into one line on stderr and exit status 2, instead of a traceback."""

    def invoke(self, ctx):
        try:
            result = super().invoke(ctx)
        except GenevalInputError as error:
            _leave_process_group(finished=False)
            click.echo(f"Error: {error}", err=True)
            ctx.exit(2)
        except BaseException:
            _leave_process_group(finished=False)
            raise
        _leave_process_group(finished=True)
        return result


def _leave_process_group(*, finished: bool) -> None:
    """Leave a torchrun process group cleanly (nothing to do in one process)."""
    if "torch.distributed" in sys.modules:
        from geneval.distributed import shutdown

        shutdown(finished=finished)


@click.group(cls=_UserErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="geneval")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Measure generative models honestly and comparably.

    \b
    Examples:
      geneval score samples/ --ref fashion-mnist:train
      geneval score samples.npz --ref cifar10:train --features inception-v3-fid --metrics fid,kid --json
      geneval stats cifar10:train -o cifar10_train_inception.npz
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _common_feature_options(command):
    options = [
        click.option("--features", metavar="NAME", default=None,
                     help="Feature extractor (default: the reference dataset's domain network, else inception-v3-fid)."),
        click.option("--mode", type=click.Choice(["tf", "pytorch-fid"]), default=None,
                     help="Inception preprocessing: tf (TTUR/torch-fidelity, default) or pytorch-fid (legacy)."),
        click.option("--weights", metavar="PATH", default=None, help="Extractor weights file (else $GENEVAL_INCEPTION_WEIGHTS, cache, download)."),
        click.option("--batch-size", type=click.IntRange(1, 4096), default=None, metavar="B",
                     help="Images per forward pass (default: the extractor's: 64 Inception, 500 domain nets)."),
        click.option("--no-cache", is_flag=True, help="Do not read or write the reference feature cache."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bars."),
        click.option("--device", default="auto", show_default=True, metavar="DEV",
                     help="auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each rank its local GPU."),
        click.option("--fast", is_flag=True,
                     help="Allow TF32 on CUDA (faster; features differ from the CPU's beyond float32 rounding)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _distributed(device: str):
    """Resolve ``--device`` and, under torchrun (WORLD_SIZE > 1), join the process group: ``(device, ctx)``."""
    from geneval import distributed

    resolved = distributed.resolve_device(device)
    return resolved, distributed.init(resolved)


def _shared_metric_options(command):
    """Options every metric may read (ScoreOptions fields); a metric's own are built by ``_ScoreCommand``."""
    options = [
        click.option("--heldout", metavar="REF", default=None,
                     help="memorisation: real samples the model never saw, e.g. fashion-mnist:test."),
        click.option("--targets", metavar="TARGETS", default=None,
                     help="l1, psnr, ssim, target_agreement: target i of sample i (two folders pair by file name, "
                          "anything else by index), e.g. fashion-mnist:test."),
        click.option("--out-dir", metavar="DIR", default=None,
                     help="Write files for a person to look at here (memorisation_pairs.png)."),
        click.option("--ci", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None, metavar="LEVEL",
                     help="Bootstrap confidence interval for every metric, e.g. 0.95 (resamples the generated set)."),
        click.option("--ci-resamples", type=click.IntRange(2), default=100, show_default=True),
        click.option("--ci-seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _param_option(param) -> click.Option:
    """The ``geneval score`` option of a metric's ``Param``: a flag for a bool, else a typed, bounded value."""
    if param.type is bool:
        return click.Option([param.option, param.name], is_flag=True, default=param.default, help=param.help)
    click_type = {int: click.INT, float: click.FLOAT, str: click.STRING}[param.type]
    if param.min is not None or param.max is not None:
        range_type = click.IntRange if param.type is int else click.FloatRange
        click_type = range_type(param.min, param.max, min_open=param.open_bounds, max_open=param.open_bounds)
    return click.Option([param.option, param.name], type=click_type, default=param.default, metavar=param.metavar,
                        show_default=param.default is not None, help=param.help)


class _ScoreCommand(click.Command):
    """``geneval score`` with one option per registered metric parameter, read from the registry each time the
    command parses or prints its help, so a metric registered after this module (a plugin's, a test's) has its
    option too."""

    def get_params(self, ctx):
        from geneval.metrics import declared_params

        *own, help_option = super().get_params(ctx)  # click puts --help last
        return [*own, *(_param_option(p) for p in declared_params().values()), help_option]


@main.command(cls=_ScoreCommand)
@click.argument("samples")
@click.option("--ref", metavar="REF", default=None,
              help="Reference: a folder/.npz/.npy/file.h5:dataset, a named dataset like cifar10:train, or a mu/sigma .npz.")
@click.option("--metrics", "metric_names", default="fid,is,kid", show_default=True, metavar="LIST",
              help="Comma-separated metrics.")
@_common_feature_options
@click.option("--num", "--num-samples", "num", type=click.IntRange(2), default=None, metavar="N",
              help="Use the first N samples (--num-samples under torchrun, whose parser takes --num for its own).")
@click.option("--num-ref", type=click.IntRange(2), default=None, metavar="N", help="Use the first N reference images.")
@click.option("--range", "value_range", type=click.Choice(["0,1", "-1,1", "0,255"]), default=None,
              help="Value range of float arrays (required for float inputs).")
@click.option("--resize", metavar="HxW", default=None, help="Resize images of mixed sizes to HxW (PIL bicubic).")
@click.option("--seed", type=int, default=2020, show_default=True,
              help="Seed of random draws: KID's subsets, NDB's k-means, FD∞'s subsets, MS-SSIM's pairs.")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON record on stdout instead of a table.")
@click.option("-o", "--out", metavar="PATH", default=None, help="Also write the JSON record to PATH.")
@_shared_metric_options
def score(samples, ref, metric_names, features, mode, weights, batch_size, no_cache, quiet, device, fast, num, num_ref,
          value_range, resize, seed, heldout, targets, out_dir, ci, ci_resamples, ci_seed, as_json, out, **metric_params):
    """Score SAMPLES (a folder, .npz, .npy, file.h5:dataset or named dataset) against --ref.

    \b
    Examples:
      geneval score samples/ --ref fashion-mnist:train
      geneval score fake.npz --ref real_images/ --features inception-v3-fid --weights pt_inception.pth
      geneval score fake.npy --range -1,1 --ref ref_stats.npz --metrics fid --json
      geneval score fake.npz --ref fashion-mnist:train --metrics precision,recall,density,coverage,intra_fid --ci 0.95
      geneval score fake.npz --ref fashion-mnist:train --heldout fashion-mnist:test --metrics memorisation --out-dir out/
      geneval score fake.npz --features stacked-mnist-cnn --metrics modes,modes_kl
      geneval score outputs/ --targets targets/ --metrics l1,psnr,ssim
      geneval score outputs.npz --targets fashion-mnist:test --metrics ssim,target_agreement,classifier_agreement
      torchrun --nproc_per_node=2 -m geneval score fake.npz --ref cifar10:train --device cuda
    """
    from geneval.atomic import write_text_atomic
    from geneval.evaluate import ScoreOptions, score as run_score

    options = ScoreOptions(
        metrics=tuple(m.strip().lower() for m in metric_names.split(",") if m.strip()),
        features=features, mode=mode, weights=weights, num=num, num_ref=num_ref, batch_size=batch_size, seed=seed,
        heldout=heldout, targets=targets, out_dir=out_dir, ci=ci, ci_resamples=ci_resamples, ci_seed=ci_seed,
        use_cache=not no_cache, progress=not quiet, params=metric_params, device=str(_distributed(device)[0]), fast=fast,
    )
    record = run_score(samples, ref, options=options, value_range=value_range, resize=_parse_size(resize))
    if record is None:  # a torchrun rank other than 0: rank 0 prints and writes
        return
    for warning in record.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(record.to_json() if as_json else record.table())  # shown even if writing -o fails below
    if out:
        _write_output(out, lambda: write_text_atomic(out, record.to_json() + "\n"))


@main.command("prd-plot")
@click.argument("curves", nargs=-1, required=True, metavar="CURVE.npz...")
@click.option("-o", "--out", metavar="PNG", required=True, help="The plot to write (.png).")
@click.option("--labels", metavar="LIST", default=None,
              help="Comma-separated legend labels, one per curve (default: each curve's folder name).")
@click.option("--json", "as_json", is_flag=True, help="Print the curves' summaries as JSON.")
def prd_plot(curves, out, labels, as_json):
    """Draw the PRD curves of several scored models on one PNG (Sajjadi et al. 2018, Fig. 1 style).

    Each CURVE is the prd_curve.npz that `geneval score --metrics prd_f8 --out-dir DIR` writes. The models'
    F8 / F1/8 go to stdout; curves clustered with different settings are drawn but flagged on stderr.

    \b
    Examples:
      geneval score dcgan.npz --ref fashion-mnist:test --metrics prd_f8,prd_f1_8 --out-dir out/dcgan
      geneval score vae.npz --ref fashion-mnist:test --metrics prd_f8,prd_f1_8 --out-dir out/vae
      geneval prd-plot out/dcgan/prd_curve.npz out/vae/prd_curve.npz --labels DCGAN,VAE -o prd.png
    """
    from geneval.metrics.prd import load_prd_curve, plot_prd
    from geneval.results import align_columns

    names = [n.strip() for n in labels.split(",")] if labels is not None else [Path(c).parent.name or c for c in curves]
    if len(names) != len(curves):
        raise GenevalInputError(f"--labels has {len(names)} labels for {len(curves)} curves; expected one per curve")
    if len(set(names)) != len(names) or "" in names:
        raise GenevalInputError(f"--labels {', '.join(map(repr, names))}: expected distinct, non-empty labels "
                                "(the default, folder names, repeat: pass --labels)")
    if Path(out).suffix.lower() != ".png":
        raise GenevalInputError(f"-o {out}: expected a .png path")
    loaded = {name: load_prd_curve(path) for name, path in zip(names, curves)}  # every file checked before drawing
    settings = {name: (c.num_clusters, c.num_runs, c.num_used, len(c.precision)) for name, c in loaded.items()}
    if len(set(settings.values())) > 1:
        listed = "; ".join(f"{n}: {s[0]} clusters, {s[1]} runs, {s[2]} samples, {s[3]} angles" for n, s in settings.items())
        click.echo(f"warning: the curves were computed with different settings ({listed}); "
                   "their shapes compare only roughly", err=True)
    _write_output(out, lambda: plot_prd(loaded, out))
    rows = [{"label": n, "f8": c.f_beta, "f1_8": c.f_beta_inv, "num_used": c.num_used, "num_clusters": c.num_clusters,
             "curve": str(path)} for (n, c), path in zip(loaded.items(), curves)]
    if as_json:
        click.echo(json.dumps({"out": out, "curves": rows}, indent=2))
        return
    cells = [("model", "F8 (recall)", "F1/8 (precision)", "samples", "curve")]
    cells += [(r["label"], f"{r['f8']:.4f}", f"{r['f1_8']:.4f}", str(r["num_used"]), r["curve"]) for r in rows]
    click.echo(align_columns(cells))


@main.command()
@click.argument("ref")
@click.option("-o", "--out", metavar="PATH", required=True, help="Output .npz (mu, sigma, count, provenance).")
@click.option("--layer", default=None, metavar="NAME", help="Extractor layer (default: the one FID uses).")
@click.option("--num", "--num-samples", "num", type=click.IntRange(2), default=None, metavar="N",
              help="Use the first N images (--num-samples under torchrun).")
@_common_feature_options
def stats(ref, out, layer, num, features, mode, weights, batch_size, no_cache, quiet, device, fast):
    """Write reference statistics of REF (mu, sigma) as a TTUR/pytorch-fid compatible .npz.

    \b
    Examples:
      geneval stats cifar10:train -o cifar10_train.npz --features inception-v3-fid
      geneval stats real_images/ -o real.npz --mode pytorch-fid
      torchrun --nproc_per_node=4 -m geneval stats cifar10:train -o cifar10_train.npz --device cuda
    """
    from geneval import distributed
    from geneval.evaluate import ScoreOptions, build_extractor, default_extractor, open_reference, reference_features
    from geneval.stats_io import write_stats_npz

    source = open_reference(ref, num_ref=num, num_option="--num")  # cheap checks before any weights are resolved
    resolved, ctx = _distributed(device)
    precision = distributed.set_precision(fast=fast)
    extractor = build_extractor(features or default_extractor(ref), mode=mode, weights=weights, device=str(resolved))
    layer = layer or extractor.default_layer("fid")
    if layer not in extractor.info.layers:
        raise GenevalInputError(f"layer {layer!r} is not one of {sorted(extractor.info.layers)}")
    options = ScoreOptions(num_ref=num, batch_size=batch_size, use_cache=not no_cache, progress=not quiet)
    feature_set, info = reference_features(source, extractor, (layer,), options, needs_features=False)
    if ctx is not None and not ctx.is_main:
        return
    provenance = {**extractor.info.as_dict(), "layer": layer, "reference": info,
                  "compute": {"device": str(resolved), "precision": precision,
                              "processes": ctx.world_size if ctx is not None else 1}}
    _write_output(out, lambda: write_stats_npz(out, feature_set.gaussian(layer), provenance))
    click.echo(json.dumps({"out": out, "count": feature_set.count, "layer": layer, **extractor.info.as_dict(),
                           "reference_cache": info.get("cache")}))


@main.command()
@click.option("--out", "out_dir", metavar="DIR", default="out/quickstart", show_default=True,
              help="Where records.json and samples.png go.")
@click.option("--num", type=click.IntRange(2), default=None, metavar="N", help="Use the first N test images.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table (as in the README) instead of plain text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def quickstart(out_dir, num, markdown, quiet):
    """Score Fashion-MNIST test images and degraded copies against the train split, offline.

    \b
    Examples:
      geneval quickstart
      geneval quickstart --num 2000 --markdown
    """
    from pathlib import Path

    from geneval.quickstart import markdown_table, run_quickstart, table_cells
    from geneval.results import align_columns

    rows = run_quickstart(out_dir=Path(out_dir), num=num, progress=not quiet)
    click.echo(markdown_table(rows) if markdown else align_columns(table_cells(rows)))
    click.echo(f"\nreference: {rows[0]['reference_cache']} (first condition); "
               f"records: {Path(out_dir) / 'records.json'}; grid: {Path(out_dir) / 'samples.png'}", err=True)


@main.command()
@click.argument("checkpoint")
@click.option("--split", metavar="SPLIT", default=None,
              help="Data to evaluate (a dataset split like fashion-mnist:test, a folder, .npz...); "
                   "default: the test split of the dataset the checkpoint was trained on.")
@click.option("--num", type=click.IntRange(2), default=None, metavar="N", help="Use the first N examples.")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True, metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON result.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def likelihood(checkpoint, split, num, batch_size, as_json, quiet):
    """Test negative log-likelihood (nats, bits/dim) of a trained likelihood model's CHECKPOINT.

    The checkpoint records its family; the family's loader (entry-point group ``geneval.likelihood``)
    rebuilds the model, which declares its kind (exact, elbo, iwae-K, vlb) and data convention.

    \b
    Examples:
      geneval likelihood runs/pixelcnn-bmnist/checkpoint.pt
      geneval likelihood runs/vae-fmnist/checkpoint.pt --split fashion-mnist:test --json
    """
    from geneval.likelihood import evaluate, load_model

    model = load_model(checkpoint)
    split = split or getattr(model, "default_split", None)
    if split is None:
        raise GenevalInputError(f"{checkpoint}: no default split recorded; pass --split, e.g. fashion-mnist:test")
    result = evaluate(model, split, num=num, batch_size=batch_size, progress=not quiet)
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else result.line())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def datasets(as_json):
    """List the named datasets, where each split was found on this machine, and how to get missing ones.

    \b
    Search order: $GENEVAL_DATA, $GENEVAL_SHARED_DATASETS or ../shared/datasets, /usr/share/datasets
    (Debian's dataset-fashion-mnist), ~/.cache/geneval/data; GENEVAL_DOWNLOAD=1 lets torchvision download.
    \b
    Examples:
      geneval datasets
      geneval score samples/ --ref fashion-mnist:test
    """
    from geneval.datasets import list_datasets
    from geneval.results import align_columns

    rows = list_datasets()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cells = [("name", "C×H×W", "classes", "default extractor", "targets", "train", "test")]
    for row in rows:  # targets: a paired task's target dataset (item i of its split is the target of item i)
        cells.append((row["name"], "×".join(map(str, row["shape"])), str(row["num_classes"]),
                      row["default_extractor"] or "inception-v3-fid", row["target"] or "–",
                      row["found"]["train"] or "missing", row["found"]["test"] or "missing"))
    click.echo(align_columns(cells))
    for row in rows:
        if not all(row["found"].values()):
            click.echo(f"\n{row['name']}: {row['how_to_get']}")


@main.command("metrics")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_metrics(as_json):
    """List the metrics `geneval score --metrics` accepts: direction, what each needs, its reference
    (and, with --json, its parameters: the `geneval score` options it reads).

    \b
    Examples:
      geneval metrics
      geneval score samples/ --ref fashion-mnist:train --metrics fid,precision,recall,intra_fid
    """
    from geneval.metrics import METRICS
    from geneval.metrics.base import better_side
    from geneval.results import align_columns

    specs = [METRICS.get(name) for name in METRICS]
    rows = [{"name": s.name, "label": s.label, "better": better_side(s.higher_is_better),
             "needs": ", ".join(need for need, flag in (("reference", s.needs_reference), ("labels", s.needs_labels),
                                                         ("heldout", s.needs_heldout), ("targets", s.needs_targets))
                                if flag) or "-",
             "layer_role": s.role, "reference": s.reference,
             "params": {p.name: {"option": p.option, "type": p.type.__name__, "default": p.default, "help": p.help}
                        for p in s.params}} for s in specs]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cells = [("name", "better", "needs", "layer role", "paper / reference implementation")]
    cells += [(r["name"], r["better"], r["needs"], r["layer_role"], r["reference"]) for r in rows]
    click.echo(align_columns(cells))


def _add_plugin_commands() -> None:
    """Commands other packages register under the ``geneval.cli`` entry-point group (``geneval train``)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="geneval.cli"):
        if entry.name not in main.commands:
            try:
                main.add_command(entry.load(), entry.name)
            except ImportError as error:  # a broken optional plugin must not take the metrics CLI down
                logging.getLogger(__name__).warning("geneval %s is unavailable: %s", entry.name, error)


_add_plugin_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
