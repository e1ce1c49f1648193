"""Flows (NICE, RealNVP, Glow): every layer inverts and has the log-det of its numerical Jacobian; a 2-pixel flow's
density integrates to 1; the reported bits/dim is the dequantised bound computed directly; smoke runs resume exactly."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.autograd.functional import jacobian

from geneval.errors import GenevalInputError
from geneval.likelihood import EIGHT_BIT, evaluate
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import LikelihoodAdapter, train
from trainers.common.runs import RunDir
from trainers.flows import layers as L
from trainers.flows.models import Flow, eval_noise, glow, nice, realnvp
from trainers.flows.train import SPECS, make_config

GENEVAL = str(Path(sys.executable).with_name("geneval"))


def randomize(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Random parameters (the coupling nets' last layers start at zero: the identity) and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p + scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, L.BatchNormFlow):
                m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return module.double().eval()


def conv_net(c_in, c_out):
    return L.ConvNet(c_in, c_out, hidden=5, num_hidden=1)


SHAPE = (4, 2, 2)  # tiny images: 16 dimensions, so the Jacobian is 16 × 16
LAYERS = {
    "additive coupling (NICE, alternating)": lambda: L.Coupling(L.MLP(16, 16, hidden=7, num_hidden=2),
                                                                mask=L.alternating_mask(16, parity=1), scale=None,
                                                                channels=16),
    "affine coupling, checkerboard, tanh": lambda: L.Coupling(conv_net(4, 8), mask=L.checkerboard_mask(SHAPE, parity=0),
                                                             scale="tanh", channels=4),
    "affine coupling, channel mask, tanh": lambda: L.Coupling(conv_net(4, 8), mask=L.channel_mask(SHAPE, parity=1),
                                                             scale="tanh", channels=4),
    "affine coupling, split, sigmoid (Glow)": lambda: L.Coupling(conv_net(2, 4), mask="split", scale="sigmoid",
                                                                channels=4),
    "additive coupling, split": lambda: L.Coupling(conv_net(2, 2), mask="split", scale=None, channels=4),
    "NICE scaling": lambda: L.Scaling((16,)),
    "act-norm": lambda: L.ActNorm(4),
    "batch-norm (RealNVP, evaluation)": lambda: L.BatchNormFlow(4),
    "1x1 conv, plain": lambda: L.InvConv1x1(4, lu=False),
    "1x1 conv, LU": lambda: L.InvConv1x1(4, lu=True),
    "squeeze": lambda: L.Squeeze(),
    "flatten": lambda: L.Flatten(SHAPE),
    "logit (RealNVP)": lambda: L.LogitTransform(0.05),
    "shift (Glow)": lambda: L.Shift(),
}
VECTOR = {"additive coupling (NICE, alternating)", "NICE scaling"}


def tiny_input(name: str, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if name.startswith("logit"):
        x = torch.rand(batch, *SHAPE, generator=g, dtype=torch.float64) * 0.98 + 0.01
    else:
        x = torch.randn(batch, *SHAPE, generator=g, dtype=torch.float64)
    return x.reshape(batch, -1) if name in VECTOR else x


@pytest.mark.parametrize("name", list(LAYERS))
def test_inverse_of_forward_is_identity(name):
    torch.manual_seed(0)
    layer = randomize(LAYERS[name]())
    x = tiny_input(name, 8)
    y, logdet = layer(x)
    assert y.shape[0] == 8 and logdet.shape == (8,)
    assert float((layer.inverse(y) - x).abs().max().detach()) <= 1e-5
    # and in float32, the precision the models train in
    layer32 = layer.float()
    x32 = x.float()
    assert float((layer32.inverse(layer32(x32)[0]) - x32).abs().max().detach()) <= 1e-5


def test_split_inverts():
    x = torch.randn(3, 4, 2, 2)
    kept, z = L.Split()(x)
    assert torch.equal(L.Split().inverse(kept, z), x)


@pytest.mark.parametrize("name", list(LAYERS))
def test_log_det_equals_numerical_jacobian(name):
    torch.manual_seed(0)
    layer = randomize(LAYERS[name]())
    x = tiny_input(name, 1)
    _, logdet = layer(x)
    jac = jacobian(lambda v: layer(v.reshape(x.shape))[0].reshape(-1), x.reshape(-1))
    sign, log_abs = torch.linalg.slogdet(jac)
    assert sign != 0
    assert float(logdet[0].detach()) == pytest.approx(float(log_abs), abs=1e-4)


def test_actnorm_data_dependent_init_and_batchnorm_training_statistics():
    x = torch.randn(64, 3, 4, 4) * torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1) + 1.5
    norm = L.ActNorm(3).train()
    y, _ = norm(x)
    assert int(norm.initialized) == 1
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    before = norm.bias.detach().clone()
    norm(x * 5)  # initialised once: a second batch does not re-initialise
    assert torch.equal(norm.bias.detach(), before)
    bn = L.BatchNormFlow(3).train()
    y, _ = bn(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert not torch.equal(bn.running_mean, torch.zeros(3))


TINY_MODELS = {
    "nice": lambda shape: nice(shape=shape, hidden=6, num_hidden=2, num_couplings=4),
    "realnvp": lambda shape: realnvp(shape=shape, hidden=4, num_hidden=1, num_scales=2, num_couplings=2),
    "glow": lambda shape: glow(shape=shape, hidden=4, num_hidden=1, num_levels=2, depth=2, lu=True),
    "glow-plain": lambda shape: glow(shape=shape, hidden=4, num_hidden=1, num_levels=2, depth=2, lu=False),
}


@pytest.mark.parametrize("name", list(TINY_MODELS))
def test_whole_flows_invert_and_their_log_density_is_the_change_of_variables(name):
    """Every model on a 1×4×4 image (two squeezes for Glow, a factor-out for RealNVP and Glow): the inverse of
    the latents is the input, and log p(y) = log p_base(f(y)) + log|det ∂f/∂y| with the Jacobian numerical."""
    torch.manual_seed(0)
    flow = randomize(TINY_MODELS[name]((1, 4, 4)), scale=0.2)
    y = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.9 + 0.05
    with torch.no_grad():
        zs, _ = flow(y)
        assert float((flow.inverse(zs) - y).abs().max()) <= 1e-5

    def flat(v):
        return torch.cat([z.reshape(-1) for z in flow(v.reshape(1, 1, 4, 4))[0]])

    jac = jacobian(flat, y[:1].reshape(-1))
    z = flat(y[:1].reshape(-1))
    base = (-0.5 * z * z - 0.5 * math.log(2 * math.pi)).sum() if flow.prior == "gaussian" else \
        -(torch.nn.functional.softplus(z) + torch.nn.functional.softplus(-z)).sum()
    expected = float((base + torch.linalg.slogdet(jac)[1]).detach())
    assert float(flow.log_density(y[:1])[0].detach()) == pytest.approx(expected, abs=1e-4)


def glow_step_on_two_pixels():
    """A Glow step (act-norm, LU 1×1 conv, affine coupling) with the two pixels as channels of a 1×1 image."""
    layers = [L.Shift(), L.ActNorm(2), L.InvConv1x1(2, lu=True),
              L.Coupling(L.ConvNet(1, 2, hidden=4, num_hidden=1), mask="split", scale="sigmoid", channels=2),
              L.ActNorm(2), L.InvConv1x1(2, lu=True),
              L.Coupling(L.ConvNet(1, 2, hidden=4, num_hidden=1), mask="split", scale="sigmoid", channels=2)]
    return Flow(shape=(2, 1, 1), layers=layers)


def grid_integral(flow, *, low: float, high: float, n: int, shape, unit_interval: bool = False) -> float:
    """Midpoint rule of exp(log p) over [low, high]² (float64). ``unit_interval``: integrate over the data range
    (0, 1)² through x = sigmoid(t), t ∈ [low, high] (a grid that refines towards the edges, where the logit
    pre-processing puts much of the mass): ∫ p(x) dx = ∫ p(σ(t)) σ'(t) dt."""
    h = (high - low) / n
    t = low + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    weight = torch.ones_like(t)
    if unit_interval:
        t, weight = torch.sigmoid(t), torch.sigmoid(t) * torch.sigmoid(-t)
    a, b = torch.meshgrid(t, t, indexing="ij")
    wa, wb = torch.meshgrid(weight, weight, indexing="ij")
    points = torch.stack([a.reshape(-1), b.reshape(-1)], 1)
    with torch.no_grad():
        density = torch.exp(flow.log_density(points.reshape(-1, *shape)))
    return float((density * (wa * wb).reshape(-1)).sum()) * h * h


