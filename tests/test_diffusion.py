"""DDPM (trainers/diffusion): the closed forms of the process and the bound, the samplers, exact resume, the family.

The closed-form checks (Ho et al. 2020 eqs. 4–7, 13; Song et al. 2021 eq. 12) use tiny processes (T = 20) and a
tiny U-Net whose zero-initialised output layers are randomised, so that every term is non-trivial.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from geneval.errors import GenevalInputError
from geneval.family import check
from trainers.common.seeding import generator
from trainers.diffusion import diffusion as D
from trainers.diffusion.family import DIFFUSION, build_config
from trainers.diffusion.model import UNet
from trainers.diffusion.samplers import DiffusionSampler, respaced, timestep_sequence


def fashion_available() -> bool:
    from geneval.datasets import DATASETS

    try:
        DATASETS.get("fashion-mnist").find("train").path
    except AttributeError:
        return False
    return True


needs_data = pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST is not installed")


def tiny_config(**changes):
    base = build_config(preset="ddpm", budget="smoke", dataset="fashion-mnist", overrides={})
    return dataclasses.replace(base, **{"timesteps": 20, **changes})


def tiny_model(cfg, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(cfg).eval()
    with torch.no_grad():  # the reference zero-initialises the output layers; randomise them for the checks
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and not module.weight.abs().sum():
                module.weight.normal_(0, 0.05)
    return model


def images(num: int, seed: int = 0) -> torch.Tensor:
    """uint8 test images [num, 1, 28, 28]: smooth blobs with both extremes (0 and 255) present."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(num, 1, 7, 7, generator=g)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x - x.amin((1, 2, 3), keepdim=True)) / (x.amax((1, 2, 3), keepdim=True) - x.amin((1, 2, 3), keepdim=True))
    return (x * 255).round().to(torch.uint8)


# --------------------------------------------------------------------------------------------- schedules


def test_schedules():
    linear = D.linear_betas(1000)
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02)
    cosine = D.cosine_betas(1000)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    ac = torch.cumprod(1 - cosine, 0)
    expected = torch.tensor([f((t + 1) / 1000) / f(0) for t in range(1000)], dtype=torch.float64)
    assert torch.allclose(ac[:-5], expected[:-5], rtol=1e-10)  # Nichol & Dhariwal eq. 17 (β clipped at 0.999 at the end)
    assert cosine.max() <= 0.999


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_q_closed_form_equals_t_forward_steps(schedule):
    """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (eq. 4) equals t steps of eq. 2: exactly for the moments'
    recursion, and within Monte-Carlo error for a seeded batch run through the chain."""
    d = D.GaussianDiffusion(D.make_betas(schedule, 1000))
    mean, var = 1.0, 0.0
    for t in range(1000):  # the moments of one coordinate through the chain, x_0 = 1
        beta = float(d.betas[t])
        mean, var = math.sqrt(1 - beta) * mean, (1 - beta) * var + beta
        if t in (0, 9, 99, 499, 999):
            q_mean, q_var, _ = d.q_mean_variance(torch.ones(1, 1), torch.tensor([t]))
            assert q_mean.item() == pytest.approx(mean, rel=1e-10) and q_var.item() == pytest.approx(var, rel=1e-10)

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    n = 4000
    x = x0.repeat(n, 1, 1, 1)
    checks = {0, 9, 99, 299}
    for t in range(max(checks) + 1):
        x = d.q_step(x, torch.full((len(x),), t), torch.randn(x.shape, generator=g, dtype=torch.float64))
        if t in checks:
            q_mean, q_var, _ = d.q_mean_variance(x0, torch.full((4,), t))
            chain = x.reshape(n, *x0.shape)
            se_mean = (q_var / n).sqrt()
            assert ((chain.mean(0) - q_mean).abs() < 5 * se_mean).all()
            se_var = q_var * math.sqrt(2 / (n - 1))
            assert ((chain.var(0) - q_var).abs() < 5 * se_var).all()
            # and q_sample (the reparameterisation) draws the same law
            direct = d.q_sample(x0.repeat(n, 1, 1, 1), torch.full((4 * n,), t),
                                torch.randn(x.shape, generator=g, dtype=torch.float64)).reshape(n, *x0.shape)
            assert ((direct.mean(0) - q_mean).abs() < 5 * se_mean).all()


# --------------------------------------------------------------------------------------------- the bound


