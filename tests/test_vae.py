"""VAE: the discretised decoder normalises, IWAE ≥ ELBO and converges to log p(x), smoke runs resume exactly."""

from __future__ import annotations

import math

import pytest
import torch

from geneval.errors import GenevalInputError
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import train
from trainers.common.runs import RunDir
from trainers.vae.model import VAE, discretized_logistic_log_prob
from trainers.vae.train import SPEC, make_config


@pytest.mark.parametrize("mean,log_scale", [(0.0, -3.0), (0.7, -5.0), (-0.99, -1.0), (0.2, 1.0), (0.1, -7.0)])
def test_discretised_logistic_sums_to_one_over_256_levels(mean, log_scale):
    x = torch.arange(256, dtype=torch.uint8)
    p = discretized_logistic_log_prob(x, torch.full((256,), mean), torch.full((256,), log_scale)).double().exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=2e-4)


def tiny_vae(levels=2, shape=(1, 1, 2), k=64):
    torch.manual_seed(0)
    model = VAE(shape=shape, levels=levels, latent_dim=2, hidden=8, iwae_k=k, elbo_k=k, eval_seed=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.8, generator=torch.Generator().manual_seed(p.numel()))
    return model


def test_iwae_bound_is_above_the_elbo_and_does_not_depend_on_the_batch():
    model = tiny_vae(levels=256, shape=(1, 2, 2), k=32)
    x = torch.randint(0, 256, (6, 1, 2, 2), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    with torch.no_grad():
        iwae, elbo = model.log_prob(x), model.elbo(x)  # same K, same draws: logmeanexp ≥ mean
        assert (iwae >= elbo).all()
        assert torch.equal(model.log_prob(x)[3:], model.log_prob(x[3:]))


def test_iwae_converges_to_the_exact_likelihood_of_a_tiny_vae():
    """Two binary pixels and a 2-D latent: log p(x) by quadrature over z, against IWAE with K = 4000."""
    model = tiny_vae(levels=2, shape=(1, 1, 2), k=4000)
    with torch.no_grad():  # q(z | x) = the prior: IWAE is plain importance sampling, which converges fast in 2-D
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias.zero_()
    xs = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.uint8).view(4, 1, 1, 2)
    grid = torch.linspace(-7, 7, 401)
    z = torch.cartesian_prod(grid, grid)
    step = float(grid[1] - grid[0])
    with torch.no_grad():
        logits = model.decode(z)[:, 0].double()  # [Z, 2]
        log_prior = (-0.5 * (z.double() ** 2 + math.log(2 * math.pi))).sum(1)
        exact = []
        for x in xs.view(4, 2).double():
            log_lik = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                                                            reduction="none").sum(1)
            exact.append(torch.logsumexp(log_lik + log_prior, 0) + 2 * math.log(step))
        exact = torch.stack(exact)
        assert float(torch.logsumexp(exact, 0)) == pytest.approx(0.0, abs=1e-4)  # the quadrature is right
        iwae = model.log_prob(xs)
    assert (iwae <= exact + 0.02).all()  # a bound (up to Monte Carlo error)
    torch.testing.assert_close(iwae, exact, atol=0.05, rtol=0)


def test_samples_depend_only_on_their_own_seed():
    model = tiny_vae(levels=256, shape=(1, 3, 3))
    with torch.no_grad():
        whole = model.sample(5, seed=2)
        assert torch.equal(whole[2:], model.sample(3, seed=2, first=2))
        assert whole.dtype == torch.uint8


@pytest.mark.parametrize("dataset", ["binarized-mnist", "fashion-mnist"])
def test_smoke_train_checkpoint_resume_evaluate_record(dataset, tmp_path, fashion_mnist_dir, mnist_npz):
    config = make_config(budget="smoke", dataset=dataset, overrides={})
    whole = train(SPEC, config, out=tmp_path / "whole", budget="smoke")
    assert train(SPEC, config, out=tmp_path / "split", budget="smoke", stop_after_steps=3) is None
    resumed = train(SPEC, config, out=tmp_path / "split", budget="smoke", resume=True)
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["trainer"]["model"]
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["trainer"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same parameters after N steps with and without a stop
    assert [e["train_nats"] for e in RunDir(tmp_path / "split").read_log()] == \
        [e["train_nats"] for e in RunDir(tmp_path / "whole").read_log()]
    final = resumed["metrics"]["final"]
    assert final["test_nats"]["value"] == whole["metrics"]["final"]["test_nats"]["value"]
    assert resumed["likelihood"]["kind"] == "iwae-8" and resumed["likelihood"]["bound"]
    assert final["test_nats"]["value"] <= final["test_elbo_nats"]["value"] + 1.0  # IWAE-8 is the tighter bound
    for name in ("samples.png", "manifold.png", "interpolations.png", "means.png"):
        assert (tmp_path / "split" / name).stat().st_size > 0
    assert resumed["artifacts"]["manifold_dims"] == [0, 1]  # latent_dim = 2: the whole latent space


def test_a_vae_checkpoint_loads_through_the_geneval_likelihood_entry_point(tmp_path, mnist_npz):
    from geneval.likelihood import evaluate, load_model

    config = make_config(budget="smoke", dataset="binarized-mnist", overrides={})
    record = train(SPEC, config, out=tmp_path / "vae", budget="smoke")
    model = load_model(str(tmp_path / "vae" / "checkpoint.pt"))  # by the family the checkpoint records
    result = evaluate(model, "mnist:test", num=64)
    assert result.kind == "iwae-8" and result.bound and result.num_examples == 64
    assert result.nats == record["metrics"]["final"]["test_nats"]["value"]


def test_bad_vae_configs_fail_at_start():
    with pytest.raises(GenevalInputError, match="iwae_k must be ≥ 1"):
        make_config(budget="smoke", dataset="binarized-mnist", overrides={"iwae_k": "0"})
    with pytest.raises(GenevalInputError, match="dataset 'stacked-mnist' is not supported"):
        make_config(budget="smoke", dataset="stacked-mnist", overrides={})