def test_two_pixel_densities_integrate_to_one():
    torch.manual_seed(0)
    # RealNVP's own builder on a 1×2 image with α = 0: logit maps (0, 1)² onto R², so the data range holds all mass
    nvp = randomize(realnvp(shape=(1, 1, 2), hidden=4, num_hidden=1, num_scales=1, num_couplings=2, logit_alpha=0.0))
    assert grid_integral(nvp, low=-30.0, high=30.0, n=600, shape=(1, 1, 2), unit_interval=True) == \
        pytest.approx(1.0, abs=1e-3)
    # with the paper's α = 0.05 the logit's range is bounded: the mass outside it is lost (a sub-probability density)
    nvp05 = randomize(realnvp(shape=(1, 1, 2), hidden=4, num_hidden=1, num_scales=1, num_couplings=2, logit_alpha=0.05))
    assert grid_integral(nvp05, low=-30.0, high=30.0, n=300, shape=(1, 1, 2), unit_interval=True) < 1.0
    # NICE (logistic prior) and a Glow step live on R²: integrate over a box holding all but a negligible tail
    flow = randomize(nice(shape=(1, 1, 2), hidden=5, num_hidden=2, num_couplings=4), scale=0.2)
    with torch.no_grad():
        flow.layers[-1].log_scale.fill_(1.0)  # NICE's scaling: concentrate the density (tails e^-|z| decay fast)
    assert grid_integral(flow, low=-12.0, high=12.0, n=800, shape=(1, 1, 2)) == pytest.approx(1.0, abs=1e-3)
    step = randomize(glow_step_on_two_pixels(), scale=0.3)
    assert grid_integral(step, low=-20.0, high=20.0, n=600, shape=(2, 1, 1)) == pytest.approx(1.0, abs=1e-3)


