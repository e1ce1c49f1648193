"""Paired targets for image-to-image metrics: target i belongs to sample i.

``geneval score outputs/ --targets targets/ --metrics l1,psnr,ssim`` compares each output with its target. The
targets are opened like any input (a folder, .npz, .npy, file.h5:dataset, a named dataset such as
``fashion-mnist:test``) and checked before anything is computed:

* two folders pair by file name: the same relative paths, extensions aside (``a/1.png`` ↔ ``a/1.jpg``); both
  are read in sorted order, so pairing by name is pairing by index once the names agree;
* anything else pairs by index: the counts must be equal, or, with ``--num N``, the first N of each are paired;
* a sample and its target must have the same shape (channels, height, width).

A mismatch is one line naming both inputs and what was found.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from geneval.errors import GenevalInputError
from geneval.sources import Source, open_source
from geneval.sources.folder import FolderSource


def open_targets(spec, samples: Source, *, metrics: list[str], num: int | None, value_range=None) -> Source:
    """The targets of ``samples`` as a Source of the same length, ``aligned_by`` "file name" or "index"."""
    if spec is None:
        raise GenevalInputError(f"{', '.join(metrics)} compare(s) each sample with its target; expected --targets "
                                "(a folder, .npz, .npy or named dataset such as fashion-mnist:test) with one target "
                                "per sample")
    targets = open_source(spec, value_range=value_range)
    if isinstance(samples, FolderSource) and isinstance(targets, FolderSource):
        _check_names(samples, targets)
        targets.aligned_by = "file name"
    else:
        targets.aligned_by = "index"
    if num is None and len(targets) != samples.available:
        raise GenevalInputError(f"{targets.name} has {len(targets)} targets and {samples.name} has "
                                f"{samples.available} samples; expected one target per sample (paired by "
                                f"{targets.aligned_by})")
    if len(targets) < len(samples):
        raise GenevalInputError(f"{targets.name} has {len(targets)} targets for the first {len(samples)} samples of "
                                f"{samples.name} (--num); expected at least {len(samples)}")
    targets.take(len(samples), option="--num")
    if tuple(targets.image_shape) != tuple(samples.image_shape):
        raise GenevalInputError(f"{targets.name}: targets of shape {list(targets.image_shape)} but samples of "
                                f"{samples.name} are {list(samples.image_shape)}; expected the same C×H×W")
    return targets


def _check_names(samples: FolderSource, targets: FolderSource) -> None:
    def stems(source: FolderSource) -> list[str]:
        return [str(PurePosixPath(name).with_suffix("")) for name in source.item_names()]

    ours, theirs = stems(samples), stems(targets)
    if ours == theirs[:len(ours)]:  # the counts are checked next (with --num, the first N of each)
        return
    missing = next((name for name in ours if name not in set(theirs)), None)
    extra = next((name for name in theirs if name not in set(ours)), None)
    what = (f"{samples.name}/{missing}.* has no target of that name" if missing is not None
            else f"{targets.name}/{extra}.* has no sample of that name")
    raise GenevalInputError(f"{what} ({len(ours)} samples, {len(theirs)} targets); expected the same file names "
                            "in both folders")
