"""The end-to-end ``score`` call on in-memory inputs (pixels extractor): invariances and provenance."""

import json

import numpy as np
import pytest
import torch

from geneval import GaussianStats, fid, score
from geneval.errors import GenevalInputError
from geneval.stats_io import write_stats_npz


def _images(seed, n=60, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120 + shift, 50, size=(n, 3, 4, 4)), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))


def test_results_do_not_depend_on_batch_size():
    gen, ref = _images(0), _images(1, shift=20)
    common = dict(metrics=("fid", "kid"), features="pixels", kid_subsets=7, progress=False, use_cache=False)
    small, large = score(gen, ref, batch_size=7, **common), score(gen, ref, batch_size=64, **common)
    for metric in ("fid", "kid"):
        assert small[metric].value == pytest.approx(large[metric].value, rel=1e-10)


def test_float_generator_callable_is_quantised_once_and_seeded_per_sample():
    def generator(num, seed):
        out = [torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(seed + j)) * 2 - 1 for j in range(num)]
        return torch.stack(out)

    uint8 = torch.stack([torch.floor((generator(1, j)[0] + 1) * 127.5 + 0.5).clamp(0, 255) for j in range(40)])
    uint8 = uint8.to(torch.uint8).numpy()
    ref = _images(2, n=40)
    opts = dict(metrics=("fid",), features="pixels", progress=False, use_cache=False)
    from_fn = score(generator, ref, num=40, value_range="-1,1", batch_size=9, **opts)
    from_array = score(uint8, ref, **opts)
    assert from_fn["fid"].value == pytest.approx(from_array["fid"].value, rel=1e-8)  # batch 9 vs 64: rounding only
    assert from_fn.provenance["samples"]["fingerprint"] == from_array.provenance["samples"]["fingerprint"]


def test_record_names_how_it_was_measured():
    record = score(_images(3), _images(4), metrics=("fid", "kid"), features="pixels", kid_subsets=3, progress=False)
    data = json.loads(record.to_json())
    assert data["provenance"]["extractor"] == {
        "extractor": "pixels", "weights_sha256": "none", "mode": "native", "layers": {"fid": "pixels", "kid": "pixels"}
    }
    assert data["provenance"]["reference"]["feature_passes"] == 1
    assert data["results"][1]["details"]["subset_size"] == 60 and data["results"][1]["details"]["seed"] == 2020
    assert "FID (pixels)" in record.table()


def test_stats_file_reference(tmp_path):
    gen, ref = _images(5), _images(6, n=80)
    features = ref.reshape(len(ref), -1).astype(np.float32) / np.float32(255)  # as the pixels extractor computes
    path = write_stats_npz(tmp_path / "ref.npz", GaussianStats.from_features(features), {"extractor": "pixels"})
    record = score(gen, str(path), metrics=("fid",), features="pixels", progress=False)
    assert record["fid"].value == pytest.approx(fid(gen.reshape(len(gen), -1).astype(np.float32) / np.float32(255), features), rel=1e-9)
    with pytest.raises(GenevalInputError, match="only mu/sigma statistics; KID"):
        score(gen, str(path), metrics=("kid",), features="pixels", progress=False)
    other = write_stats_npz(tmp_path / "inc.npz", GaussianStats.from_features(features), {"extractor": "mnist-cnn"})
    with pytest.raises(GenevalInputError, match="computed with extractor 'mnist-cnn'"):
        score(gen, str(other), metrics=("fid",), features="pixels", progress=False)


def test_requests_that_cannot_work_fail_before_any_pass():
    with pytest.raises(GenevalInputError, match="need a reference"):
        score(_images(7), None, metrics=("fid",), features="pixels", progress=False)
    with pytest.raises(GenevalInputError, match="unknown metric 'fdi'"):
        score(_images(7), _images(8), metrics=("fdi",), features="pixels", progress=False)