def test_discretised_decoder_sums_to_one():
    values = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 256 pixel values in [−1, 1]
    g = torch.Generator().manual_seed(1)
    means = torch.rand(50, 1, generator=g, dtype=torch.float64) * 2.4 - 1.2
    log_scales = torch.rand(50, 1, generator=g, dtype=torch.float64) * 6 - 6.5  # σ from 1.5e-3 to 0.6
    logp = D.discretized_gaussian_log_likelihood(values[None].expand(50, 256), means=means.expand(50, 256),
                                                 log_scales=log_scales.expand(50, 256))
    assert torch.allclose(logp.exp().sum(1), torch.ones(50, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("model_var", ["fixedlarge", "fixedsmall", "learned_range"])
def test_every_kl_term_equals_monte_carlo(model_var):
    """KL(q(x_{t−1}|x_t,x_0) ‖ p_θ(x_{t−1}|x_t)) in closed form vs the mean of log q − log p over draws from q,
    for every t of a T = 20 process, and the prior term L_T; each within 4 standard errors."""
    cfg = tiny_config(model_var=model_var)
    model, d = tiny_model(cfg), D.GaussianDiffusion(D.make_betas("linear", 20), model_var=model_var)
    x0 = (images(1).double() / 127.5 - 1)
    g = torch.Generator().manual_seed(2)
    draws = 400
    for t in range(1, 20):
        tt = torch.tensor([t])
        xt = d.q_sample(x0, tt, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        with torch.no_grad():
            output = model(xt.float(), tt).double()
        closed = d.vb_term(output, x0, xt, tt).item()
        q_mean, _, q_log_var = d.q_posterior(x0, xt, tt)
        p = d.p_mean_variance(output, xt, tt)
        x_prev = q_mean + torch.exp(0.5 * q_log_var) * torch.randn((draws, *x0.shape[1:]), generator=g,
                                                                    dtype=torch.float64)
        log_ratio = D.sum_dims(D.normal_log_prob(x_prev, q_mean, q_log_var) -
                               D.normal_log_prob(x_prev, p.mean, p.log_variance))
        mc, se = log_ratio.mean().item(), (log_ratio.std() / math.sqrt(draws)).item()
        assert abs(closed - mc) < 4 * se + 1e-9, (t, closed, mc, se)
    # the prior term: KL(q(x_T | x_0) ‖ N(0, I))
    mean, _, log_var = d.q_mean_variance(x0, torch.tensor([19]))
    x_T = mean + torch.exp(0.5 * log_var) * torch.randn((draws, *x0.shape[1:]), generator=g, dtype=torch.float64)
    log_ratio = D.sum_dims(D.normal_log_prob(x_T, mean, log_var) -
                           D.normal_log_prob(x_T, torch.zeros_like(x_T), torch.zeros_like(x_T)))
    se = (log_ratio.std() / math.sqrt(draws)).item()
    assert abs(d.prior_kl(x0).item() - log_ratio.mean().item()) < 4 * se


def test_bound_is_the_sum_of_its_terms_and_strata_are_unbiased():
    cfg = tiny_config()
    model, d = tiny_model(cfg), D.GaussianDiffusion(D.make_betas("linear", 20))
    network = lambda x, t, y: model(x.float(), t)  # noqa: E731
    x0 = images(2).float() / 127.5 - 1
    with torch.no_grad():
        total, parts = D.bound_nats(network, d, x0, [generator(0, i) for i in range(2)], terms=True)
        assert parts["terms"].shape == (2, 20)
        assert torch.allclose(total, parts["prior"] + parts["terms"].sum(1), rtol=1e-12, atol=0)
        assert (parts["terms"][:, 1:] >= 0).all() and (parts["prior"] >= 0).all()  # KLs are non-negative
        # stratified Monte Carlo over t estimates the same bound: R independent draws of each, batched
        R = 24
        xs = x0.repeat(R, 1, 1, 1)
        full = D.bound_nats(network, d, xs, [generator(1, i) for i in range(2 * R)]).reshape(R, 2)
        strat = D.bound_nats(network, d, xs, [generator(2, i) for i in range(2 * R)], num_strata=4).reshape(R, 2)
    se = (full.var(0) / R + strat.var(0) / R).sqrt()
    assert ((full.mean(0) - strat.mean(0)).abs() < 4 * se).all()
    assert D.strata(20, 4) == [(1, 6), (6, 10), (10, 15), (15, 20)]


def test_bound_as_a_geneval_likelihood_model():
    from geneval.likelihood import evaluate
    from trainers.diffusion.train import DiffusionBound

    cfg = tiny_config()
    bound = DiffusionBound(tiny_model(cfg), D.GaussianDiffusion(D.make_betas("linear", 20)), num_strata=3, seed=0)
    x = images(5)
    one = bound.log_prob(x)
    # batch-independent up to the float32 network's rounding (its noise and t come from each image's bytes)
    assert torch.allclose(torch.cat([bound.log_prob(x[:2]), bound.log_prob(x[2:])]), one, rtol=1e-6)
    result = evaluate(bound, x, batch_size=2)
    assert result.kind == "vlb" and result.bound
    assert result.nats == pytest.approx(float(-one.mean()), rel=1e-6)
    assert result.bits_per_dim == pytest.approx(result.nats / (784 * math.log(2)))


# --------------------------------------------------------------------------------------------- samplers


def test_ddim_eta_one_full_chain_is_ddpm_with_posterior_variance():
    """Song et al. 2021 §4.1: DDIM with S = T and η = 1 is DDPM's ancestral sampler with σ_t² = β̃_t."""
    cfg = tiny_config(model_var="fixedsmall")
    d = D.GaussianDiffusion(D.make_betas("linear", 20), model_var="fixedsmall")
    sampler = DiffusionSampler(tiny_model(cfg), d, shape=(1, 28, 28), num_classes=10, conditional=False)
    taus = timestep_sequence(20, 20)
    assert taus == list(range(20))
    with torch.no_grad():
        ddpm = sampler.ddpm_chain([generator(5, i) for i in range(3)], taus, None)
        ddim = sampler.ddim_chain([generator(5, i) for i in range(3)], taus, None, eta=1.0)
    assert torch.allclose(ddpm, ddim, atol=1e-9)
    # the respaced process at S = T is the process itself; at S < T it keeps the marginals q(x_τ | x_0)
    assert torch.allclose(respaced(d, taus).betas, d.betas, atol=1e-15)
    short = timestep_sequence(20, 5)
    assert short[0] == 0 and short[-1] == 19 and len(short) == 5
    assert torch.allclose(respaced(d, short).alphas_cumprod, d.alphas_cumprod[short], rtol=1e-12)


@pytest.mark.parametrize("options", [dict(sampler="ddpm", sampling_steps=6), dict(sampler="ddim", sampling_steps=4, eta=0.0),
                                     dict(sampler="ddim", sampling_steps=5, eta=1.0)])
def test_sample_i_depends_only_on_seed_and_i(options):
    cfg = tiny_config()
    d = D.GaussianDiffusion(D.make_betas("linear", 20))
    model = tiny_model(cfg)
    whole = DiffusionSampler(model, d, shape=(1, 28, 28), num_classes=10, conditional=False, batch_size=6)
    split = DiffusionSampler(model, d, shape=(1, 28, 28), num_classes=10, conditional=False, batch_size=4)
    a = whole.sample(6, 3, **options)
    assert a.dtype == torch.uint8 and a.shape == (6, 1, 28, 28)
    assert torch.equal(a, split.sample(6, 3, **options))
    assert torch.equal(a[2:], whole.sample(4, 3, first=2, **options))
    assert not torch.equal(a, whole.sample(6, 4, **options))


def test_sample_batches_kept_in_parts_resume_an_interrupted_evaluation(tmp_path):
    """draw_in_parts: a rerun loads the batches already drawn (a longer evaluation reuses a shorter one's), the
    images equal a straight draw, the seconds add up, and a damaged batch file is named in a one-line error."""
    import numpy as np

    from trainers.diffusion.train import draw_in_parts

    d = D.GaussianDiffusion(D.make_betas("linear", 20))
    sampler = DiffusionSampler(tiny_model(tiny_config()), d, shape=(1, 28, 28), num_classes=10, conditional=False,
                               batch_size=4)
    options = dict(sampler="ddim", sampling_steps=3, eta=0.0)
    parts = tmp_path / "parts"
    first, _ = draw_in_parts(sampler, 6, 5, None, options, parts)  # "interrupted" after 6 samples: 4 + 2
    assert sorted(p.name for p in parts.iterdir()) == ["0000000-4.npz", "0000004-2.npz"]
    (parts / "0000000-4.npz").write_bytes(_batch_file(np, np.zeros((4, 1, 28, 28), np.uint8), 7.0))  # marked
    whole, batches = draw_in_parts(sampler, 10, 5, None, options, parts)
    straight, _ = draw_in_parts(sampler, 10, 5, None, options, None)
    assert whole[:4].eq(0).all() and batches[0] == (4, 7.0)  # batch 0 was loaded, with its time, not drawn again
    assert [count for count, _ in batches] == [4, 4, 2]
    assert torch.equal(whole[4:], straight[4:]) and torch.equal(first[4:], straight[4:6])
    assert sorted(p.name for p in parts.iterdir()) == ["0000000-4.npz", "0000004-2.npz", "0000004-4.npz",
                                                        "0000008-2.npz"]
    (parts / "0000008-2.npz").write_bytes(_batch_file(np, np.zeros((2, 3, 28, 28), np.uint8), 1.0))
    with pytest.raises(GenevalInputError, match=r"0000008-2.npz: expected uint8 images of shape \[2, 1, 28, 28\]"):
        draw_in_parts(sampler, 10, 5, None, options, parts)
    (parts / "0000008-2.npz").write_bytes(b"PK\x03\x04 cut short")  # not what np.savez writes
    with pytest.raises(GenevalInputError, match="0000008-2.npz: not a batch of samples this sweep wrote"):
        draw_in_parts(sampler, 10, 5, None, options, parts)


def test_sampling_cost_is_the_median_batch_so_a_paused_batch_does_not_count():
    from trainers.diffusion.train import seconds_per_1000

    steady = [(250, 25.0)] * 39
    assert seconds_per_1000(steady + [(250, 1291.0)]) == pytest.approx(100.0)  # the total would say 229
    assert seconds_per_1000([(4, 2.0), (4, 2.0), (2, 1.0)]) == pytest.approx(500.0)  # per sample: a short last batch


def test_two_processes_share_a_row_one_drawing_last_first(tmp_path):
    """draw_in_parts(last_first=True) draws from the last batch back and returns the samples in order; a
    first-to-last draw that finds its batches loads them (the two meet in the middle of a shared row)."""
    import numpy as np

    from trainers.diffusion.train import draw_in_parts

    d = D.GaussianDiffusion(D.make_betas("linear", 20))
    sampler = DiffusionSampler(tiny_model(tiny_config()), d, shape=(1, 28, 28), num_classes=10, conditional=False,
                               batch_size=4)
    options = dict(sampler="ddim", sampling_steps=3, eta=0.0)
    straight, _ = draw_in_parts(sampler, 10, 5, None, options, None)
    backward, _ = draw_in_parts(sampler, 10, 5, None, options, None, last_first=True)
    assert torch.equal(backward, straight)
    parts = tmp_path / "parts"
    parts.mkdir()
    # the last-first process has kept the last two batches, marked so a reload shows
    (parts / "0000008-2.npz").write_bytes(_batch_file(np, np.full((2, 1, 28, 28), 7, np.uint8), 3.0))
    (parts / "0000004-4.npz").write_bytes(_batch_file(np, np.full((4, 1, 28, 28), 7, np.uint8), 3.0))
    shared, batches = draw_in_parts(sampler, 10, 5, None, options, parts)
    assert torch.equal(shared[:4], straight[:4]) and shared[4:].eq(7).all() and batches[1:] == [(4, 3.0), (2, 3.0)]
    assert sorted(p.name for p in parts.iterdir()) == ["0000000-4.npz", "0000004-4.npz", "0000008-2.npz"]


def _batch_file(np, images, seconds: float) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, images=images, seconds=np.float64(seconds))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- training


def test_ema_and_hybrid_loss_with_the_cosine_schedule():
    from trainers.diffusion.train import DiffusionTraining

    cfg = build_config(preset="improved", budget="smoke", dataset="fashion-mnist", overrides={})
    assert (cfg.schedule, cfg.loss, cfg.model_var) == ("cosine", "hybrid", "learned_range")
    x = images(32)
    trainer = DiffusionTraining(cfg, images=x, labels=torch.zeros(32, dtype=torch.long))
    before = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    losses = trainer.train_step()
    assert set(losses) >= {"mse", "vb", "loss"} and losses["vb"] > 0
    decay = min(cfg.ema_decay, 1 / 10)  # step 0: (1 + 0)/(10 + 0)
    for (name, ema), param in zip(trainer.ema.named_parameters(), trainer.model.parameters()):
        assert torch.allclose(ema, decay * before[name] + (1 - decay) * param.detach(), atol=1e-7)
    with pytest.raises(Exception, match="learned_range"):
        build_config(preset="ddpm", budget="smoke", dataset="fashion-mnist", overrides={"loss": "hybrid"})


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """The smoke run trained straight through, and stopped after 5 steps then resumed."""
    if not fashion_available():
        pytest.skip("Fashion-MNIST is not installed")
    from trainers.diffusion.train import train

    tmp = tmp_path_factory.mktemp("ddpm")
    cfg = build_config(preset="ddpm", budget="smoke", dataset="fashion-mnist", overrides={})
    straight = train(cfg, out=tmp / "straight", progress=False)
    assert train(cfg, out=tmp / "resumed", stop_after_steps=5, progress=False) == {"stopped": 5}
    resumed = train(cfg, out=tmp / "resumed", resume=True, progress=False)
    return cfg, tmp, straight, resumed


@needs_data
def test_resume_is_exact(smoke_runs):
    from trainers.common.checkpoint import load_checkpoint

    cfg, tmp, straight, resumed = smoke_runs
    a, b = (load_checkpoint(tmp / name / "checkpoint.pt") for name in ("straight", "resumed"))
    assert a["step"] == b["step"] == cfg.steps
    for part in ("model", "ema"):
        assert a["trainer"][part].keys() == b["trainer"][part].keys()
        for key in a["trainer"][part]:
            assert torch.equal(a["trainer"][part][key], b["trainer"][part][key]), (part, key)
    for sa, sb in zip(a["trainer"]["optimizer"]["state"].values(), b["trainer"]["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("wall_time_s", "eval_wall_time_s", "software")}  # noqa: E731
    m_a, m_b = straight["metrics"]["final"], resumed["metrics"]["final"]
    m_a.pop("sampling_s_per_1000"), m_b.pop("sampling_s_per_1000")
    assert m_a == m_b
    assert strip(straight)["likelihood"]["nats"] == strip(resumed)["likelihood"]["nats"]
    log = lambda name: [{k: v for k, v in json.loads(line).items() if k != "wall_time_s"}  # noqa: E731
                        for line in (tmp / name / "log.jsonl").read_text().splitlines()]
    assert log("straight") == log("resumed")


@needs_data
def test_family_contract_and_rescoring(smoke_runs):
    from geneval import family
    from geneval.likelihood import load_model

    cfg, tmp, straight, _ = smoke_runs
    assert family.get("diffusion") is check(DIFFUSION)
    assert {o.name for o in DIFFUSION.eval_options} == {"sampler", "sampling_steps", "eta", "num_samples"}
    assert {m.name for m in DIFFUSION.recorded_metrics} >= {"test_bits_per_dim", "sampling_s_per_1000"}
    assert straight["likelihood"]["kind"] == "vlb" and straight["evaluation"]["likelihood_split"] == "fashion-mnist:test"
    assert straight["evaluation"]["sampler"] == cfg.eval_sampler
    run = tmp / "straight"
    metrics, protocol = DIFFUSION.evaluate(run, config=cfg, which="final", metrics=("fid", "kid"), sampler="ddpm",
                                           sampling_steps=4, num_samples=20)
    assert protocol["sampler"] == "ddpm" and protocol["sampling_steps"] == 4 and protocol["num_samples"] == 20
    assert protocol["eta"] is None and protocol["likelihood_split"] == "fashion-mnist:test"
    assert metrics["test_bits_per_dim"] == straight["metrics"]["final"]["test_bits_per_dim"]
    assert metrics["sampling_s_per_1000"]["value"] > 0
    again, _ = DIFFUSION.evaluate(run, config=cfg, which="final", metrics=("fid", "kid"), sampler="ddpm",
                                  sampling_steps=4, num_samples=20)
    assert again == json.loads(json.dumps(metrics))  # kept in evaluations/, not sampled again
    samples = DIFFUSION.sampler(run).sample(3, 0, sampler="ddim", sampling_steps=3, eta=0.0)
    assert samples.shape == (3, 1, 28, 28)
    bound = load_model(str(run / "checkpoint.pt"))  # `geneval likelihood CHECKPOINT`
    assert bound.kind == "vlb"


@needs_data
def test_sweep_keeps_what_the_runner_reads(smoke_runs, tmp_path):
    """``python -m trainers.diffusion.sweep`` (here drawing last-first) keeps each row's evaluation where the
    family's ``evaluate`` (the runner's path) finds it: same key, so the runner does not sample again."""
    import shutil

    from geneval.leaderboard.spec import config_hashes, load_spec, resolve
    from trainers.diffusion import sweep

    cfg, tmp, _, _ = smoke_runs
    spec_path = tmp_path / "sweep.toml"
    spec_path.write_text('''
[table]
name = "sweep_check"
title = "sweep check"
trainer = "diffusion"
preset = "ddpm"
budget = "smoke"
dataset = "fashion-mnist"
seeds = [0]
[evaluation]
metrics = ["fid", "kid"]
[columns]
metrics = ["fid", "kid"]
which = ["final"]
[[rows]]
name = "DDIM S=3"
baseline = true
sampler = "ddim"
sampling_steps = 3
eta = 0.0
num_samples = 20
''')
    spec = load_spec(spec_path)
    row = spec.rows[0]
    _, config = resolve(spec, row, 0)
    run = tmp_path / "runs" / f"diffusion-ddpm-smoke-{config_hashes(row, config)[0]}"
    shutil.copytree(tmp / "straight", run, ignore=shutil.ignore_patterns("evaluations"))
    sweep.main([str(spec_path), "--runs-dir", str(tmp_path / "runs"), "--last-first"])
    kept = sorted((run / "evaluations").glob("*.json"))
    assert len(kept) == 1
    values, protocol = DIFFUSION.evaluate(run, config=config, which="final", metrics=("fid", "kid"),
                                          **row.eval_options)
    assert sorted((run / "evaluations").glob("*.json")) == kept  # read, not drawn and kept again
    assert values["fid"] == json.loads(kept[0].read_text())["metrics"]["fid"]
    assert (protocol["sampler"], protocol["sampling_steps"], protocol["num_samples"]) == ("ddim", 3, 20)


def test_steps_plot_summarises_every_point_with_its_sample_count_and_writes_a_png(tmp_path):
    from trainers.diffusion.plots import steps_plot

    def line(row, sampler, steps, eta, n, fid, kid, cost):
        return json.dumps({"row": row, "seed": 0, "config_hash": "h", "evaluation": {
            "sampler": sampler, "sampling_steps": steps, "eta": eta, "num_samples": n}, "metrics": {"final": {
                "fid": {"value": fid}, "kid": {"value": kid}, "sampling_s_per_1000": {"value": cost}}}})

    records = tmp_path / "records.jsonl"
    records.write_text("\n".join([line("a", "ddim", 10, 0.0, 10000, 75.0, 0.5, 20.0),
                                  line("b", "ddim", 50, 0.0, 10000, 66.0, 0.4, 100.0),
                                  line("c", "ddim", 1000, 0.0, 100, 73.0, 0.37, 2000.0),
                                  line("d", "ddpm", 10, None, 10000, 135.0, 0.9, 20.0)]) + "\n")
    out = tmp_path / "plot.png"
    summary = steps_plot(records, out=out)
    assert summary.splitlines() == ["ddim η = 0: S=10: 75.00 (n=10000), S=50: 66.00 (n=10000), S=1000: 73.00 (n=100)",
                                    "ddpm: S=10: 135.00 (n=10000)"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_budget_is_ho_et_al_unet():
    """`paper` at 32×32 is Ho et al.'s CIFAR-10 network (35.7M parameters, Appendix B); 28×28 drops one level."""
    cifar = build_config(preset="ddpm", budget="paper", dataset="cifar10", overrides={})
    assert (cifar.ch, cifar.ch_mult, cifar.num_res_blocks, cifar.attn_resolutions) == (128, (1, 2, 2, 2), 2, (16,))
    assert sum(p.numel() for p in UNet(cifar).parameters()) / 1e6 == pytest.approx(35.7, abs=0.1)
    fashion = build_config(preset="ddpm", budget="paper", dataset="fashion-mnist", overrides={})
    assert (fashion.ch_mult, fashion.attn_resolutions) == ((1, 2, 2), (14,))
