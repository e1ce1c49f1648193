"""Weights resolution: explicit > env > cache > download (file:// only — tests never touch the network)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import pytest
import torch

import geneval.weights as weights
from geneval.errors import GenevalInputError
from geneval.features.inception import FIDInceptionV3, build
from geneval.weights import WeightsSpec, download, file_sha256, load_state_dict_file, resolve_weights

PAYLOAD = b"pretend these are weights\n" * 1000


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty $GENEVAL_CACHE, no weights env vars, and a URL that must not be used unless a test sets one."""
    root = tmp_path / "cache"
    monkeypatch.setenv("GENEVAL_CACHE", str(root))
    monkeypatch.delenv("GENEVAL_TEST_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_TEST_URL", (tmp_path / "no-such-file.pth").as_uri())
    return root


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "upstream" / "weights.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def spec_for(data: bytes = PAYLOAD) -> WeightsSpec:
    return WeightsSpec(filename="weights.pth", sha256=sha256_of(data), url="https://example.invalid/weights.pth",
                       env_path="GENEVAL_TEST_WEIGHTS", env_url="GENEVAL_TEST_URL", description="test weights")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_resolution_order(cache, tmp_path, monkeypatch, source):
    spec = spec_for()
    explicit = write(tmp_path / "explicit.pth", b"explicit")
    from_env = write(tmp_path / "env.pth", b"env")
    cached = write(cache / "weights" / "weights.pth", PAYLOAD)
    monkeypatch.setenv("GENEVAL_TEST_WEIGHTS", str(from_env))
    monkeypatch.setenv("GENEVAL_TEST_URL", source.as_uri())
    assert resolve_weights(spec, explicit).path == explicit
    assert resolve_weights(spec).path == from_env
    monkeypatch.delenv("GENEVAL_TEST_WEIGHTS")
    resolved = resolve_weights(spec)
    assert (resolved.path, resolved.sha256, resolved.official) == (cached, spec.sha256, True)
    cached.unlink()
    resolved = resolve_weights(spec, progress=False)
    assert (resolved.path, resolved.official) == (cached, True)
    assert cached.read_bytes() == PAYLOAD


def test_missing_explicit_file_is_named(cache, tmp_path):
    with pytest.raises(GenevalInputError, match="nothing-here.pth"):
        resolve_weights(spec_for(), tmp_path / "nothing-here.pth")


def test_download_lands_atomically_with_progress(cache, source, monkeypatch, capsys):
    monkeypatch.setenv("GENEVAL_TEST_URL", source.as_uri())
    resolved = resolve_weights(spec_for(), progress=True)
    assert resolved.path == cache / "weights" / "weights.pth" and resolved.path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in resolved.path.parent.iterdir()) == ["weights.pth"]  # no temporary left
    captured = capsys.readouterr()
    assert "downloading weights.pth" in captured.err and captured.out == ""


def test_corrupt_download_leaves_nothing(cache, source, monkeypatch):
    monkeypatch.setenv("GENEVAL_TEST_URL", source.as_uri())
    with pytest.raises(GenevalInputError, match="sha256") as err:
        resolve_weights(spec_for(b"the real file"), progress=False)
    assert "\n" not in str(err.value)
    folder = cache / "weights"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_download_function_checks_hash(tmp_path, source):
    dest = tmp_path / "out" / "w.pth"
    assert download(source.as_uri(), dest, sha256=sha256_of(PAYLOAD), progress=False) == dest
    with pytest.raises(GenevalInputError):
        download(source.as_uri(), tmp_path / "out" / "bad.pth", sha256="0" * 64, progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]


def test_offline_error_says_how_to_provide_the_file(cache, tmp_path):
    with pytest.raises(GenevalInputError) as err:
        resolve_weights(spec_for(), progress=False)
    message = str(err.value)
    assert "\n" not in message
    for hint in ("--weights PATH", "GENEVAL_TEST_WEIGHTS=PATH", str(cache / "weights" / "weights.pth")):
        assert hint in message, hint