def test_dequantised_probabilities_of_all_8bit_two_pixel_images_sum_to_at_most_one():
    """exp(log_prob) over all 256² images: ≤ 1 (the bound, Jensen: exp E_u log p ≤ ∫_cell p), and close to 1 (the
    gap is the Jensen gap within the 1/256-wide cells, largest at the edges where the logit is steep)."""
    torch.manual_seed(0)
    nvp = randomize(realnvp(shape=(1, 1, 2), hidden=4, num_hidden=1, num_scales=1, num_couplings=2, logit_alpha=0.0))
    values = torch.cartesian_prod(torch.arange(256), torch.arange(256)).to(torch.uint8).view(-1, 1, 1, 2)
    with torch.no_grad():
        nvp.float()
        total = float(torch.exp(nvp.log_prob(values)).sum())
    assert 0.95 < total <= 1.0 + 1e-6


def test_reported_bits_per_dim_is_minus_mean_log_density_of_dequantised_data(mnist_npz):
    """geneval.likelihood's bits/dim of a flow = −E log p(x + u) / (D ln 2), with p the density on [0, 256]^D
    (the flow's density on [0, 1]^D divided by 256^D) and u the evaluation's noise, computed here directly."""
    torch.manual_seed(0)
    flow = randomize(TINY_MODELS["glow"]((1, 28, 28)), scale=0.05).float()
    from geneval.datasets import open_dataset

    adapter = LikelihoodAdapter(flow, kind="elbo", convention=EIGHT_BIT)
    result = evaluate(adapter, "mnist:test", num=50, batch_size=17)
    images = torch.from_numpy(open_dataset("mnist", "test")[0][:50].copy())
    u = eval_noise(images)
    assert float(u.min()) >= 0 and float(u.max()) < 1
    with torch.no_grad():  # density on [0, 256]^D of x + u: p_[0,1]((x + u)/256) / 256^D
        log_p = flow.log_density(((images.double() + u) / 256).float()).double() - 784 * math.log(256)
    direct = float(-log_p.mean() / (784 * math.log(2)))
    assert result.bits_per_dim == pytest.approx(direct, rel=1e-9)
    assert result.kind == "elbo" and result.bound
    # the noise is per image, not per batch: another batching gives the same number
    assert evaluate(adapter, "mnist:test", num=50, batch_size=50).nats == pytest.approx(result.nats, rel=1e-12)


