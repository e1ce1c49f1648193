"""Likelihood trainers data-parallel under a real ``torchrun`` (2 processes, gloo, CPU): every step's loss equals a
single process's with the same global batch (≤ 1e-6 relative; Glow's first step, see below), and so do the final
weights (≤ 1e-5 of how far training moved them; the flows ≤ 2e-2, see below); a 2-process run stopped and resumed is the uninterrupted 2-process run, bit for bit; rank 0 alone writes the run folder and the record names
the processes and batch sizes.

One model per family where the data-parallel path differs: MADE (dynamic binarisation of the global batch, a mask
drawn per step), RealNVP (batch norm over the global batch), Glow (act-norm initialised from the global batch), the
VAE (ε drawn for the global batch), the VQ-VAE (the codebook's EMA update and dead-code restarts over the global
batch, then the prior stage) and DDPM (t, ε and the dropout masks drawn for the global batch, an EMA).

Why Glow's later steps and the flows' weights get a looser tolerance than "≤ 1e-6": at Glow's initialisation (zero
last layers, act-norm fitted to the batch) and for the flows' translation biases feeding a batch norm, some gradients
are zero in exact arithmetic, so their float32 value is rounding noise, and Adam's first steps move each such weight by
±lr whatever the noise's size. One process run with 2 threads instead of 1 differs from itself the same way (Glow:
≈ 1e-5 relative in the step-2…5 losses). A missed gradient average is still caught: the losses then differ by
≈ 1e-4 relative (RealNVP 3e-4, the VAE 4e-4), the weights by 1.7e-2 (Glow) and 6e-2 (RealNVP) of their travel, and
the trainer refuses to finish when the ranks' weights differ (``ddp.check_replicas``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
PYTHON = [sys.executable, "-m", "geneval"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "geneval"]

# model → (family module, dataset, steps to stop after, step to stop at and resume from); log_every=1 logs every
# step's losses
MODELS = {
    "made": ("autoregressive", "binarized-mnist", 5, 2),
    "realnvp": ("flows", "mnist", 5, 2),
    "glow": ("flows", "mnist", 5, 2),
    "vae": ("vae", "binarized-mnist", 5, 2),
    "vqvae": ("vqvae", "mnist", 8, 4),  # 6 autoencoder steps, then 2 of the prior
    "ddpm": ("diffusion", "mnist", 5, 2),
}
LATER_STEPS_RTOL = {"glow": 1e-4}  # steps after the first (see above); the others 1e-6
# ‖θ₂ − θ₁‖ / ‖θ₁ − θ₀‖: two processes' weights against one's, relative to how far one process moved them from θ₀
# see above (measured 8.5e-3, 1.4e-3, and 1.5e-4 for DDPM's zero-initialised last convolutions); the others 1e-5
WEIGHTS_RTOL = {"realnvp": 2e-2, "glow": 2e-2, "ddpm": 2e-3}


def train(launcher, model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    dataset = MODELS[model][1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GENEVAL_CACHE": str(out.parent / "cache"),
           "PYTHONFAULTHANDLER": "1", "GENEVAL_DIST_TIMEOUT_S": "120"}
    result = subprocess.run([*launcher, "train", model, "--dataset", dataset, "--budget", "smoke", "--device", "cpu",
                             "--no-progress", "--set", "log_every=1", "--out", str(out), *extra],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-8000:]  # faulthandler: where a rank aborted
    return result


def losses(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "wall_time_s"} for line in lines if line["kind"] == "train"]


def trainer_state(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["trainer"]


def loss_names(line: dict) -> list[str]:
    return [k for k in line if k not in ("kind", "step", "stage", "lr")]


def initial_weights(model: str) -> dict:
    """The run's weights before its first step (seeded: the same in every process)."""
    import importlib

    from trainers.common.likelihood_training import TrainingData, build_model

    family, dataset = MODELS[model][:2]
    if family == "diffusion":
        from trainers.diffusion.family import build_config
        from trainers.diffusion.train import build_model as build_unet

        return build_unet(build_config(preset="ddpm", budget="smoke", dataset=dataset, overrides={})).state_dict()
    module = importlib.import_module(f"trainers.{family}.train")
    spec = module.SPECS[model]
    if family == "vae":
        config = module.make_config(budget="smoke", dataset=dataset, overrides={})
    else:
        config = module.make_config(model, budget="smoke", dataset=dataset, overrides={})
    return build_model(spec, config, TrainingData(dataset, seed=config.seed, train_num=2)).state_dict()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """model → (one-process run folder, two-process run folder), each stopped after the model's steps; made once."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(model: str) -> tuple[Path, Path]:
        if model not in made:
            root = tmp_path_factory.mktemp(model)
            stop = str(MODELS[model][2])
            train(PYTHON, model, root / "one", "--stop-after-steps", stop)
            result = train(TORCHRUN, model, root / "two", "--stop-after-steps", stop)
            said = result.stdout + result.stderr  # the likelihood CLI prints JSON, ``train ddpm`` a line on stderr
            assert said.count('"stopped"') + said.count("stopped at step") == 1  # rank 0 alone says it
            made[model] = root / "one", root / "two"
        return made[model]

    return get


SLOW = {"vqvae", "ddpm"}  # the four models above cover the mechanisms; these two add their own (≈ 1 min of CPU)


def models(*names: str) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


@pytest.mark.parametrize("model", models(*MODELS))
def test_two_processes_train_the_single_process_run(model, runs, mnist_npz):
    one, two = runs(model)
    a, b = losses(one), losses(two)
    assert [line["step"] for line in a] == [line["step"] for line in b] == list(range(1, MODELS[model][2] + 1))
    for x, y in zip(a, b):
        rtol = 1e-6 if x["step"] == 1 else LATER_STEPS_RTOL.get(model, 1e-6)
        for name in loss_names(x):
            # abs: bits/dim are logged to 5 decimals (nats to 4: there rel dominates)
            assert y[name] == pytest.approx(x[name], rel=rtol, abs=1e-5), (model, x["step"], name)

    # the final weights: their distance, relative to how far training moved them
    start, weights_one, weights_two = initial_weights(model), trainer_state(one)["model"], trainer_state(two)["model"]
    assert weights_one.keys() == weights_two.keys()
    floats = [k for k, v in weights_one.items() if v.is_floating_point()]
    norm = lambda tensors: float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))  # noqa: E731
    moved = norm(weights_one[k] - start[k] for k in floats)
    apart = norm(weights_two[k] - weights_one[k] for k in floats)
    assert moved > 0 and apart <= WEIGHTS_RTOL.get(model, 1e-5) * moved, (model, apart / moved)
    for key in set(weights_one) - set(floats):
        assert torch.equal(weights_two[key], weights_one[key]), key


# RealNVP: batch-norm running statistics and Adam; the VQ-VAE: two stages, codebook statistics; DDPM: dropout's global RNG
@pytest.mark.parametrize("model", models("realnvp", "vqvae", "ddpm"))
def test_two_processes_resume_exactly(model, runs, tmp_path, mnist_npz):
    """Stopped mid-way and resumed: the uninterrupted 2-process run bit for bit (log lines, weights, optimiser)."""
    _, two = runs(model)
    _, _, stop, resume_at = MODELS[model]
    resumed = tmp_path / "resumed"
    train(TORCHRUN, model, resumed, "--stop-after-steps", str(resume_at))
    train(TORCHRUN, model, resumed, "--resume", "--stop-after-steps", str(stop))
    assert losses(resumed) == losses(two)
    assert_identical(trainer_state(resumed), trainer_state(two))


def assert_identical(a, b, where="trainer") -> None:
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_two_process_record_names_the_compute(tmp_path, mnist_npz):
    """A whole run: rank 0 evaluates alone and writes the record; it names the processes and the batch sizes."""
    out = tmp_path / "vae"
    result = train(TORCHRUN, "vae", out)
    summary = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summary) == 1 and summary[0]["steps"] == 6
    record = json.loads((out / "record.json").read_text())
    assert record["compute"] == {"device": "cpu", "precision": "float32", "processes": 2, "global_batch_size": 16,
                                 "per_rank_batch_size": 8}
    assert record["config"]["batch_size"] == 16


def test_uneven_global_batch_is_refused_at_start(tmp_path, mnist_npz):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1",
           "GENEVAL_DIST_TIMEOUT_S": "60"}
    result = subprocess.run([*TORCHRUN, "train", "made", "--budget", "smoke", "--device", "cpu", "--no-progress",
                             "--set", "batch_size=15", "--out", str(tmp_path / "odd")], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode != 0
    assert "batch size 15 is not divisible by 2 processes" in result.stderr
    assert not (tmp_path / "odd" / "checkpoint.pt").exists()
