"""ProGAN / StyleGAN (trainers/stylegan): the layers on constructed inputs, equalised learning rate, fade-in,
truncation and style mixing through the per-layer w's, smoke runs that resume exactly (mid-fade too), configs that
fail at start, and the family contract (re-scoring with a truncation option)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from trainers.common.checkpoint import load_checkpoint
from trainers.common.runs import RunDir
from trainers.common.seeding import generator
from trainers.stylegan.config import build_config
from trainers.stylegan.layers import EqualizedConv2d, EqualizedLinear, minibatch_stddev, pixel_norm
from trainers.stylegan.model import build_models
from trainers.stylegan.sampler import StyleGanSampler
from trainers.stylegan.train import StyleGanTraining, growth, train

WORKTREE = Path(__file__).resolve().parent.parent
FAMILY_ENV = {"GENEVAL_TRAINERS": "trainers.stylegan.family:STYLEGAN"}


def smoke(preset: str, **overrides):
    return build_config(preset=preset, budget="smoke", overrides={k: str(v) for k, v in overrides.items()})


def generator_of(preset: str, **overrides):
    torch.manual_seed(0)
    G, _ = build_models(smoke(preset, **overrides))
    with torch.no_grad():  # non-trivial noise scales, styles and w̄ (they start at zero)
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.normal_()
        G.w_avg.normal_()
    return G.eval()


# ================================================================================================ layers

def test_equalized_lr_forward_equals_a_plain_layer_with_the_scaled_weights():
    torch.manual_seed(0)
    conv = EqualizedConv2d(3, 5, 3)
    with torch.no_grad():
        conv.bias.normal_()
    plain = torch.nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():
        plain.weight.copy_(conv.weight * (2 ** 0.5 / (3 * 9) ** 0.5))  # He's constant √2 / √fan_in
        plain.bias.copy_(conv.bias)
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(conv(x), plain(x), atol=1e-6)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.2)  # stored N(0, 1): the scale is at runtime
    dense = EqualizedLinear(8, 4, lr_mul=0.01)  # the mapping network's: weight N(0, 1/0.01²), scale ×0.01
    with torch.no_grad():
        dense.bias.normal_()
    linear = torch.nn.Linear(8, 4)
    with torch.no_grad():
        linear.weight.copy_(dense.weight * 2 ** 0.5 / 8 ** 0.5 * 0.01)
        linear.bias.copy_(dense.bias * 0.01)
    z = torch.randn(3, 8)
    assert torch.allclose(dense(z), linear(z), atol=1e-5)


def test_pixel_norm_and_minibatch_stddev_on_constructed_inputs():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]]).view(2, 2, 1, 1)
    y = pixel_norm(x)  # a / sqrt(mean_c a²): [3, 4] / sqrt(12.5), [0, 2] / sqrt(2)
    assert torch.allclose(y.flatten(1), torch.tensor([[3, 4], [0, 2]]) / torch.tensor([[12.5 ** 0.5], [2 ** 0.5]]))
    assert torch.allclose(pixel_norm(torch.randn(4, 7, 3, 3)).pow(2).mean(1), torch.ones(4, 3, 3), atol=1e-5)
    # 4 samples, group size 2: groups {0, 2} and {1, 3} (sample i in group i mod N/G, the official reshape)
    x = torch.zeros(4, 2, 2, 2)
    x[0], x[2] = 1.0, 3.0  # group {0, 2}: every feature differs by 2 → std 1
    x[1], x[3] = 5.0, 5.0  # group {1, 3}: identical → std 0 (+ ε)
    out = minibatch_stddev(x, group_size=2)
    assert out.shape == (4, 3, 2, 2) and torch.equal(out[:, :2], x)
    assert torch.allclose(out[:, 2], torch.tensor([1.0, 1e-4, 1.0, 1e-4]).view(4, 1, 1).expand(4, 2, 2), atol=1e-6)
    whole_batch = float(x.std(0, unbiased=False).mean())
    assert torch.allclose(minibatch_stddev(x, group_size=4)[:, 2], torch.full((4, 2, 2), whole_batch))


def test_fade_in_is_the_upsampled_old_image_at_zero_and_the_new_block_at_one():
    G = generator_of("stylegan-e")
    ws = G.styles(torch.randn(3, G.z_dim))
    noise = [torch.randn(3, *s) for s in G.noise_shapes(2)]
    with torch.no_grad():
        for level in (1, 2):
            old = G(ws, level=level - 1, alpha=1.0, noise=noise[:2 * level])
            faded0 = G(ws, level=level, alpha=0.0, noise=noise[:2 * level + 2])
            assert torch.allclose(faded0, F.interpolate(old, scale_factor=2, mode="nearest"), atol=1e-6)
            new = G.to_rgb[level](G.features(ws, level=level, noise=noise[:2 * level + 2]))
            assert torch.equal(G(ws, level=level, alpha=1.0, noise=noise[:2 * level + 2]), new)
            half = G(ws, level=level, alpha=0.5, noise=noise[:2 * level + 2])
            assert torch.allclose(half, 0.5 * (faded0 + new), atol=1e-5)
    assert [s[1] for s in G.noise_shapes(2)] == [7, 7, 14, 14, 28, 28]
    assert growth(0, levels=3, fade_images=10, stable_images=20) == (0, 1.0)
    assert growth(25, levels=3, fade_images=10, stable_images=20) == (1, 0.5)
    assert growth(40, levels=3, fade_images=10, stable_images=20) == (1, 1.0)
    assert growth(10**6, levels=3, fade_images=10, stable_images=20) == (2, 1.0)


# ========================================================================================= truncation, noise

def test_psi_zero_gives_the_image_of_w_avg_for_every_sample():
    G = generator_of("stylegan-f")
    sampler = StyleGanSampler(G, level=2, alpha=1.0, out_size=28)
    samples = sampler.sample(6, seed=3, truncation=0.0, noise=False)
    assert (samples == samples[:1]).all()
    mean_image = sampler.synthesize(G.w_avg.view(1, 1, -1).expand(1, G.num_layers, -1))
    assert torch.equal(samples[0], mean_image[0])
    assert not (sampler.sample(6, seed=3, noise=False) == samples[:1]).all()
    # only the coarse layers truncated: the fine styles still differ per sample
    ws = sampler.styles(4, 3, truncation=0.0, truncation_cutoff=2)
    assert torch.allclose(ws[:, :2], G.w_avg.expand(4, 2, -1)) and not torch.allclose(ws[0, 2:], ws[1, 2:])
    for bad in (-0.1, 1.5):
        with pytest.raises(GenevalInputError, match=r"\[0, 1\]"):
            sampler.sample(2, seed=0, truncation=bad)
    with pytest.raises(GenevalInputError, match="cutoff"):
        sampler.sample(2, seed=0, truncation=0.5, truncation_cutoff=7)


def test_without_noise_inputs_the_generator_is_deterministic_in_w_and_samples_depend_on_seed_and_index():
    quiet = StyleGanSampler(generator_of("stylegan-d"), level=2, alpha=1.0, out_size=28)
    ws = quiet.styles(4, seed=1)
    assert quiet.noise(4, 1) is None
    assert torch.equal(quiet.synthesize(ws), quiet.synthesize(ws))
    assert torch.equal(quiet.sample(4, 1), quiet.synthesize(ws))
    noisy = StyleGanSampler(generator_of("stylegan-e"), level=2, alpha=1.0, out_size=28)
    ws = noisy.styles(4, seed=1)
    assert not torch.equal(noisy.synthesize(ws, noisy.noise(4, 1)), noisy.synthesize(ws, noisy.noise(4, 2)))
    whole = noisy.sample(7, seed=5)
    noisy.batch_size = 3
    assert torch.equal(noisy.sample(7, seed=5), whole)  # per-sample z and noise: batch-independent
    assert torch.equal(noisy.sample(4, seed=5), whole[:4])


def test_style_mixing_switch_through_the_per_layer_ws(fashion_mnist_dir):
    images = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    for preset, mixing in (("stylegan-e", False), ("stylegan-f", True)):
        trainer = StyleGanTraining(smoke(preset, batch_size=64), images=images)
        ws, crossover = trainer.styles(generator(0, 99, 0), level=2)
        same = (ws == ws[:, :1]).all(dim=2).all(dim=1)  # every layer holds the sample's one w
        if not mixing:
            assert same.all() and (crossover == trainer.G.num_layers).all()
            continue
        mixed = crossover < trainer.G.num_layers
        assert 0.75 < mixed.float().mean() <= 1.0 and torch.equal(~same, mixed)
        assert set(crossover[mixed].tolist()) <= {1, 2, 3, 4, 5} and len(set(crossover[mixed].tolist())) > 2
        for i in torch.nonzero(mixed).flatten().tolist():  # w1 before the crossover, w2 from it on
            c = int(crossover[i])
            assert (ws[i, :c] == ws[i, 0]).all() and (ws[i, c:] == ws[i, -1]).all()
        # at level 0 only layers 0 and 1 are in use: the crossover is always 1
        _, early = trainer.styles(generator(0, 99, 1), level=0)
        assert set(early[early < trainer.G.num_layers].tolist()) == {1}


# ================================================================================================= configs

def test_table1_configuration_is_named_from_the_ingredients_not_the_preset():
    for letter in "ABCDEF":
        assert build_config(preset=f"stylegan-{letter.lower()}").table1_configuration() == letter
    # the leaderboard's F row: preset stylegan-a with every switch on
    switched = {"resample": "bilinear", "loss": "nonsat", "mapping_layers": 8, "const_input": True,
                "noise_inputs": True, "mixing_prob": 0.9}
    assert build_config(preset="stylegan-a", overrides=switched).table1_configuration() == "F"
    assert build_config(preset="stylegan-f", overrides={"mixing_prob": 0.5}).table1_configuration() is None


def test_configs_that_cannot_work_fail_at_start():
    cases = [({"resolution": "56"}, "growing past the data resolution"),
             ({"resolution": "14"}, "must be the data's"),
             ({"start_resolution": "6"}, "power of two"),
             ({"mixing_prob": "0.9", "mapping_layers": "0"}, "needs a mapping network"),
             ({"picture_psi": "1.5"}, r"must be in \[0, 1\]"),
             ({"picture_psi": "-0.5"}, r"must be in \[0, 1\]"),
             ({"loss": "hinge"}, "loss"),
             ({"ema_kimg": "-1"}, "ema_kimg=-1.0 must be ≥ 0")]
    for overrides, message in cases:
        with pytest.raises(GenevalInputError, match=message) as error:
            build_config(preset="stylegan-f", budget="smoke", overrides=overrides)
        assert "\n" not in str(error.value)
    with pytest.raises(GenevalInputError, match="const_input"):
        build_config(preset="progan", budget="smoke", overrides={"const_input": "true"})
    with pytest.raises(GenevalInputError, match="unknown stylegan preset"):
        build_config(preset="stylegan-g", budget="smoke")
    for preset in ("progan", "stylegan-a", "stylegan-b", "stylegan-c", "stylegan-d", "stylegan-e", "stylegan-f"):
        for budget in ("smoke", "small", "paper"):
            build_config(preset=preset, budget=budget)
    assert build_config(preset="stylegan-f", budget="small", dataset="cifar10").resolutions == (8, 16, 32)
    assert build_config(preset="stylegan-f", budget="small").resolutions == (7, 14, 28)
    # the EMA generator's half-life is ema_kimg thousand images (ProGAN's G_smoothing_kimg = 10)
    small = build_config(preset="stylegan-f", budget="small")
    assert small.ema_decay ** (10_000 / small.batch_size) == pytest.approx(0.5)
    assert build_config(preset="stylegan-f", budget="small", overrides={"ema_kimg": "0"}).ema_decay == 0.0


@pytest.mark.parametrize("setting, message", [
    ("truncation = 1.5", r"truncation = 1.5 is outside \[0.0, 1.0\]"),
    ("truncation = -0.1", r"truncation = -0.1 is outside \[0.0, 1.0\]"),
    ("truncation_cutoff = 0", r"truncation_cutoff = 0 is outside \[1, ∞\)"),
])
def test_a_spec_row_with_a_meaningless_psi_fails_at_check(tmp_path, setting, message):
    """ψ outside [0, 1] is refused when the spec is read (``geneval leaderboard check``), one line naming the
    file, its line and the value — not at evaluation after the training runs."""
    spec = (WORKTREE / "leaderboards" / "specs" / "stylegan_ablation.toml").read_text()
    bad = tmp_path / "stylegan_bad.toml"
    bad.write_text(spec.replace("truncation = 0.7\ntruncation_cutoff = 2", f"truncation = 0.7\n{setting}", 1)
                   if "cutoff" in setting else spec.replace("truncation = 0.7", setting, 1))
    checked = subprocess.run([sys.executable, "-m", "geneval", "leaderboard", "check", str(bad)],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(WORKTREE), **FAMILY_ENV})
    assert checked.returncode != 0
    error = checked.stderr.strip().splitlines()
    assert len(error) == 1 and str(bad) in error[0], checked.stderr
    assert re.search(message, error[0]), error[0]


# ================================================================================================= runs

def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("wall_time_s", "eval_wall_time_s", "software", "sampling")}


@pytest.mark.parametrize("preset", ["progan", "stylegan-f"])
def test_smoke_runs_train_and_resume_exactly_mid_fade(preset, tmp_path, fashion_mnist_dir):
    cfg = smoke(preset)
    whole = train(cfg, out=tmp_path / "whole", progress=False)
    # 3 steps of 8 images: level 0 is steps 0–1, level 1 fades in over steps 2–3 (α = 0, 0.5)
    stopped = train(cfg, out=tmp_path / "split", stop_after_steps=3, progress=False)
    assert stopped["stopped"] == 3
    assert stopped["growth"] == {"images_shown": 24, "level": 1, "alpha": 0.0, "resolution": 14}
    saved = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert saved["step"] == 3 and saved["trainer"]["growth"] == stopped["growth"]
    resumed = train(cfg, out=tmp_path / "split", resume=True, progress=False)
    a, b = (load_checkpoint(tmp_path / run / "checkpoint.pt")["trainer"] for run in ("whole", "split"))
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert _strip(resumed) == _strip(whole)
    log = lambda run: [{k: v for k, v in e.items() if k != "wall_time_s"} for e in RunDir(tmp_path / run).read_log()]
    assert log("split") == log("whole")
    assert [e["alpha"] for e in log("whole") if e["kind"] == "train"][:8] == [1, 1, 0, 0.5, 1, 1, 0, 0.5]
    assert whole["growth"] == {"images_shown": 80, "level": 2, "alpha": 1.0, "resolution": 28}
    expected = {"psi_sweep"} | ({"style_mixing", "noise_resampling"} if preset == "stylegan-f" else set())
    assert expected <= set(whole["artifacts"]) and ("style_mixing" in whole["artifacts"]) == (preset == "stylegan-f")
    for name in expected:
        assert (tmp_path / "whole" / whole["artifacts"][name]).stat().st_size > 0
    assert {"fid", "precision", "recall"} <= set(whole["metrics"]["final"]) and whole["metrics"]["best"]
    assert whole["sampling"]["num_images"] == cfg.eval_samples and whole["sampling"]["s_per_1000"] > 0


def test_family_contract_evaluate_and_cli(tmp_path, fashion_mnist_dir, monkeypatch):
    from geneval import family

    monkeypatch.setenv("GENEVAL_TRAINERS", FAMILY_ENV["GENEVAL_TRAINERS"])
    sg = family.check(family.get("stylegan"))
    assert {o.name for o in sg.eval_options} == {"truncation", "truncation_cutoff"}
    out = tmp_path / "run"
    env = {**os.environ, **FAMILY_ENV, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "geneval", "train", "stylegan", "--preset", "stylegan-f", "--budget",
                           "smoke", "--out", str(out), "--no-progress"], cwd=WORKTREE, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 10
    config = sg.resolve(preset="stylegan-f", budget="smoke", dataset="fashion-mnist", overrides={}, seed=0)
    record = json.loads((out / "record.json").read_text())
    assert record["compute"] == {"device": "cuda:0" if torch.cuda.is_available() else "cpu", "processes": 1}
    same, protocol = sg.evaluate(out, config=config, which="final", metrics=("fid",))
    assert same["fid"]["value"] == pytest.approx(record["metrics"]["final"]["fid"]["value"], rel=1e-9)
    cut, cut_protocol = sg.evaluate(out, config=config, which="final", metrics=("fid",), truncation=0.5,
                                    truncation_cutoff=2)
    assert cut["fid"]["value"] != same["fid"]["value"]
    assert cut_protocol["sample_seed"] == protocol["sample_seed"] == config.sample_seed
    assert cut_protocol["truncation"] == 0.5 and cut_protocol["truncation_cutoff"] == 2
    sampler = sg.sampler(out)
    plain, truncated = sampler.sample(8, config.sample_seed), sampler.sample(8, config.sample_seed, truncation=0.5)
    assert not torch.equal(plain, truncated) and torch.equal(plain, sampler.sample(8, config.sample_seed))
    with pytest.raises(GenevalInputError):
        sg.evaluate(out, config=config, which="final", metrics=("fid",), truncation=2.0)
    sweep = subprocess.run([sys.executable, "-m", "geneval", "train", "stylegan-truncation", str(out), "--psis",
                            "1,0.5,0", "--num-samples", "32", "--which", "final"], cwd=WORKTREE, env=env,
                           capture_output=True, text=True, timeout=300)
    assert sweep.returncode == 0, sweep.stderr
    assert "| 0.5 |" in sweep.stdout and (out / "truncation.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "geneval", "train", "stylegan", "--budget", "smoke", "--set",
                          "resolution=56", "--out", str(tmp_path / "bad")], cwd=WORKTREE, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "growing past the data resolution" in bad.stderr
    assert "Traceback" not in bad.stderr
    # a device that cannot be used, or a torchrun launch (each rank would train the same folder), fails before
    # any work: one line, no run folder
    refusals = [({"WORLD_SIZE": "2"}, [], "runs in one process")]
    if not torch.cuda.is_available():
        refusals.append(({}, ["--device", "cuda"], "CUDA is not available"))
    for extra_env, args, message in refusals:
        refused = subprocess.run([sys.executable, "-m", "geneval", "train", "stylegan", "--budget", "smoke", *args,
                                  "--out", str(tmp_path / "refused")], cwd=WORKTREE, env={**env, **extra_env},
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0 and message in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "refused").exists()


def test_adam_is_reset_when_a_fade_starts_and_when_it_ends():
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    trainer = StyleGanTraining(smoke("progan"), images=images)  # level 0: steps 0–1, fade 2–3, stable 4–5
    adam_steps = lambda: int(trainer.opt_g.state[trainer.G.conv_in.weight]["step"])
    counts = []
    for _ in range(6):
        trainer.train_step()
        counts.append(adam_steps())
    assert counts == [1, 2, 1, 2, 1, 2]
    kept = StyleGanTraining(smoke("progan", reset_optimizer_on_grow=False), images=images)
    for _ in range(6):
        kept.train_step()
    assert int(kept.opt_g.state[kept.G.conv_in.weight]["step"]) == 6
