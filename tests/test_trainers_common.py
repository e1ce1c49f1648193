"""trainers/common: seeds independent of batching, config overrides that fail early, atomic checkpoints, runs."""

from __future__ import annotations

import dataclasses
import json
import time

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


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a malicious checkpoint could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_checkpoint_refuses_pickled_code_and_round_trips_plain_data(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "sent-to-me.pt"
    torch.save({"step": 1, "payload": _RunsCode(marker)}, evil)
    with pytest.raises(GenevalInputError, match=r"sent-to-me\.pt could not be read: it holds pickled Python objects") \
            as info:
        load_checkpoint(evil)
    assert "\n" not in str(info.value) and "GLOBAL io.open" in str(info.value)  # names what it asked for
    assert not marker.exists()  # the object's __reduce__ never ran

    from trainers.common.seeding import rng_state

    state = {"step": 3, "config": {"lr": 1e-3, "metrics": ("fid", "kid"), "name": None},
             "trainer": {"w": torch.arange(4.0), "history": [{"step": 2, "fid": 1.5}]}, "rng": rng_state()}
    path = save_checkpoint(tmp_path / "ok.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["config"] == state["config"] and loaded["trainer"]["history"] == state["trainer"]["history"]
    assert torch.equal(loaded["trainer"]["w"], state["trainer"]["w"])
    assert torch.equal(loaded["rng"]["numpy"]["key"], state["rng"]["numpy"]["key"])


def test_rng_state_is_plain_data_and_restores_both_generators():
    import numpy as np

    from trainers.common.seeding import rng_state, set_rng_state

    np.random.seed(3)
    np.random.normal()  # leaves a cached Gaussian: has_gauss = 1 must survive too
    state = rng_state()
    assert isinstance(state["numpy"]["key"], torch.Tensor) and isinstance(state["numpy"]["pos"], int)
    first = (torch.rand(3), np.random.normal(size=3), np.random.randint(0, 100, 4))
    set_rng_state(state)
    again = (torch.rand(3), np.random.normal(size=3), np.random.randint(0, 100, 4))
    assert torch.equal(first[0], again[0]) and (first[1] == again[1]).all() and (first[2] == again[2]).all()


class _Toy:
    """A harness trainer: SGD on a quadratic with noise from the global torch and numpy RNGs (like dropout)."""

    def __init__(self):
        import numpy as np

        torch.manual_seed(0)
        np.random.seed(0)
        self.w = torch.randn(3)
        self.step = 0

    def train_step(self):
        import numpy as np

        noise = torch.randn(3) + float(np.random.normal())
        loss = float(((self.w - 1.0) ** 2).sum())
        self.w = self.w - 0.1 * (2 * (self.w - 1.0) + noise)
        self.step += 1
        return {"loss": loss}

    def state_dict(self):
        return {"w": self.w.clone()}

    def load_state_dict(self, state):
        self.w = state["w"].clone()


def _toy_run(out, *, stop_after_steps=None, resume=False, progress=False):
    from trainers.common.harness import Budget, Harness, Validation

    harness = Harness(out, config={"toy": 1}, resume=resume, progress=progress,
                      budget=Budget(steps=9, log_every=2, checkpoint_every=4))
    toy = _Toy()
    # a score that gets worse after step 3: the best stays at step 3 and a collapse is flagged after it
    validation = Validation(lambda: {"err": abs(toy.step - 3) + 1.0}, every=3, metric="err",
                            best_state=toy.state_dict, collapse_margin=0.5)
    return harness.train(toy, validation=validation, stop_after_steps=stop_after_steps), toy


def test_harness_resumes_exactly_keeps_the_best_and_writes_nothing_to_stdout(tmp_path, capsys):
    whole, toy_whole = _toy_run(tmp_path / "whole", progress=True)
    assert not whole.stopped and whole.step == 9
    stopped, _ = _toy_run(tmp_path / "split", stop_after_steps=5)  # mid logging window, past a checkpoint
    assert stopped.stopped and stopped.step == 5
    with pytest.raises(GenevalInputError, match="pass --resume"):
        _toy_run(tmp_path / "split")
    resumed, toy_split = _toy_run(tmp_path / "split", resume=True)
    assert torch.equal(toy_whole.w, toy_split.w)  # the same random draws after the resume

    def log(run):
        return [{k: v for k, v in e.items() if k != "wall_time_s"} for e in RunDir(tmp_path / run).read_log()]

    assert log("split") == log("whole")  # no duplicated lines; the resumed window averages the same steps
    assert [e["step"] for e in log("whole") if e["kind"] == "train"] == [2, 4, 6, 8, 9]
    assert resumed.validation["best"] == {"step": 3, "err": 1.0} == whole.validation["best"]
    assert resumed.validation["collapse"]["step"] == 6 and len(resumed.validation["evals"]) == 3
    assert load_checkpoint(tmp_path / "split" / "best.pt")["step"] == 3
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 9
    assert capsys.readouterr().out == ""  # the progress bar (forced on) goes to stderr


class _Killed(Exception):
    pass


class _SlowToy(_Toy):
    """``_Toy`` whose steps take 0.1 s, killed (an exception, as a session's end or a cluster's preemption) before
    step ``kill_at``."""

    def __init__(self, kill_at=None):
        super().__init__()
        self.kill_at = kill_at

    def train_step(self):
        if self.step + 1 == self.kill_at:
            raise _Killed
        time.sleep(0.1)
        return super().train_step()


def _run_slow_toy(out, *, kill_at=None, resume=False, checkpoint_every_s=0.25):
    """9 steps of ``_SlowToy``, logged every step, checkpointed every ``checkpoint_every_s`` (never by steps)."""
    from trainers.common.harness import Budget, Harness

    harness = Harness(out, config={"toy": 1}, resume=resume, progress=False,
                      budget=Budget(steps=9, log_every=1, checkpoint_every=100, checkpoint_every_s=checkpoint_every_s))
    toy = _SlowToy(kill_at)
    harness.train(toy)
    return toy


def test_a_run_killed_between_step_checkpoints_resumes_from_its_last_timed_one(tmp_path):
    whole = _run_slow_toy(tmp_path / "whole")
    with pytest.raises(_Killed):
        _run_slow_toy(tmp_path / "killed", kill_at=8)
    saved = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["step"]
    assert 3 <= saved <= 7  # a checkpoint every 0.25 s of 0.1 s steps; none by steps (every 100)
    resumed = _run_slow_toy(tmp_path / "killed", resume=True)
    assert torch.equal(resumed.w, whole.w)


def test_a_run_restarted_after_dying_before_its_first_checkpoint_logs_only_its_own_steps(tmp_path):
    with pytest.raises(_Killed):  # the first attempt logs steps 1..4, then dies before any checkpoint
        _run_slow_toy(tmp_path / "run", kill_at=5, checkpoint_every_s=None)
    assert [e["step"] for e in RunDir(tmp_path / "run").read_log()] == [1, 2, 3, 4]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    _run_slow_toy(tmp_path / "run", resume=True, checkpoint_every_s=None)  # the runner's --resume: nothing to resume
    assert [e["step"] for e in RunDir(tmp_path / "run").read_log()] == list(range(1, 10))


def test_likelihood_cli_says_preset_is_now_budget():
    from click.testing import CliRunner

    from trainers.cli import train

    result = CliRunner().invoke(train, ["made", "--preset", "smoke", "--out", "unused"])
    assert result.exit_code == 2 and "use --budget smoke" in result.output
