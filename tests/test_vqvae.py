"""VQ-VAE (trainers/vqvae): the straight-through gradient reaches the encoder, the EMA codebook step equals a hand
computation, dead codes are restarted, the bound is the sum of its terms, the prior is the autoregressive family's
Gated PixelCNN, sampling is per sample, and a smoke run resumes exactly in either stage."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geneval.errors import GenevalInputError
from trainers.autoregressive.models import GatedPixelCNN
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import train
from trainers.common.runs import RunDir
from trainers.vqvae.model import VQVAE, VectorQuantizer
from trainers.vqvae.train import SPECS, make_config, perplexity

GENEVAL = str(Path(sys.executable).with_name("geneval"))


def tiny(**kw) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(shape=(1, 8, 8), hidden=8, res_hidden=4, num_codes=6, code_dim=3, prior_channels=4,
                 prior_layers=2, prior_embedding=3, **kw)


def images(n: int, shape=(1, 8, 8), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_straight_through_gradient_reaches_the_encoder(update):
    model = tiny(codebook_update=update)
    x = images(4)
    z_e = model.encode(x)
    z_e.retain_grad()
    z_q, codes, terms = model.quantizer(z_e)
    assert torch.allclose(z_q, model.quantizer.lookup(codes), atol=1e-6)  # forward value: the chosen codes
    z_q.retain_grad()
    mean, log_scale = model.decode(z_q)
    (-model.reconstruction_log_prob(x, mean, log_scale).sum()).backward()
    assert torch.equal(z_e.grad, z_q.grad) and z_e.grad.abs().sum() > 0  # copied unchanged (§3.2)
    first = model.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    # the commitment term pulls the encoder toward its codes; the codebook term (loss update only) moves codes
    model.zero_grad()
    z_q, codes, terms = model.quantizer(model.encode(x))
    terms["commitment"].backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    if update == "loss":
        model.zero_grad()
        model.quantizer(model.encode(x))[2]["codebook"].backward()
        assert model.quantizer.codebook.grad.abs().sum() > 0 and model.encoder[0].weight.grad is None
    else:
        assert not model.quantizer.codebook.requires_grad


def test_nearest_code_is_the_argmin_of_euclidean_distance():
    q = VectorQuantizer(5, 3)
    flat = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    brute = torch.cdist(flat.double(), q.codebook.detach().double()).argmin(1)
    assert torch.equal(q.nearest(flat), brute)


def test_ema_update_matches_a_hand_computed_step():
    q = VectorQuantizer(3, 2, update="ema", decay=0.9, epsilon=1e-5)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
        q.embed_sum.copy_(q.codebook)
        q.cluster_size.copy_(torch.tensor([1.0, 1.0, 1.0]))
    flat = torch.tensor([[0.2, 0.0], [0.0, -0.2], [0.9, 1.3], [0.4, 0.1]])
    codes = q.nearest(flat)
    assert codes.tolist() == [0, 0, 1, 0]
    q.ema_update(flat, codes)
    # by hand (van den Oord et al. 2017, Appendix A.1, with the Sonnet reference's Laplace smoothing)
    gamma, eps, k = 0.9, 1e-5, 3
    n = np.array([0.9 * 1 + 0.1 * 3, 0.9 * 1 + 0.1 * 1, 0.9 * 1 + 0.1 * 0])
    m = np.array([0.9 * np.array([0.0, 0.0]) + 0.1 * np.array([0.6, -0.1]),
                  0.9 * np.array([1.0, 1.0]) + 0.1 * np.array([0.9, 1.3]),
                  0.9 * np.array([5.0, 5.0])])
    smoothed = (n + eps) / (n.sum() + k * eps) * n.sum()
    assert np.allclose(q.cluster_size.numpy(), n, atol=1e-7)
    assert np.allclose(q.embed_sum.numpy(), m, atol=1e-7)
    assert np.allclose(q.codebook.detach().numpy(), m / smoothed[:, None], atol=1e-6)
    del gamma


def test_dead_code_restart_triggers_only_for_unused_codes():
    q = VectorQuantizer(4, 2, update="ema", usage_decay=0.99)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]))  # code 3: far away
    flat = torch.tensor([[0.1, 0.0], [0.9, 0.1], [0.1, 0.8], [0.0, 0.2]] * 4)
    codes = q.nearest(flat)
    assert 3 not in codes.tolist() and set(codes.tolist()) == {0, 1, 2}
    before = q.codebook.detach().clone()
    q.track_usage(codes)  # each used code: ≥ 4 assignments; code 3: 0 → usage 0.99 < 1
    moved = q.restart_dead(flat, threshold=1.0, generator=torch.Generator().manual_seed(0))
    assert moved == 1
    after = q.codebook.detach()
    assert torch.equal(after[:3], before[:3])  # used codes untouched
    assert any(torch.equal(after[3], row) for row in flat)  # the dead code sits on an encoder output now
    assert torch.equal(q.embed_sum[3], after[3]) and q.cluster_size[3] == 1.0
    q.track_usage(q.nearest(flat))
    assert q.restart_dead(flat, threshold=1.0, generator=torch.Generator().manual_seed(0)) == 0  # given time


def test_bound_is_the_sum_of_its_terms_and_the_prior_is_the_gated_pixelcnn():
    model = tiny().eval()
    assert type(model.prior) is GatedPixelCNN and model.prior.embed is not None  # the autoregressive family's
    x = images(5)
    with torch.no_grad():
        terms = model.log_prob_terms(x)
        total = model.log_prob(x)
    assert total.dtype == torch.float64
    assert torch.allclose(total, terms["reconstruction"] + terms["prior"], rtol=0, atol=1e-9)
    assert torch.all(terms["uniform_prior"] == -4 * math.log(6))  # 2×2 latents, K = 6
    codes = model.codes(x)
    assert codes.shape == (5, 1, 2, 2)
    # the prior term is the Gated PixelCNN's exact log-probability of the code grid, and sums to 1 over all grids
    with torch.no_grad():
        grids = torch.cartesian_prod(*[torch.arange(6)] * 4).view(-1, 1, 2, 2)
        assert float(torch.logsumexp(-model.prior.nll(grids).double(), 0)) == pytest.approx(0.0, abs=1e-5)
        assert torch.allclose(terms["prior"], -model.prior.nll(codes).double(), atol=1e-6)


def test_sampling_is_per_sample_and_decodes_prior_codes():
    model = tiny().eval()
    five = model.sample(5, seed=3)
    assert five.dtype == torch.uint8 and five.shape == (5, 1, 8, 8)
    assert torch.equal(model.sample(2, seed=3, first=3), five[3:])
    codes = model.prior.sample(5, seed=3)
    with torch.no_grad():
        assert torch.equal(five, model.mean_image(model.decode(model.quantizer.lookup(codes[:, 0]))[0]))
    noisy = model.sample(5, seed=3, pixel_noise=True)
    assert not torch.equal(noisy, five) and torch.equal(model.sample(2, seed=3, first=3, pixel_noise=True), noisy[3:])


def test_perplexity():
    assert perplexity(torch.tensor([5.0, 5.0, 5.0, 5.0])) == pytest.approx(4.0)
    assert perplexity(torch.tensor([7.0, 0.0, 0.0])) == pytest.approx(1.0)


def params_of(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.pt")["trainer"]


@pytest.mark.parametrize("stop", [3, 8])  # mid-autoencoder (steps = 6) and mid-prior
def test_smoke_train_resume_exactly(stop, tmp_path, mnist_npz):
    config = make_config(budget="smoke", dataset="mnist", overrides={})
    whole = train(SPECS["vqvae"], config, out=tmp_path / "whole", budget="smoke")
    assert train(SPECS["vqvae"], config, out=tmp_path / "split", budget="smoke", stop_after_steps=stop) is None
    resumed = train(SPECS["vqvae"], config, out=tmp_path / "split", budget="smoke", resume=True)
    a, b = params_of(tmp_path / "whole"), params_of(tmp_path / "split")
    for key in ("model",):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key])

    def log(run):
        return [{k: v for k, v in e.items() if k != "wall_time_s"} for e in RunDir(tmp_path / run).read_log()]

    assert log("split") == log("whole")
    drop = ("wall_time_s", "software", "sampling", "record_version", "likelihood")
    strip = (lambda r: {k: v for k, v in r.items() if k not in drop})
    assert strip(resumed) == strip(whole)
    assert resumed["likelihood"]["nats"] == whole["likelihood"]["nats"]
    final = whole["metrics"]["final"]
    assert whole["likelihood"]["kind"] == "elbo" and whole["steps"] == 10
    assert final["test_bits_per_dim"]["value"] == pytest.approx(
        final["test_recon_bits_per_dim"]["value"] + final["test_prior_bits_per_dim"]["value"], rel=1e-9)
    assert 0 < final["codebook_usage"]["value"] <= 1 and 1 <= final["codebook_perplexity"]["value"] <= 8
    assert final["test_mse"]["value"] > 0 and final["test_psnr"]["value"] == pytest.approx(
        float(np.mean(10 * np.log10(255**2 / np.array([final["test_mse"]["value"]])))), rel=0.2)
    assert (tmp_path / "split" / "reconstructions.png").stat().st_size > 0
    stages = [e["stage"] for e in RunDir(tmp_path / "whole").read_log() if e["kind"] == "train"]
    assert stages == ["autoencoder"] * 3 + ["prior"] * 2


def test_family_contract_cli_and_geneval_likelihood(tmp_path, mnist_npz):
    from geneval import family

    vq = family.get("vqvae")
    assert vq.option("pixel_noise").type is bool
    out = tmp_path / "vq"
    done = subprocess.run([GENEVAL, "train", "vqvae", "--dataset", "mnist", "--budget", "smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["dataset"] == "mnist" and summary["steps"] == 10
    evaluated = subprocess.run([GENEVAL, "likelihood", str(out / "checkpoint.pt"), "--num", "64", "--json", "-q"],
                               capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["nats"] == pytest.approx(summary["test_nats"], rel=1e-12) and result["kind"] == "elbo"
    config = vq.resolve(preset="vqvae", budget="smoke", dataset="mnist", overrides={}, seed=0)
    record = json.loads((out / "record.json").read_text())
    same, _ = vq.evaluate(out, config=config, which="final", metrics=("fid",))
    assert same["fid"]["value"] == pytest.approx(record["metrics"]["final"]["fid"]["value"], rel=1e-9)
    noisy, protocol = vq.evaluate(out, config=config, which="final", metrics=("fid",), pixel_noise=True)
    assert protocol["pixel_noise"] is True and noisy["fid"]["value"] != same["fid"]["value"]
    assert noisy["test_bits_per_dim"] == record["metrics"]["final"]["test_bits_per_dim"]


def test_bad_configs_fail_at_start():
    with pytest.raises(GenevalInputError, match="8-bit"):
        make_config(budget="smoke", dataset="binarized-mnist", overrides={})
    with pytest.raises(GenevalInputError, match="codebook_update"):
        make_config(budget="smoke", dataset="mnist", overrides={"codebook_update": "kmeans"})
    with pytest.raises(GenevalInputError, match="multiple of log_every"):
        make_config(budget="smoke", dataset="mnist", overrides={"steps": "5"})
    for budget in ("small", "paper"):
        for dataset in ("mnist", "fashion-mnist", "cifar10"):
            make_config(budget=budget, dataset=dataset, overrides={})