def test_inception_offline_error(cache, monkeypatch, tmp_path):
    monkeypatch.delenv("GENEVAL_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_INCEPTION_URL", (tmp_path / "absent.pth").as_uri())
    with pytest.raises(GenevalInputError, match="GENEVAL_INCEPTION_WEIGHTS=PATH") as err:
        build()
    assert "pt_inception-2015-12-05-6726825d.pth" in str(err.value)


def test_unofficial_file_is_used_recorded_and_warned(cache, tmp_path, caplog):
    other = write(tmp_path / "other.pth", b"not the official bytes")
    with caplog.at_level(logging.WARNING, logger="geneval.weights"):
        resolved = resolve_weights(spec_for(), other)
    assert resolved.sha256 == sha256_of(b"not the official bytes") and not resolved.official
    assert "not the official" in caplog.text


def test_sha256_is_cached_per_path_size_mtime(tmp_path, monkeypatch):
    path = write(tmp_path / "w.bin", b"abc")
    expected = sha256_of(b"abc"), sha256_of(b"abcd")
    calls = []
    real_sha256 = hashlib.sha256

    def counting_sha256(*args):
        calls.append(1)
        return real_sha256(*args)

    monkeypatch.setattr(weights.hashlib, "sha256", counting_sha256)
    assert file_sha256(path) == file_sha256(path) == expected[0]
    assert len(calls) == 1
    path.write_bytes(b"abcd")
    os.utime(path, ns=(1, 1))  # a different size and mtime: hashed again
    assert file_sha256(path) == expected[1] and len(calls) == 2


def test_wrong_keys_are_named(tmp_path):
    good = FIDInceptionV3().state_dict()
    bad = {("Mixed_9z.conv.weight" if key == "Mixed_5b.branch1x1.conv.weight" else key): value
           for key, value in good.items()}
    path = tmp_path / "renamed.pth"
    torch.save(bad, path)
    with pytest.raises(GenevalInputError) as err:
        load_state_dict_file(path, FIDInceptionV3())
    message = str(err.value)
    assert str(path) in message and "Mixed_5b.branch1x1.conv.weight" in message and "Mixed_9z.conv.weight" in message


def test_wrong_shapes_are_named(tmp_path):
    state = FIDInceptionV3().state_dict()
    state["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "fc1000.pth"
    torch.save(state, path)
    with pytest.raises(GenevalInputError, match="fc.weight"):
        load_state_dict_file(path, FIDInceptionV3())


class NotAWeight:
    pass


def test_loading_is_weights_only(tmp_path):
    path = tmp_path / "pickle.pth"
    torch.save({"payload": NotAWeight()}, path)
    with pytest.raises(GenevalInputError, match="could not be read"):
        load_state_dict_file(path, FIDInceptionV3())
    garbage = write(tmp_path / "garbage.pth", b"\x00not a torch file")
    with pytest.raises(GenevalInputError, match="garbage.pth"):
        load_state_dict_file(garbage, FIDInceptionV3())


def test_num_batches_tracked_may_be_absent(tmp_path):
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old-format.pth"
    torch.save(state, path)
    load_state_dict_file(path, FIDInceptionV3())


def test_build_downloads_into_the_cache(cache, monkeypatch, fake_inception_weights):
    """The whole path through ``build``: a file:// download, verified against the (patched) official hash."""
    digest = file_sha256(fake_inception_weights)
    monkeypatch.setattr(weights, "INCEPTION_FID", dataclasses.replace(weights.INCEPTION_FID, sha256=digest))
    monkeypatch.delenv("GENEVAL_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_INCEPTION_URL", Path(fake_inception_weights).as_uri())
    extractor = build(progress=False)
    assert (cache / "weights" / "pt_inception-2015-12-05-6726825d.pth").is_file()
    assert extractor.info.weights_sha256 == digest


def test_build_from_env_records_the_actual_hash(cache, monkeypatch, fake_inception_weights):
    monkeypatch.setenv("GENEVAL_INCEPTION_WEIGHTS", str(fake_inception_weights))
    extractor = build()
    assert extractor.info.weights_sha256 == file_sha256(fake_inception_weights) != weights.INCEPTION_FID.sha256
    assert not (cache / "weights").exists()
