"""GAN trainer: ingredients (unit tests), configs that fail early, the loop's exact resume, every preset's smoke run
through train → checkpoint → resume → evaluate → record, and the CLI (real subprocesses)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from geneval.errors import GenevalInputError
from trainers.common.checkpoint import load_checkpoint
from trainers.common.ema import debiased_weight
from trainers.common.seeding import per_sample_normal
from trainers.gan import losses
from trainers.gan.config import PRESETS, GanConfig, build_config
from trainers.gan.layers import (ConditionalBatchNorm, LocalResidual, SelfAttention, WeightEMA, maybe_sn, orthogonal_penalty,
                                 truncated_latents)
from trainers.gan.models import build_models
from trainers.gan.sampler import GanSampler

REPO = Path(__file__).resolve().parent.parent
GENEVAL = str(REPO / ".venv" / "bin" / "geneval")


def smoke(preset: str, **overrides) -> GanConfig:
    return build_config(preset=preset, budget="smoke", overrides=overrides)


# ============================================================================================ ingredients

def test_spectral_norm_makes_the_largest_singular_value_one():
    torch.manual_seed(0)
    layer = maybe_sn(torch.nn.Linear(20, 30), True)
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(5.0)
    assert torch.linalg.matrix_norm(layer.parametrizations.weight.original, 2) > 5
    x = torch.randn(4, 20)
    for _ in range(30):  # each training-mode forward runs one power iteration
        layer(x)
    assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(1.0, abs=1e-3)
    conv = maybe_sn(torch.nn.Conv2d(3, 8, 3), True)
    for _ in range(30):
        conv(torch.randn(1, 3, 5, 5))
    assert torch.linalg.matrix_norm(conv.weight.detach().reshape(8, -1), 2).item() == pytest.approx(1.0, abs=1e-3)


def test_orthogonal_penalty_is_the_off_diagonal_gram_norm():
    assert orthogonal_penalty([torch.eye(3) * 5.0], beta=1.0).item() == 0.0  # orthogonal rows, any norm: no penalty
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # W Wᵀ = [[2, 1], [1, 1]]: off-diagonal squares sum to 2
    assert orthogonal_penalty([w], beta=1e-4).item() == pytest.approx(2e-4)
    conv = torch.ones(2, 1, 2, 2)  # rows [1,1,1,1]: W Wᵀ = [[4, 4], [4, 4]] → 2·16
    assert orthogonal_penalty([conv, w], beta=0.5).item() == pytest.approx(0.5 * (32 + 2))
    tall = torch.randn(50, 3, requires_grad=True)  # more rows than columns: computed through WᵀW
    gram = tall @ tall.t()
    naive = (gram - torch.diag(torch.diagonal(gram))).pow(2).sum()
    assert orthogonal_penalty([tall], beta=1.0).item() == pytest.approx(naive.item(), rel=1e-5)
    orthogonal_penalty([tall], beta=1.0).backward()
    (expected,) = torch.autograd.grad(naive, tall)
    assert torch.allclose(tall.grad, expected, rtol=1e-4, atol=1e-4)


def test_truncation_resamples_into_the_bound_and_each_sample_has_its_own_seed():
    z = truncated_latents(50, 64, seed=3, threshold=0.5)
    assert z.shape == (50, 64) and z.abs().max() <= 0.5
    assert torch.equal(z[:7], truncated_latents(7, 64, seed=3, threshold=0.5))
    assert torch.equal(truncated_latents(6, 16, seed=3, threshold=None), per_sample_normal(6, (16,), seed=3))
    assert not torch.equal(z, truncated_latents(50, 64, seed=4, threshold=0.5))
    with pytest.raises(ValueError, match="must be > 0"):
        truncated_latents(2, 4, seed=0, threshold=0.0)


def test_attention_block_keeps_the_shape_and_starts_as_the_identity():
    block = SelfAttention(16, sn=True)
    x = torch.randn(2, 16, 7, 7)
    assert torch.equal(block(x), x)  # γ = 0 at initialisation
    with torch.no_grad():
        block.gamma.fill_(1.0)
    out = block(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


@pytest.mark.parametrize("channels", [16, 64])
def test_residual_control_has_the_attention_blocks_parameter_count_and_is_local(channels):
    # eval(): spectral norm's power iteration would otherwise nudge the weights between the two calls below
    attention, residual = SelfAttention(channels, sn=True).eval(), LocalResidual(channels, sn=True).eval()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(residual) == count(attention) == channels * channels * 5 // 4 + 1  # + γ
    x = torch.randn(1, channels, 9, 9)
    assert torch.equal(residual(x), x)  # γ = 0 at initialisation, like the attention block
    for block in (attention, residual):
        with torch.no_grad():
            block.gamma.fill_(1.0)
    # Change one corner pixel: the residual block's output moves only within its 3×3 neighbourhood,
    # self-attention's moves everywhere (non-local evidence).
    moved = x.clone()
    moved[..., 0, 0] += 1.0
    with torch.no_grad():
        far_residual = (residual(moved) - residual(x))[..., 4:, 4:].abs().max()
        far_attention = (attention(moved) - attention(x))[..., 4:, 4:].abs().max()
    assert far_residual == 0 and far_attention > 0


def test_residual_rows_build_and_are_flagged_as_not_attention():
    cfg = build_config(preset="sagan", budget="smoke", overrides={"attention_block": "residual"})
    generator, discriminator = build_models(cfg, shape=cfg.shape, num_classes=cfg.num_classes)
    assert any(isinstance(m, LocalResidual) for m in generator.modules())
    assert any(isinstance(m, LocalResidual) for m in discriminator.modules())
    assert not any(isinstance(m, SelfAttention) for m in [*generator.modules(), *discriminator.modules()])
    assert cfg.switches()["attention"] is False and cfg.switches()["attention_block"] == "residual"


def test_projection_discriminator_uses_the_labels_and_an_unconditional_one_ignores_them():
    cfg = smoke("sngan", conditional=True, d_cond="projection")
    _, d = build_models(cfg, shape=cfg.shape, num_classes=10)
    with torch.no_grad():
        d.embed.parametrizations.weight.original.normal_()
    x = torch.randn(3, *cfg.shape)
    assert not torch.allclose(d(x, torch.tensor([0, 1, 2]))[0], d(x, torch.tensor([5, 6, 7]))[0])
    _, plain = build_models(smoke("sngan"), shape=cfg.shape, num_classes=10)
    plain.eval()
    assert torch.equal(plain(x, torch.tensor([0, 1, 2]))[0], plain(x, None)[0])
    acgan = smoke("dcgan", conditional=True, d_cond="acgan")
    _, d = build_models(acgan, shape=acgan.shape, num_classes=10)
    assert d(x, torch.tensor([0, 1, 2]))[1].shape == (3, 10)


def test_conditional_batch_norm_shared_embedding_and_skip_z_reach_the_output():
    cbn = ConditionalBatchNorm(4, cond_dim=3, num_classes=5)
    with torch.no_grad():
        cbn.gain_embed.weight.normal_()
    x = torch.randn(6, 4, 2, 2)
    c = torch.randn(6, 3)
    assert not torch.allclose(cbn(x, c, torch.zeros(6, dtype=torch.long)), cbn(x, c, torch.ones(6, dtype=torch.long)))
    assert not torch.allclose(cbn(x, c, torch.zeros(6, dtype=torch.long)), cbn(x, c * 2, torch.zeros(6, dtype=torch.long)))
    cfg = smoke("biggan-lite")
    g, _ = build_models(cfg, shape=cfg.shape, num_classes=10)
    assert g.shared is not None and g.chunk > 0 and g.cbn_classes == 0
    with torch.no_grad():  # give the linear gains something to say (they start at zero)
        for block in g.blocks:
            block.bn1.gain_linear.weight.normal_()
    g.eval()
    z, y = torch.randn(2, cfg.z_dim), torch.tensor([1, 2])
    z2 = z.clone()
    z2[:, -g.chunk:] += 1.0  # only the last block's chunk
    assert not torch.allclose(g(z, y), g(z2, y))
    assert not torch.allclose(g(z, y), g(z, torch.tensor([3, 4])))


def test_losses_on_known_scores_and_the_gradient_penalty_of_linear_critics():
    real, fake = torch.tensor([2.0, 3.0]), torch.tensor([-2.0, -1.0])
    assert losses.d_loss("hinge", real, fake).item() == 0.0
    assert losses.d_loss("wasserstein", real, fake).item() == pytest.approx(-4.0)
    assert losses.g_loss("nonsat", torch.zeros(3)).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert losses.g_loss("minimax", torch.zeros(3)).item() == pytest.approx(-torch.log(torch.tensor(2.0)).item())
    assert losses.d_loss("minimax", torch.zeros(1), torch.zeros(1)).item() == pytest.approx(2 * 0.6931, abs=1e-4)

    class Linear(torch.nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.w = torch.full((1, 4), norm / 2.0)  # ‖w‖ = norm

        def forward(self, x, y=None):
            return x.flatten(1) @ self.w.t(), None

    g = torch.Generator().manual_seed(0)
    x, x_fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    assert losses.gradient_penalty(Linear(1.0), x, x_fake, None, generator=g).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.gradient_penalty(Linear(3.0), x, x_fake, None, generator=g).item() == pytest.approx(4.0, abs=1e-5)


def test_ema_averages_parameters_and_copies_buffers():
    net = torch.nn.BatchNorm1d(2)
    ema = WeightEMA(net, decay=0.9, start_step=1)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.running_mean.fill_(5.0)
    ema.update(net, step=0)  # before start: a copy
    assert torch.equal(ema.model.weight, net.weight) and torch.equal(ema.model.running_mean, net.running_mean)
    with torch.no_grad():
        net.weight.fill_(13.0)
    ema.update(net, step=1)
    assert torch.allclose(ema.model.weight, torch.full((2,), 0.9 * 3 + 0.1 * 13))



def test_debiased_ema_is_the_normalised_average_of_the_weights_seen():
    """debias=True: after updates at steps s₀ … s₀+n−1 the average is Σ βⁿ⁻ⁱ θᵢ / Σ βⁿ⁻ⁱ over those weights,
    none of the weights copied before s₀ (closed form on a scalar); the plain average keeps βⁿ of them."""
    net = torch.nn.Linear(1, 1, bias=False)
    debiased, plain = WeightEMA(net, decay=0.9, start_step=2, debias=True), WeightEMA(net, decay=0.9, start_step=2)
    values = [7.0, -1.0, 2.0, 5.0, 11.0]  # steps 0, 1 copy; steps 2, 3, 4 average
    for step, value in enumerate(values):
        with torch.no_grad():
            net.weight.fill_(value)
        debiased.update(net, step=step)
        plain.update(net, step=step)
    seen, beta = values[2:], 0.9
    weights = [beta ** (len(seen) - 1 - i) for i in range(len(seen))]
    expected = sum(w * v for w, v in zip(weights, seen)) / sum(weights)
    assert debiased.model.weight.item() == pytest.approx(expected, rel=1e-6)
    copied = values[1]  # what the plain average started from
    plain_expected = beta ** 3 * copied + (1 - beta) * sum(w * v for w, v in zip(weights, seen))
    assert plain.model.weight.item() == pytest.approx(plain_expected, rel=1e-6)
    assert debiased_weight(0.9, 1) == 1.0 and debiased_weight(0.0, 5) == 1.0
    with pytest.raises(ValueError, match="first update is number 1"):
        debiased_weight(0.9, 0)

def test_standing_stats_are_the_exact_batch_norm_moments_over_fixed_latents():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.bn = torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)

        def forward(self, z, y=None):
            return self.bn(self.lin(z))

    net = Net()
    ema = WeightEMA(net, decay=0.5, start_step=0)
    with torch.no_grad():
        net.bn.running_mean.fill_(100.0)
    ema.update(net, step=0)  # copies the live statistics, which do not fit the averaged weights
    latents = torch.randn(40, 3)
    ema.standing_stats(latents, None, batch_size=8)
    pre = ema.model.lin(latents).detach()
    assert torch.allclose(ema.model.bn.running_mean, pre.mean(0), atol=1e-6)
    assert ema.model.bn.momentum == 0.1 and not ema.model.training


def test_sampler_is_batch_independent_uint8_and_checks_labels():
    cfg = smoke("biggan-lite")
    g, _ = build_models(cfg, shape=cfg.shape, num_classes=10)
    sampler = GanSampler(g, z_dim=cfg.z_dim, num_classes=10, conditional=True, batch_size=4)
    x = sampler.sample(9, seed=1)
    assert x.dtype == torch.uint8 and x.shape == (9, 1, 28, 28)
    assert torch.equal(x[:5], GanSampler(g, z_dim=cfg.z_dim, num_classes=10, conditional=True,
                                         batch_size=2).sample(5, seed=1))
    assert torch.equal(sampler.labels_for(12)[:3], torch.tensor([0, 1, 2])) and sampler.labels_for(12)[10] == 0
    assert sampler.sample(3, seed=1, truncation=0.5).shape == (3, 1, 28, 28)
    with pytest.raises(GenevalInputError, match="expected 3 ints in"):
        sampler.sample(3, seed=1, labels=[0, 1, 10])
    uncond = GanSampler(g, z_dim=cfg.z_dim, num_classes=10, conditional=False)
    with pytest.raises(GenevalInputError, match="unconditional"):
        uncond.sample(2, seed=0, labels=[0, 1])


# ============================================================================================ bad configs

@pytest.mark.parametrize("preset, overrides, message", [
    ("dcgann", {}, "unknown GAN preset 'dcgann'; known: mlp, dcgan"),
    ("dcgan", {"lrg": "1"}, "unknown key 'lrg'"),
    ("dcgan", {"d_cond": "projection"}, "d_cond=projection needs class labels: set conditional=true"),
    ("dcgan", {"conditional": "true"}, "g_cond=none and d_cond=none"),
    ("sngan", {"clip": "0.01"}, "belongs to loss=wasserstein, not hinge"),
    ("wgan", {"gp_weight": "10"}, "use one"),
    ("wgan-gp", {"d_norm": "batch"}, "invalidates a per-sample gradient penalty"),
    ("dcgan", {"loss": "wasserstein"}, "needs a Lipschitz constraint"),
    ("sagan", {"attention_res": "28"}, "attention_res=28 is not a feature-map resolution"),
    ("mlp", {"skip_z": "true"}, "needs a convolutional generator"),
    ("dcgan", {"shared_embedding": "true"}, "shared_embedding=true feeds conditional batch norm"),
    ("dcgan", {"loss": "lsgan"}, "loss='lsgan' is unknown; expected one of minimax, nonsat"),
    ("sngan", {"d_norm": "batch"}, "applies to arch=dcgan only"),
    ("dcgan", {"n_dis": "0"}, "n_dis=0 must be ≥ 1"),
    ("sagan", {"attention_res": "0", "attention_block": "residual"}, "attention_res=0 places none"),
    ("sagan", {"attention_block": "conv"}, "attention_block='conv' is unknown"),
])
def test_bad_configurations_fail_at_start_with_one_line(preset, overrides, message):
    with pytest.raises(GenevalInputError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        build_config(preset=preset, budget="smoke", overrides=overrides)
    assert "\n" not in str(info.value)


def test_presets_resolve_attention_and_keep_their_recipes():
    sagan = build_config(preset="sagan")
    assert sagan.attention_res == 14 and sagan.sn_g and sagan.lr_d == 4 * sagan.lr_g
    assert build_config(preset="sagan", dataset="cifar10").attention_res == 16
    big = build_config(preset="biggan-lite", budget="small", overrides={"width_mult": "2"})
    assert big.shared_embedding and big.skip_z and big.ortho_beta == 1e-4 and big.width_mult == 2.0
    assert set(PRESETS) == {"mlp", "dcgan", "cgan", "wgan", "wgan-gp", "sngan", "sagan", "biggan-lite"}


# ================================================================================== training and resumption

def _train(cfg, out, **kwargs):
    from trainers.gan.train import train

    return train(cfg, out=out, **kwargs)


def _same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _same_state(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], (list, tuple)) and a[key] and isinstance(a[key][0], dict):
            for x, y in zip(a[key], b[key]):
                _same_state(x, y)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_trains_resumes_exactly_evaluates_and_records(preset, tmp_path):
    cfg = smoke(preset)
    whole = _train(cfg, tmp_path / "whole")
    assert _train(cfg, tmp_path / "split", stop_after_steps=1) == {"stopped": 1}
    with pytest.raises(GenevalInputError, match="pass --resume"):
        _train(cfg, tmp_path / "split")
    resumed = _train(cfg, tmp_path / "split", resume=True)

    # the same parameters, optimiser moments, EMA, SN vectors and BN statistics with and without an interruption
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["trainer"]
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["trainer"]
    for key in ("G", "D", "G_ema"):
        if a[key] is not None:
            _same_state(a[key], b[key])
    for key in ("opt_g", "opt_d"):
        _same_state(a[key]["state"], b[key]["state"])
    assert resumed["metrics"] == whole["metrics"]

    record = whole
    assert record["family"] == "gan" and record["preset"] == preset and record["steps"] == cfg.steps
    assert set(record["metrics"]) == {"final", "best"} and "fid" in record["metrics"]["final"]
    assert record["sampling"]["num_images"] == cfg.eval_samples and record["sampling"]["s_per_1000"] > 0
    assert record["params"]["generator"] > 0 and record["params_m"]["discriminator"] >= 0
    assert record["switches"]["sn_d"] == cfg.sn_d and record["switches"]["batch_size"] == cfg.batch_size
    assert record["collapse"]["detected"] in (True, False) and record["best_step"] in (2, 4)
    assert record["selection"]["reference"] == "fashion-mnist:train[59936:]"
    assert record["evaluation"]["reference"] == "fashion-mnist:test"
    assert record["evaluation"]["extractor"] == "pixels"
    skipped = record["evaluation"]["metrics_skipped"]
    assert not any("not registered" in why for why in skipped.values()), skipped  # every requested name exists
    assert ("intra_fid" in record["metrics"]["final"]) == cfg.conditional, (skipped, record["metrics"]["final"])
    for name in ("samples_final.png", "samples_best.png", "curves.png", "best.pt", "log.jsonl"):
        assert (tmp_path / "whole" / name).is_file()
    steps = [e["step"] for e in map(json.loads, (tmp_path / "split" / "log.jsonl").read_text().splitlines())
             if e["kind"] == "train"]
    assert steps == list(range(1, cfg.steps + 1))  # the resumed log has no duplicated steps


def test_resume_refuses_a_changed_config(tmp_path):
    cfg = smoke("mlp")
    _train(cfg, tmp_path / "r", stop_after_steps=1)
    with pytest.raises(GenevalInputError, match="different config .keys lr_g"):
        _train(dataclasses.replace(cfg, lr_g=1e-3), tmp_path / "r", resume=True)


# ==================================================================================================== CLI

def _cli(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([GENEVAL, "train", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_cli_trains_stops_resumes_and_sweeps_truncation(tmp_path):
    out = tmp_path / "sagan"
    args = ["gan", "--preset", "sagan", "--budget", "smoke", "--out", str(out), "--set", "eval_samples=100"]
    first = _cli(*args, "--stop-after-steps", "2")
    assert first.returncode == 0, first.stderr
    assert "continue with --resume" in first.stderr and not (out / "record.json").exists()
    second = _cli(*args, "--resume")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4 and "fid" in summary["final"] and "fid" in summary["best"]
    sweep = _cli("gan-truncation", str(out), "--thresholds", "none,1,0.25", "--num-samples", "80")
    assert sweep.returncode == 0, sweep.stderr
    assert "| threshold | fid |" in sweep.stdout and "| 0.25 |" in sweep.stdout
    rows = (out / "truncation.csv").read_text().splitlines()
    assert rows[0].startswith("threshold,fid") and len(rows) == 4 and (out / "truncation.png").is_file()
    assert (out / "truncation_samples.png").is_file()


def test_cli_bad_configs_print_one_line_and_exit_2(tmp_path):
    result = _cli("gan", "--preset", "dcgan", "--set", "d_cond=projection", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: d_cond=projection needs class labels: set conditional=true (or d_cond=none)"]
    assert not (tmp_path / "x").exists()
    shown = _cli("gan", "--preset", "wgan-gp", "--budget", "small", "--print-config", "--out", str(tmp_path / "x"))
    assert json.loads(shown.stdout)["gp_weight"] == 10.0


def test_pixel_gaussian_baseline_matches_the_train_moments_and_is_scored(tmp_path):
    from trainers.gan.baseline import pixel_gaussian_samples, run_baseline

    images = torch.randint(0, 256, (500, 1, 4, 4), dtype=torch.uint8)
    samples = pixel_gaussian_samples(images, num=4000, seed=0)
    assert samples.dtype == torch.uint8 and samples.shape == (4000, 1, 4, 4)
    assert torch.allclose(samples.double().mean(0), images.double().mean(0), atol=4.0)
    assert torch.equal(samples[:10], pixel_gaussian_samples(images, num=10, seed=0))
    record = run_baseline(smoke("dcgan"), out=tmp_path / "baseline")
    assert record["model"] == "pixel-gaussian" and "fid" in record["metrics"]["final"]
    assert record["evaluation"]["reference"] == "fashion-mnist:test"
