"""Metric parameters declared at registration: CLI options, provenance, and the per-call cache of shared results."""

from __future__ import annotations

import dataclasses
import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from geneval import prdc, score
from geneval.cli import main
from geneval.evaluate import ScoreOptions
from geneval.metrics import METRICS, MetricCache, MetricSpec, MetricValue, Param, declared_params, register_metric


def _images(seed, n=30, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120 + shift, 50, size=(n, 3, 4, 4)), 0, 255).astype(np.uint8)


def _score_options() -> dict[str, click.Parameter]:
    command = main.commands["score"]
    return {p.name: p for p in command.get_params(click.Context(command))}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def toy_metrics():
    """Two toy metrics registered here and nowhere else: ``toy`` (parameter ``toy_scale``) and ``toy_twin``.

    Each returns ``toy_scale ×`` the number of toy computations so far in its scoring call's cache, so the
    values show whether the cache is shared within a call and fresh across calls."""

    def compute(inputs):
        calls = inputs.cache.get(("toy calls",), list)
        calls.append(inputs.params["toy_scale"])
        return MetricValue(inputs.params["toy_scale"] * len(calls), None, {"mean": float(inputs.gen_features().mean())})

    scale = Param("toy_scale", float, 1.0, "toy: factor of the value.", min=0)
    names = ("toy", "toy_twin")
    for name in names:
        register_metric(MetricSpec(name, name.title(), higher_is_better=True, needs_reference=False,
                                   reference_needs_features=False, compute=compute, layer_role="fid", params=(scale,)))
    yield names
    for name in names:
        METRICS._entries.pop(name)  # the registry has no removal: metrics are registered once, at import


def test_every_declared_param_is_a_score_option_with_its_default():
    options = _score_options()
    declared = declared_params()
    assert {"k_pr", "k_dc", "prdc_strict", "kid_subsets", "kid_subset_size", "is_splits", "ndb_bins", "ndb_alpha",
            "fd_inf_points", "memorisation_quantile", "ms_ssim_pairs", "min_per_class"} <= set(declared)
    for name, param in declared.items():
        assert name in options, name
        assert param.option in options[name].opts
        assert options[name].default == param.default and options[name].help == param.help
        assert options[name].is_flag == (param.type is bool)
    # A metric parameter never shadows a shared option (one name, one meaning).
    shared = {f.name for f in dataclasses.fields(ScoreOptions)}
    assert not shared & set(declared)
    listed = {row["name"]: row["params"] for row in json.loads(CliRunner().invoke(main, ["metrics", "--json"]).output)}
    assert listed["kid"]["kid_subsets"] == {"option": "--kid-subsets", "type": "int", "default": 100,
                                            "help": declared["kid_subsets"].help}
    help_text = CliRunner().invoke(main, ["score", "--help"], terminal_width=200).output
    for param in declared.values():
        assert param.option in help_text and param.help in help_text


def test_cli_bounds_come_from_the_declaration(tmp_path):
    np.save(tmp_path / "gen.npy", _images(0).transpose(0, 2, 3, 1))
    result = CliRunner().invoke(main, ["score", str(tmp_path / "gen.npy"), "--ref", str(tmp_path / "gen.npy"),
                                       "--ndb-alpha", "1.5"])
    assert result.exit_code == 2 and "--ndb-alpha" in result.output


def test_a_metric_registered_elsewhere_gets_its_option_and_provenance(toy_metrics, tmp_path):
    gen = _images(0)
    np.save(tmp_path / "gen.npy", gen.transpose(0, 2, 3, 1))
    runner = CliRunner()
    assert "--toy-scale" in runner.invoke(main, ["score", "--help"]).output
    result = runner.invoke(main, ["score", str(tmp_path / "gen.npy"), "--features", "pixels", "--metrics", "toy",
                                  "--toy-scale", "2.5", "--json", "-q"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["provenance"]["metric_params"] == {"toy": {"toy_scale": 2.5}}
    assert record["results"][0]["value"] == 2.5
    # The Python API takes it as a keyword too; a name no metric declares is refused.
    assert score(gen, metrics=("toy",), features="pixels", toy_scale=4.0, progress=False)["toy"].value == 4.0
    with pytest.raises(TypeError, match="toy_scael"):
        score(gen, metrics=("toy",), features="pixels", toy_scael=4.0, progress=False)


def test_the_cache_is_shared_within_a_call_and_not_between_calls(toy_metrics):
    gen = _images(0)
    for _ in range(2):  # the second call starts from an empty cache: same values
        record = score(gen, metrics=toy_metrics, features="pixels", progress=False)
        assert [r.value for r in record.results] == [1.0, 2.0]


def test_prdc_is_right_when_one_reference_is_scored_against_two_generated_sets():
    ref = _images(1)
    names = ("precision", "recall", "density", "coverage")
    for seed in (2, 3):
        gen = _images(seed, shift=10 * seed)
        record = score(gen, ref, metrics=names, features="pixels", progress=False, use_cache=False)
        flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)  # noqa: E731
        expected = prdc(flat(gen), flat(ref))
        assert [record[n].value for n in names] == [getattr(expected, n) for n in names]


def test_a_resample_keeps_reference_entries_only():
    cache = MetricCache()
    cache.get("radii", lambda: "ref", reference_only=True)
    cache.get("values", lambda: "gen")
    again = cache.resampled()
    assert again.get("radii", lambda: "recomputed", reference_only=True) == "ref"
    assert again.get("values", lambda: "recomputed") == "recomputed"
    assert cache.get("values", lambda: "other") == "gen"


def test_shared_parameters_must_be_declared_alike():
    clash = Param("k_pr", int, 7, "another k.")
    spec = MetricSpec("clash", "Clash", higher_is_better=True, needs_reference=False, reference_needs_features=False,
                      compute=lambda inputs: MetricValue(0.0), params=(clash,))
    with pytest.raises(ValueError, match="k_pr"):
        register_metric(spec)
    assert "clash" not in METRICS
