"""The family contract (``geneval.family``): a family defined only in ``tests/toy_family.py`` runs through the real
``geneval leaderboard run`` and ``build`` with its own columns, option and metric; registration checks the
contract; and the leaderboard core names no family's switch, option or metric."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneval import family
from geneval.family import EvalOption, Family, RecordedMetric

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
GENEVAL = str(Path(sys.executable).parent / "geneval")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GENEVAL_TRAINERS": "toy_family:TOY",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}

SPEC = """
[table]
name = "toy"
title = "A family that lives in tests/"
trainer = "toy-pixels"
preset = "categorical"
budget = "smoke"
dataset = "fashion-mnist"
seeds = [0, 1]

[evaluation]
reference = "fashion-mnist:test"
features = "pixels"
num_samples = 64
metrics = ["fid", "kid"]

[columns]
show = ["smoothing", "temperature", "params_m.total"]
metrics = ["fid", "pixel_bits_per_dim"]
which = ["final"]

[[rows]]
name = "alpha 1"
baseline = true

[[rows]]
name = "alpha 1, T 0.5"
extends = "alpha 1"
temperature = 0.5

[[rows]]
name = "alpha 1000"
smoothing = 1000.0

[[findings]]
claim = "Heavy smoothing costs likelihood"
row = "alpha 1000"
metric = "pixel_bits_per_dim"
expect = "worse"
"""


@pytest.fixture(scope="module")
def toy_table(tmp_path_factory) -> Path:
    from geneval.datasets import DATASETS

    try:
        DATASETS.get("fashion-mnist").find("train").path
    except AttributeError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)")
    tmp = tmp_path_factory.mktemp("toy")
    (tmp / "leaderboards" / "specs").mkdir(parents=True)
    spec = tmp / "leaderboards" / "specs" / "toy.toml"
    spec.write_text(SPEC)
    done = subprocess.run([GENEVAL, "leaderboard", "run", str(spec), "--runs-dir", str(tmp / "runs")],
                          capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    again = subprocess.run([GENEVAL, "leaderboard", "build", str(spec)], capture_output=True, text=True, env=ENV,
                           timeout=300, cwd=tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    return tmp


def test_a_family_from_tests_runs_through_leaderboard_run_and_build(toy_table):
    tables = toy_table / "leaderboards" / "tables"
    table = (tables / "toy.md").read_text()
    header = next(l for l in table.splitlines() if l.startswith("| Row |"))
    # its own switch label, its option's column and its recorded metric's label and direction
    assert header == ("| Row | Laplace α | Temperature | Params (M) | FID ↓ | Pixel bits/dim ↓ | Seeds | "
                      "Collapsed |"), header
    # the option re-scores the same runs: 3 rows × 2 seeds, 4 run folders (α = 1 shared by two rows)
    assert len(list((toy_table / "runs").iterdir())) == 4
    lines = [json.loads(l) for l in (toy_table / "leaderboards" / "records" / "toy.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {l["trainer"] for l in lines} == {"toy-pixels"}
    shared = {l["path"] for l in lines if l["row"] in ("alpha 1", "alpha 1, T 0.5") and l["seed"] == 0}
    assert len(shared) == 1
    # the footer carries the family's protocol keys and the option's value, from its declarations
    assert "temperature T = 0.5" in table and "pixel likelihood on `fashion-mnist:test`" in table
    tempered = [l for l in lines if l["row"] == "alpha 1, T 0.5"]
    plain = [l for l in lines if l["row"] == "alpha 1"]
    assert all(l["evaluation"]["temperature"] == 0.5 for l in tempered)
    assert tempered[0]["metrics"]["final"]["fid"]["value"] != plain[0]["metrics"]["final"]["fid"]["value"]
    # the finding is judged with the family's metric direction: heavy smoothing is worse, by many s.e.
    assert "- Heavy smoothing costs likelihood: **reproduced**" in table
    for name in ("toy.csv", "toy.html", "toy_metrics.png", "index.html"):
        assert (tables / name).stat().st_size > 0


def test_the_toy_familys_recorded_metric_is_its_closed_form(toy_table):
    """bits/dim of independent smoothed per-pixel categoricals, recomputed here with NumPy from the data."""
    from geneval.datasets import open_dataset

    train, _, _ = open_dataset("fashion-mnist", "train")
    test, _, _ = open_dataset("fashion-mnist", "test")
    rows = {r["row"]: r for r in csv.DictReader((toy_table / "leaderboards" / "tables" / "toy.csv").open())}
    t = test.reshape(len(test), -1)
    for row, alpha in (("alpha 1", 1.0), ("alpha 1000", 1000.0)):
        per_seed = []
        for seed in (0, 1):  # seed s counts train[2000 s:2000 (s + 1)]
            flat = train[2000 * seed:2000 * (seed + 1)].reshape(2000, -1)
            counts = np.stack([np.bincount(flat[:, j], minlength=256) for j in range(flat.shape[1])])
            p = (counts + alpha) / (2000 + 256 * alpha)
            per_seed.append(-np.log2(p[np.arange(t.shape[1]), t]).mean())
        assert math.isclose(float(rows[row]["pixel_bits_per_dim_final_mean"]), np.mean(per_seed), rel_tol=1e-5), row


def test_registration_checks_the_contract():
    class NoTrain(Family):  # an abstract method left out
        name = "broken"

        def config_class(self, preset=None):
            return dict

        def resolve(self, **_):
            return {}

    with pytest.raises(TypeError):
        NoTrain()

    class Complete(NoTrain):
        def train(self, config, *, out, budget):
            return {}

    with pytest.raises(TypeError, match="not an instance of geneval.family.Family"):
        family.register(object())
    bad_option = type("BadOption", (Complete,), {"name": "bad-option", "eval_options": (
        EvalOption("steps", list, None, label="Steps", help="sampling steps"),)})
    with pytest.raises(TypeError, match="bool, int, float or str"):
        family.register(bad_option())
    clash = type("Clash", (Complete,), {"name": "clash", "recorded_metrics": (RecordedMetric("fid", "FID", False),)})
    with pytest.raises(TypeError, match="already a registered sample metric"):
        family.register(clash())
    typed = EvalOption("steps", int, 1000, label="Steps", help="sampling steps")
    assert typed.parse(50, where="x") == 50
    with pytest.raises(Exception, match=r"x: steps = 0.5 is not a int \(sampling steps\)"):
        typed.parse(0.5, where="x")


def test_the_leaderboard_core_names_no_family():
    """Family knowledge lives in the families' declarations: no GAN switch, option or likelihood metric here."""
    forbidden = ("truncation", "skip_z", "sn_g", "sn_d", "bits_per_dim", "likelihood_split", "params_m.generator",
                 "eval_metrics", "shared_embedding", "vae", "pixelcnn")
    for path in sorted((ROOT / "geneval" / "leaderboard").glob("*.py")):
        text = path.read_text()
        for name in forbidden:
            found = [i for i, line in enumerate(text.splitlines(), 1) if re.search(re.escape(name), line, re.I)]
            assert not found, f"{path.relative_to(ROOT)} names {name!r} on line(s) {found}"


def test_an_eval_option_refuses_values_outside_its_declared_range():
    psi = EvalOption("psi", float, None, label="ψ", help="truncation", minimum=0.0, maximum=1.0)
    assert psi.parse(1, where="x") == 1.0 and psi.parse(0.0, where="x") == 0.0 and psi.parse(None, where="x") is None
    for bad in (1.5, -0.1):
        with pytest.raises(Exception, match=rf"x: psi = {bad} is outside \[0.0, 1.0\] \(truncation\)"):
            psi.parse(bad, where="x")
    threshold = EvalOption("t", float, None, label="t", help="threshold", above=0.0)
    with pytest.raises(Exception, match=r"t = 0.0 is outside \(0.0, ∞\)"):
        threshold.parse(0, where="x")
    sampler = EvalOption("sampler", str, None, label="s", help="sampler", choices=("ddpm", "ddim"))
    assert sampler.parse("ddim", where="x") == "ddim"
    with pytest.raises(Exception, match=r"sampler = 'plms' is outside \{ddpm, ddim\}"):
        sampler.parse("plms", where="x")
