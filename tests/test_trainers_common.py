"""trainers/common: seeds independent of batching, config overrides that fail early, atomic checkpoints, runs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from geneval.errors import GenevalInputError
from trainers.common.checkpoint import load_checkpoint, save_checkpoint
from trainers.common.config import apply_overrides, parse_overrides
from trainers.common.runs import RunDir
from trainers.common.seeding import derived_seed, per_sample_normal


def test_per_sample_noise_does_not_depend_on_how_it_is_batched():
    whole = per_sample_normal(6, (3,), seed=5)
    assert torch.equal(whole[:4], per_sample_normal(4, (3,), seed=5))
    assert not torch.equal(whole, per_sample_normal(6, (3,), seed=6))
    assert derived_seed(1, 2) != derived_seed(2, 1)


@dataclasses.dataclass(frozen=True)
class Toy:
    lr: float = 1e-3
    steps: int = 10
    spectral_norm: bool = False
    attention_at: tuple[int, ...] = ()
    name: str | None = None

    def validate(self):
        if self.steps < 1:
            raise GenevalInputError(f"steps must be ≥ 1, got {self.steps}")


def test_overrides_are_typed_and_unknown_keys_fail():
    toy = apply_overrides(Toy(), parse_overrides(["lr=2e-4", "steps=3", "spectral_norm=true", "attention_at=16,32",
                                                  "name=none"]))
    assert toy == Toy(lr=2e-4, steps=3, spectral_norm=True, attention_at=(16, 32), name=None)
    with pytest.raises(GenevalInputError, match="unknown key 'lrr'; known keys: attention_at, lr, name"):
        apply_overrides(Toy(), {"lrr": "1"})
    with pytest.raises(GenevalInputError, match="'x' is not an int"):
        apply_overrides(Toy(), {"steps": "x"})
    with pytest.raises(GenevalInputError, match="steps must be ≥ 1"):
        apply_overrides(Toy(), {"steps": "0"})
    with pytest.raises(GenevalInputError, match="expected key=value"):
        parse_overrides(["lr"])


def test_checkpoint_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, {"w": torch.arange(3), "step": 7})
    assert load_checkpoint(path)["step"] == 7

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"w": Boom()})
    assert load_checkpoint(path)["step"] == 7  # the old checkpoint survives a failed write
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_run_dir_refuses_a_different_config_and_an_unasked_resume(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.start({"lr": 1}, resume=False) is False
    save_checkpoint(run.checkpoint, {})
    with pytest.raises(GenevalInputError, match="pass --resume"):
        run.start({"lr": 1}, resume=False)
    assert run.start({"lr": 1}, resume=True) is True
    with pytest.raises(GenevalInputError, match="different config .keys lr"):
        run.start({"lr": 2}, resume=True)
    run.write_record({"family": "toy"})
    record = json.loads(run.record_path.read_text())
    assert record["family"] == "toy" and record["software"]["geneval"]
