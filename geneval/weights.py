"""Finding, downloading and checking pretrained weight files (any extractor's, not only Inception's).

A ``WeightsSpec`` names one official file: its filename, sha256 and canonical URL, plus the environment
variables that point at a local copy or override the URL. ``resolve_weights(spec, path)`` looks, in order:

1. the explicit ``path`` (CLI ``--weights PATH``), else the path in ``spec.env_path``;
2. ``<cache>/weights/<filename>``, where ``<cache>`` is ``$GENEVAL_CACHE`` or ``~/.cache/geneval``;
3. a download from ``spec.env_url`` or the canonical URL into that cache path: streamed to a temporary file
   with a progress bar on stderr, sha256-checked, then renamed (a corrupt download leaves nothing behind).

Offline with no local file is a one-line ``GenevalInputError`` that says where to put the file. A local file
whose sha256 is not the official one is used (tests need fake weights) but logged as unofficial, and its
*actual* sha256 is what ``ResolvedWeights.sha256`` — and hence every result's provenance — records.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from geneval.errors import GenevalInputError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class WeightsSpec:
    filename: str
    sha256: str | None  # None: not pinned yet; never downloaded, a local file is used and its own sha256 recorded
    url: str
    env_path: str  # environment variable holding a local path, e.g. GENEVAL_INCEPTION_WEIGHTS
    env_url: str  # environment variable overriding the URL (tests use file://)
    description: str = "weights"


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    sha256: str  # of the file actually used: this is what provenance records
    official: bool  # sha256 == spec.sha256


INCEPTION_FID = WeightsSpec(
    filename="pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    env_path="GENEVAL_INCEPTION_WEIGHTS",
    env_url="GENEVAL_INCEPTION_URL",
    description="FID Inception weights (pytorch-fid's port of TF's inception-2015-12-05)",
)


def weights_dir() -> Path:
    """``$GENEVAL_CACHE/weights`` (default ``~/.cache/geneval/weights``); never inside the installed package."""
    return Path(os.environ.get("GENEVAL_CACHE") or Path.home() / ".cache" / "geneval") / "weights"


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (real path, size, mtime) so that a 92 MB file is hashed once."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with open(real, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(chunk)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def resolve_weights(spec: WeightsSpec, path: str | os.PathLike | None = None, *, progress: bool = True) -> ResolvedWeights:
    """The local file to load for ``spec``: explicit path > env var > cache > download (see module doc)."""
    if path is None and os.environ.get(spec.env_path):
        path, origin = os.environ[spec.env_path], f"${spec.env_path}"
    else:
        origin = "--weights"
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise GenevalInputError(f"{spec.description}: {path} (from {origin}) is not a file; expected {spec.filename}")
        return _checked(spec, path)
    cached = weights_dir() / spec.filename
    if cached.is_file():
        return _checked(spec, cached)
    if spec.sha256 is None:
        raise GenevalInputError(
            f"{spec.description}: geneval has no pinned sha256 for {spec.filename}, so it does not download it. "
            f"Download {spec.url} yourself, then pass --weights PATH, set {spec.env_path}=PATH, or copy it to {cached} "
            "(its sha256 is recorded in every result)"
        )
    url = os.environ.get(spec.env_url) or spec.url
    try:
        download(url, cached, sha256=spec.sha256, progress=progress)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise GenevalInputError(
            f"{spec.description} are not available offline and downloading {url} failed ({reason}). "
            f"Download {spec.filename} elsewhere, then pass --weights PATH, set {spec.env_path}=PATH, "
            f"or copy it to {cached}"
        ) from None
    return ResolvedWeights(cached, spec.sha256, True)


def _checked(spec: WeightsSpec, path: Path) -> ResolvedWeights:
    actual = file_sha256(path)
    official = actual == spec.sha256
    if spec.sha256 is None:
        log.warning("%s: no official sha256 is pinned for %s; results record this file's sha256 %s",
                    spec.description, spec.filename, actual[:12])
    elif not official:
        log.warning(
            "%s is not the official %s (sha256 %s, expected %s); results will record its own sha256 and are "
            "not comparable with published numbers", path, spec.filename, actual[:12], spec.sha256[:12],
        )
    return ResolvedWeights(path, actual, official)


def download(url: str, dest: str | os.PathLike, *, sha256: str, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its sha256; a mismatch deletes it and raises."""
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                      file=sys.stderr, disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise GenevalInputError(
                f"downloaded {url} has sha256 {digest.hexdigest()}, expected {sha256}; the partial file was "
                f"deleted; retry, or download it yourself to {dest}"
            )
        os.replace(tmp, dest)
        log.info("downloaded %s to %s", url, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def load_plain(path: str | os.PathLike, *, what: str = "file") -> object:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors, numbers, strings, lists, tuples and dicts only.

    Unpickling anything else can run code (an object's ``__reduce__``), so a file someone sent you that holds
    such an object is refused with one line naming it and the global it asked for; so is a file torch cannot read.
    """
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only met a global it does not allow
        lines = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "global" in line]
        reason = (lines[0] if lines else str(err).splitlines()[0]).split(". Please use")[0]  # not the allowlist tip
        raise GenevalInputError(f"{what}: {path} could not be read: it holds pickled Python objects, not only tensors "
                                f"and plain data, and loading it with weights_only=True refuses to run code ({reason})") from None
    except Exception as err:  # zip and format errors: not a torch file
        first = str(err).splitlines()[0] if str(err) else ""
        raise GenevalInputError(f"{what}: {path} could not be read as a PyTorch file ({type(err).__name__}: {first})") from None


def load_state_dict_file(path: str | os.PathLike, module: nn.Module, *, what: str = "weights") -> None:
    """Load a state-dict file into ``module`` with ``weights_only=True``; wrong keys/shapes name the file.

    ``*.num_batches_tracked`` entries (BatchNorm's training counter, unused in inference) may be absent.
    """
    state = load_plain(path, what=what)
    if not isinstance(state, dict):
        raise GenevalInputError(f"{what}: {path} holds a {type(state).__name__}, expected a state dict")
    load_state_dict(state, module, path=path, what=what)


def load_state_dict(state: dict, module: nn.Module, *, path: str | os.PathLike, what: str = "weights") -> None:
    """``module.load_state_dict(state)`` with every key checked; ``path`` names the file in errors."""
    expected = set(module.state_dict())
    optional = {key for key in expected if key.endswith("num_batches_tracked")}
    missing = sorted(expected - optional - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise GenevalInputError(
            f"{what}: {path} does not fit {type(module).__name__}: {len(missing)} missing keys "
            f"{_few(missing)}, {len(unexpected)} unexpected keys {_few(unexpected)}"
        )
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise GenevalInputError(f"{what}: {path} does not fit {type(module).__name__}: {err}") from None


def _few(keys: list[str], limit: int = 4) -> str:
    if not keys:
        return "[]"
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', …' if len(keys) > limit else ''}]"
