"""Warm starts (``init_from``): a likelihood run starts from another run's weights with a fresh optimiser and its
own schedule, records where it started (checkpoint sha256, steps, totals) and resumes exactly; a source whose model
differs, a missing folder and a staged family fail at the start; a config field added later (``added_field``)
changes no earlier run's config, hash or folder name."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from geneval.errors import GenevalInputError
from geneval.family import added_field, config_dict
from geneval.weights import file_sha256
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import LikelihoodTraining, TrainingData, train
from trainers.common.runs import RunDir
from trainers.flows.train import SPECS, FlowsConfig, make_config

SPEC = SPECS["realnvp"]


def smoke(**overrides):
    return make_config("realnvp", budget="smoke", dataset="mnist", overrides={k: str(v) for k, v in overrides.items()})


@pytest.fixture
def source(tmp_path, mnist_npz):
    """A finished smoke RealNVP run: the run folder a warm start names."""
    train(SPEC, smoke(), out=tmp_path / "source", budget="smoke")
    return tmp_path / "source"


def model_weights(run) -> dict:
    return load_checkpoint(run / "checkpoint.pt")["trainer"]["model"]


def test_added_field_is_left_out_at_its_default_and_kept_when_set():
    @dataclasses.dataclass(frozen=True)
    class Config:
        lr: float = 1e-3
        later: str = added_field("")

    assert config_dict(Config()) == {"lr": 1e-3}  # as the config was before the field existed
    assert config_dict(Config(later="x")) == {"lr": 1e-3, "later": "x"}
    assert "init_from" not in config_dict(FlowsConfig()) and "init_from" in {f.name for f in dataclasses.fields(FlowsConfig)}


def test_warm_start_begins_at_the_source_weights_with_a_fresh_optimiser(source, tmp_path):
    config = smoke(init_from=source, lr=5e-4)
    trainer = LikelihoodTraining(SPEC, config, TrainingData("mnist", seed=0, train_num=config.train_num))
    start = trainer.model.state_dict()
    saved = model_weights(source)
    assert start.keys() == saved.keys() and all(torch.equal(start[k], saved[k]) for k in saved)
    assert trainer.optimizer.state_dict()["state"] == {}  # Adam's moments are not carried over
    fresh = LikelihoodTraining(SPEC, smoke(), TrainingData("mnist", seed=0, train_num=config.train_num))
    assert not all(torch.equal(fresh.model.state_dict()[k], saved[k]) for k in saved)  # training changed them


def test_warm_started_run_records_its_source_and_resumes_exactly(source, tmp_path):
    config = smoke(init_from=source)
    whole = train(SPEC, config, out=tmp_path / "whole", budget="smoke")
    assert train(SPEC, config, out=tmp_path / "split", budget="smoke", stop_after_steps=3) is None
    resumed = train(SPEC, config, out=tmp_path / "split", budget="smoke", resume=True)
    a, b = model_weights(tmp_path / "whole"), model_weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["likelihood"]["nats"] == whole["likelihood"]["nats"]

    source_state = load_checkpoint(source / "checkpoint.pt")
    assert whole["init_from"] == {
        "run": str(source), "checkpoint_sha256": file_sha256(source / "checkpoint.pt"), "budget": "smoke",
        "steps": source_state["step"], "wall_time_s": round(source_state["wall_time_s"], 2),
        "total_steps": source_state["step"] + whole["steps"],
        "total_wall_time_s": round(round(source_state["wall_time_s"], 2) + whole["wall_time_s"], 2),
    }
    assert whole["config"]["init_from"] == str(source)
    assert json.loads((tmp_path / "whole" / "config.json").read_text())["init_from"] == str(source)
    # the first logged loss is the source model's, not a fresh model's: far below a cold start's
    cold = RunDir(source).read_log()[0]["train_nats"]
    assert RunDir(tmp_path / "whole").read_log()[0]["train_nats"] < cold


def test_a_source_with_another_model_fails_naming_the_key(source, tmp_path):
    with pytest.raises(GenevalInputError, match=r"init_from .*differs from this one in hidden \(4 there, 6 here\)"):
        train(SPEC, smoke(init_from=source, hidden=6), out=tmp_path / "other", budget="smoke")
    assert not (tmp_path / "other").exists()  # found before the run folder is made


def test_a_missing_source_and_a_staged_family_fail_at_the_start(tmp_path, mnist_npz):
    with pytest.raises(GenevalInputError, match=r"init_from .*nowhere.*no checkpoint.pt there"):
        train(SPEC, smoke(init_from=tmp_path / "nowhere"), out=tmp_path / "run", budget="smoke")
    assert not (tmp_path / "run").exists()
    from trainers.vqvae.train import SPECS as VQ_SPECS, make_config as vq_config

    (tmp_path / "any").mkdir()
    (tmp_path / "any" / "checkpoint.pt").write_bytes(b"")
    config = vq_config("vqvae", budget="smoke", dataset="cifar10", overrides={"init_from": str(tmp_path / "any")})
    with pytest.raises(GenevalInputError, match="trains in stages"):
        train(VQ_SPECS["vqvae"], config, out=tmp_path / "vq", budget="smoke")