def test_importance_weighted_dequantisation_bound(mnist_npz):
    """K draws of u: log (1/K) Σ_k p(x + u_k), computed here directly from the draws' noise; K = 1 is the one-draw
    bound exactly; per image it is ≥ the mean of the K one-draw values (Jensen), so its NLL is lower."""
    torch.manual_seed(0)
    flow = randomize(TINY_MODELS["realnvp"]((1, 28, 28)), scale=0.05).float()
    from geneval.datasets import open_dataset

    images = torch.from_numpy(open_dataset("mnist", "test")[0][:20].copy())
    if images.dim() == 3:
        images = images[:, None]
    with torch.no_grad():
        one = flow.log_prob(images)
        assert torch.equal(flow.log_prob(images, dequantization_samples=1), one)
        draws = torch.stack([flow.log_density(((images.double() + eval_noise(images, k)) / 256).float()).double()
                             - 784 * math.log(256) for k in range(4)])
        iw = flow.log_prob(images, dequantization_samples=4)
    assert torch.allclose(draws[0], one.double(), rtol=0, atol=1e-6)  # draw 0 is the one-draw bound's noise
    assert not torch.equal(eval_noise(images, 1), eval_noise(images, 0))
    assert torch.allclose(iw, torch.logsumexp(draws, 0) - math.log(4), rtol=0, atol=1e-6)
    assert bool((iw >= draws.mean(0) - 1e-9).all()) and float(iw.mean()) > float(draws.mean())
    with pytest.raises(ValueError):
        flow.log_prob(images, dequantization_samples=0)


def test_sampling_is_per_sample_and_temperature_scales_the_latents():
    torch.manual_seed(0)
    flow = randomize(TINY_MODELS["glow"]((1, 8, 8)), scale=0.1).float()
    a = flow.sample(6, seed=3)
    assert a.dtype == torch.uint8 and a.shape == (6, 1, 8, 8)
    assert torch.equal(a[2:], flow.sample(4, seed=3, first=2))
    assert torch.equal(a, flow.sample(6, seed=3, batch_size=4))
    cold = flow.latents(3, seed=3, temperature=0.5)
    for z1, zt in zip(flow.latents(3, seed=3), cold):
        assert torch.allclose(0.5 * z1, zt)
    assert not torch.equal(flow.sample(6, seed=3, temperature=0.5), a)
    with pytest.raises(ValueError):
        flow.sample(2, seed=0, temperature=0.0)


def params_of(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.pt")["trainer"]["model"]


@pytest.mark.parametrize("name", ["nice", "realnvp", "glow"])
def test_smoke_train_resume_exactly(name, tmp_path, mnist_npz):
    config = make_config(name, budget="smoke", dataset="mnist", overrides={})
    whole = train(SPECS[name], config, out=tmp_path / "whole", budget="smoke")
    assert train(SPECS[name], config, out=tmp_path / "split", budget="smoke", stop_after_steps=3) is None
    resumed = train(SPECS[name], config, out=tmp_path / "split", budget="smoke", resume=True)
    a, b = params_of(tmp_path / "whole"), params_of(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # incl. act-norm / batch-norm buffers

    def losses(run):
        return [(e["step"], e["train_nats"]) for e in RunDir(tmp_path / run).read_log()]

    assert losses("split") == losses("whole")
    drop = ("wall_time_s", "software", "sampling", "record_version")
    strip = (lambda r: {k: v for k, v in r.items() if k not in drop and k != "likelihood"})
    assert strip(resumed) == strip(whole)
    assert resumed["likelihood"]["nats"] == whole["likelihood"]["nats"]
    assert whole["likelihood"]["kind"] == "elbo" and whole["likelihood"]["convention"]["data"] == "8bit"
    assert whole["published"]["bits_per_dim"] == {"nice": 4.34, "realnvp": 1.06, "glow": 1.05}[name]
    assert (tmp_path / "split" / "samples.png").stat().st_size > 0


def test_family_contract_cli_and_geneval_likelihood(tmp_path, mnist_npz):
    from geneval import family

    flows = family.get("flows")
    assert flows.option("temperature").default is None
    out = tmp_path / "glow"
    base = [GENEVAL, "train", "glow", "--budget", "smoke", "--out", str(out)]  # --dataset: mnist by default
    done = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["dataset"] == "mnist" and summary["steps"] == 6
    evaluated = subprocess.run([GENEVAL, "likelihood", str(out / "checkpoint.pt"), "--num", "64", "--json", "-q"],
                               capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["nats"] == pytest.approx(summary["test_nats"], rel=1e-12) and result["kind"] == "elbo"
    # re-scoring at a temperature: the run's sample seeds, only T differs; T = 1 reproduces the record's samples
    config = flows.resolve(preset="glow", budget="smoke", dataset="mnist", overrides={}, seed=0)
    record = json.loads((out / "record.json").read_text())
    same, _ = flows.evaluate(out, config=config, which="final", metrics=("fid",), temperature=1.0)
    assert same["fid"]["value"] == pytest.approx(record["metrics"]["final"]["fid"]["value"], rel=1e-9)
    cold, protocol = flows.evaluate(out, config=config, which="final", metrics=("fid",), temperature=0.5)
    assert protocol["temperature"] == 0.5 and cold["fid"]["value"] != same["fid"]["value"]
    assert cold["test_bits_per_dim"] == record["metrics"]["final"]["test_bits_per_dim"]
    # re-scoring the likelihood with K draws of u: the record's samples and sample metrics, a tighter bound
    iw, protocol = flows.evaluate(out, config=config, which="final", metrics=("fid",), dequantization_samples=3)
    assert protocol["dequantization_samples"] == 3 and iw["fid"] == record["metrics"]["final"]["fid"]
    assert iw["test_bits_per_dim"]["label"] == "test bits/dim (iwae-3)"
    assert iw["test_nats"]["value"] < record["metrics"]["final"]["test_nats"]["value"]
    one, _ = flows.evaluate(out, config=config, which="final", metrics=("fid",), dequantization_samples=1)
    assert one["test_nats"]["value"] == pytest.approx(record["metrics"]["final"]["test_nats"]["value"], rel=1e-12)


def test_bad_configs_fail_at_start():
    with pytest.raises(GenevalInputError, match="8-bit"):
        make_config("glow", budget="smoke", dataset="binarized-mnist", overrides={})
    with pytest.raises(GenevalInputError, match="divisible by 8"):  # 28×28 allows two squeezes
        make_config("glow", budget="smoke", dataset="mnist", overrides={"num_levels": "3"})
    with pytest.raises(GenevalInputError, match="norm"):
        make_config("realnvp", budget="smoke", dataset="mnist", overrides={"norm": "layernorm"})
    for budget in ("small", "paper"):
        for name in SPECS:
            make_config(name, budget=budget, dataset="mnist", overrides={})
