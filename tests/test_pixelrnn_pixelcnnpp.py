"""PixelCNN++ and PixelRNN (Row LSTM, Diagonal BiLSTM) in the autoregressive family: no output sees the future
(exact zero gradients), the discretised logistic mixture is normalised, samples are per-sample, Polyak averaging,
and ``geneval train <model> --budget smoke`` runs that resume exactly."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from geneval.errors import GenevalInputError
from trainers.autoregressive.pixelcnnpp import (PixelCNNpp, channel_conditional_log_probs, mixture_log_prob,
                                                num_params)
from trainers.autoregressive.pixelrnn import PixelRNN
from trainers.autoregressive.train import SPECS, make_config
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import LikelihoodTraining, TrainingData
from trainers.common.runs import RunDir

GENEVAL = str(Path(sys.executable).with_name("geneval"))
REPO_ROOT = Path(__file__).resolve().parent.parent


def randomize(model, scale: float = 0.3):
    """Random (not default-initialised) weights, so every allowed connection is visibly used."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def tiny_pixelcnnpp(shape, levels=256, **kw):
    torch.manual_seed(0)
    return randomize(PixelCNNpp(shape=shape, levels=levels, filters=5, nr_resnet=1, num_mix=3, **kw))


def tiny_pixelrnn(layer, shape=(1, 6, 5), levels=256):
    torch.manual_seed(0)
    wide = shape[0] > 1  # colour: enough units per channel group that no group is all dead ReLUs
    return randomize(PixelRNN(shape=shape, levels=levels, layer=layer, hidden=6 if wide else 3, num_layers=2,
                              out_channels=30 if wide else 5), 0.5)


def future_mask(shape, i: int, j: int, c: int) -> torch.Tensor:
    """True at the inputs at or after (i, j, channel c) in generation order (raster order, then R, G, B)."""
    channels, h, w = shape
    order = (torch.arange(h * w).view(1, h, w) * channels + torch.arange(channels).view(-1, 1, 1))
    return order >= (i * w + j) * channels + c


# --------------------------------------------------------------------------------------------- causality


@pytest.mark.parametrize("layer", ["row", "diagonal"])
@pytest.mark.parametrize("shape,levels", [((1, 5, 10), 2), ((1, 5, 10), 256), ((3, 4, 5), 256)])
def test_pixelrnn_never_sees_the_future(layer, shape, levels):
    """d log p(x_ijc | everything before it) / d input(k) = 0 exactly for every input k at or after (i, j, c) in
    generation order (raster, then R → G → B). Single channel: the Diagonal BiLSTM sees every earlier pixel (no
    blind spot), the Row LSTM's triangle misses the far left of its own row. Colour: B reads R and G of its
    own pixel."""
    model = tiny_pixelrnn(layer, shape=shape, levels=levels)
    x = torch.randint(0, levels, (2, *shape), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    xs = model.scaled(x).requires_grad_()
    logits = model.network(xs)
    c, h, w = shape
    for i, j, ch in itertools.product(range(h), range(w), range(c)):
        if levels == 2:
            ll = -F.binary_cross_entropy_with_logits(logits[0, 0, ch, i, j], x[0, ch, i, j].float())
        else:
            ll = -F.cross_entropy(logits[:1, :, ch, i, j], x[:1, ch, i, j].long())
        grad, = torch.autograd.grad(ll, xs, retain_graph=True)
        future = future_mask(shape, i, j, ch)
        assert not grad[0][future].any(), f"pixel {(i, j)} channel {ch} saw the future"
        assert not grad[1].any()  # nor another image of the batch
    seen = grad[0] != 0  # of the last output: pixel (h − 1, w − 1), its last channel
    if c > 1:
        assert seen[:c - 1, h - 1, w - 1].all()
    elif layer == "diagonal":
        assert seen.view(-1)[:-1].all()
    else:  # 7×7 mask A reaches 3 columns left, each Row LSTM layer's 1×3 mask-B convolution one more
        assert seen[0, 4, 4:9].all() and not seen[0, 4, :4].any() and seen[0, :4].any()


@pytest.mark.parametrize("shape,levels,classes", [((3, 8, 8), 256, 0), ((1, 8, 8), 256, 0), ((1, 8, 4), 2, 0),
                                                  ((3, 4, 8), 256, 3)])
def test_pixelcnnpp_never_sees_the_future(shape, levels, classes):
    """The conditional log-likelihood of x_{i,c} given everything before it, as a function of the network's
    inputs (the values whose probabilities are read are held fixed), has exactly zero gradient at every input
    at or after (i, c) in generation order, within-pixel R → G → B included; every output but the first sees
    some earlier input."""
    model = tiny_pixelcnnpp(shape, levels, num_classes=classes)
    labels = torch.tensor([1, 2]) if classes else None
    x = torch.randint(0, levels, (2, *shape), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    xs = model.scaled(x).requires_grad_()
    out = model.conditional_log_probs(xs, x, labels)
    assert torch.allclose(out.sum((1, 2, 3)).double(), model.log_prob(x, labels), rtol=1e-5)  # the chain rule
    c, h, w = shape
    for i, j, ch in itertools.product(range(h), range(w), range(c)):
        grad, = torch.autograd.grad(out[0, ch, i, j], xs, retain_graph=True)
        future = future_mask(shape, i, j, ch)
        assert not grad[0][future].any(), f"pixel {(i, j)} channel {ch} saw the future"
        assert not grad[1].any()
        assert grad[0][~future].any() or (i, j, ch) == (0, 0, 0)


# --------------------------------------------------------------------------------------------- likelihood


def values(levels: int) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, levels, dtype=torch.float64)


@pytest.mark.parametrize("levels", [2, 256])
@pytest.mark.parametrize("scale", [-7.0, -4.0, 0.0, 2.0])
def test_one_channel_mixture_sums_to_one(levels, scale):
    """Σ over the levels of p(x) = 1 within 1e-5, from very sharp components (log-scale at the floor −7, where
    the mid-bin fallback is taken for the underflowing bins) to very wide ones, means inside and outside [−1, 1]."""
    g = torch.Generator().manual_seed(int(scale) + levels)
    k = 4
    params = torch.randn(1, num_params(1, k), 1, 1, generator=g, dtype=torch.float64) * 1.5
    params[:, k + k:] = scale  # log-scales (logits, then means, then log-scales)
    x = values(levels).view(-1, 1, 1, 1)
    total = torch.logsumexp(mixture_log_prob(params.expand(len(x), -1, -1, -1), x, num_mix=k, levels=levels).flatten(), 0)
    assert abs(float(total)) < 1e-5


def test_rgb_mixture_conditionals_and_joint_sum_to_one():
    """RGB, 256 levels: for random R (and G) values, p(G | R) sums to 1 over G's 256 values and p(B | R, G) over
    B's, for the mixture with G's mean moved by R and B's by R and G; and the joint p(r, g, b) summed over the
    whole 64 × 64 × 64 grid of a 64-level pixel is 1 within 1e-5 (the 256³ grid takes ~20 s)."""
    g = torch.Generator().manual_seed(0)
    k = 3
    params = torch.randn(1, num_params(3, k), 1, 1, generator=g, dtype=torch.float64)
    v = values(256)
    for _ in range(5):
        earlier = values(256)[torch.randint(0, 256, (2,), generator=g)]
        for c in (1, 2):
            x = torch.zeros(256, 3, 1, 1, dtype=torch.float64)
            x[:, :c, 0, 0] = earlier[:c]
            x[:, c, 0, 0] = v
            cond = channel_conditional_log_probs(params.expand(256, -1, -1, -1), x, num_mix=k, levels=256)[:, c]
            assert abs(float(torch.logsumexp(cond.flatten(), 0))) < 1e-5
    grid = torch.cartesian_prod(values(64), values(64), values(64)).view(-1, 3, 1, 1)
    joint = mixture_log_prob(params.expand(len(grid), -1, -1, -1), grid, num_mix=k, levels=64)
    assert abs(float(torch.logsumexp(joint.flatten(), 0))) < 1e-5


# --------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("layer", ["row", "diagonal"])
@pytest.mark.parametrize("shape", [(1, 6, 5), (3, 4, 3)])
def test_pixelrnn_samples_are_per_sample_and_equal_the_naive_sampler(layer, shape):
    model = tiny_pixelrnn(layer, shape=shape)
    with torch.no_grad():
        samples = model.sample(4, seed=3)
        assert torch.equal(samples, model.sample_uncached(4, seed=3))  # rows below i never change row i
        assert torch.equal(samples[2:], model.sample(2, seed=3, first=2))
        assert not torch.equal(samples, model.sample(4, seed=4))


@pytest.mark.parametrize("shape,levels,classes", [((3, 4, 4), 256, 0), ((1, 8, 4), 2, 0), ((3, 4, 4), 256, 3)])
def test_pixelcnnpp_samples_are_per_sample(shape, levels, classes):
    model = tiny_pixelcnnpp(shape, levels, num_classes=classes)
    labels = torch.tensor([0, 2, 1, 1]) if classes else None
    with torch.no_grad():
        samples = model.sample(4, seed=3, labels=labels)
        assert samples.dtype == torch.uint8 and int(samples.max()) < levels
        assert torch.equal(samples[2:], model.sample(2, seed=3, first=2, labels=None if labels is None else labels[2:]))
        assert not torch.equal(samples, model.sample(4, seed=4, labels=labels))


def test_pixelcnnpp_rows_below_do_not_change_a_row():
    """The sampler runs on the rows above (to a multiple of 4): the parameters there equal the whole image's (in
    float64 to ~1e-13; in float32 to its rounding, since the convolutions sum in another order)."""
    model = tiny_pixelcnnpp((3, 12, 8)).double()
    x = torch.randint(0, 256, (2, 3, 12, 8), generator=torch.Generator().manual_seed(2)).to(torch.uint8)
    xs = model.scaled(x).double()
    with torch.no_grad():
        whole, top = model.params(xs), model.params(xs[:, :, :8])
    assert torch.allclose(whole[:, :, :8], top, rtol=0, atol=1e-9)


def test_pixelcnnpp_samples_follow_the_likelihood():
    """The sampler draws from the density the likelihood scores: for each pixel of 2000 binary 4×4 samples, the
    frequency of 1 is within 5 standard errors of the mean of p(x_ij = 1 | the sample's earlier pixels)."""
    model = tiny_pixelcnnpp((1, 4, 4), 2)
    n = 2000
    with torch.no_grad():
        samples = model.sample(n, seed=0)
        p_one = model.conditional_log_probs(model.scaled(samples), torch.ones_like(samples)).exp()
    frequency, expected = samples.double().mean(0), p_one.double().mean(0)
    stderr = (p_one.double() * (1 - p_one.double())).mean(0).sqrt() / n ** 0.5
    assert ((frequency - expected).abs() < 5 * stderr + 1e-9).all(), (frequency - expected) / stderr
    assert 0.05 < float(frequency.mean()) < 0.95


# --------------------------------------------------------------------------------------------- training


def test_ema_is_an_option_of_the_loop(mnist_npz):
    """The debiased average Σ dⁿ⁻ⁱ θᵢ / Σ dⁿ⁻ⁱ of the weights after steps 1 … n (none of the initial weights);
    configs without ema_decay (every earlier model) keep none."""
    data = TrainingData("binarized-mnist", seed=0, train_num=64)
    config = make_config("pixelcnnpp", budget="smoke", dataset="binarized-mnist", overrides={"ema_decay": "0.5"})
    trainer = LikelihoodTraining(SPECS["pixelcnnpp"], config, data)
    seen = []
    for _ in range(3):
        trainer.train_step()
        seen.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
    after = trainer.ema.state_dict()
    weights = [0.25, 0.5, 1.0]  # dⁿ⁻ⁱ for n = 3, d = 0.5
    for k in after:
        if after[k].is_floating_point():
            expected = sum(w * s[k].double() for w, s in zip(weights, seen)) / sum(weights)
            assert torch.allclose(after[k].double(), expected, atol=1e-6), k
    assert trainer.evaluated_model is trainer.ema and "ema" in trainer.state_dict()
    plain = LikelihoodTraining(SPECS["pixelcnn"], make_config("pixelcnn", budget="smoke", dataset="binarized-mnist",
                                                              overrides={}), data)
    assert plain.ema is None and plain.evaluated_model is plain.model and "ema" not in plain.state_dict()


def geneval_run(args, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run([GENEVAL, *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model,dataset", [("pixelcnnpp", "mnist"), ("row-lstm", "fashion-mnist"),
                                           ("diagonal-bilstm", "binarized-mnist"), ("gated-pixelcnn", "cifar10")])
def test_cli_smoke_train_resumes_exactly(model, dataset, tmp_path, cifar10_npz, fashion_mnist_dir, mnist_npz):
    base = ["train", model, "--dataset", dataset, "--budget", "smoke"]
    whole = geneval_run(base + ["--out", str(tmp_path / "whole")])
    assert geneval_run(base + ["--out", str(tmp_path / "split"), "--stop-after-steps", "3"])["stopped"]
    resumed = geneval_run(base + ["--out", str(tmp_path / "split"), "--resume"])
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["trainer"]
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["trainer"]
    assert a.keys() == b.keys()
    for part in a.keys() - {"optimizer"}:  # the model, and the Polyak average where kept
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert resumed["test_nats"] == whole["test_nats"] and resumed["steps"] == whole["steps"] == 6

    def losses(run):
        return [(e["step"], e["train_nats"]) for e in RunDir(tmp_path / run).read_log()]

    assert losses("split") == losses("whole")
    record = json.loads((tmp_path / "split" / "record.json").read_text())
    assert record["model"] == record["preset"] == model and record["likelihood"]["kind"] == "exact"
    assert record["sampling"]["note"] and (tmp_path / "split" / "samples.png").stat().st_size > 0
    published = SPECS[model].published.get(dataset)
    assert record["published"] == published
    if model == "pixelcnnpp":  # the record evaluated the EMA, and the checkpoint evaluates to it
        assert not all(torch.equal(a["ema"][k], a["model"][k]) for k in a["model"])
        evaluated = subprocess.run([GENEVAL, "likelihood", str(tmp_path / "split" / "checkpoint.pt"), "--num", "64",
                                    "--json", "-q"], capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        assert evaluated.returncode == 0, evaluated.stderr
        assert json.loads(evaluated.stdout)["nats"] == pytest.approx(resumed["test_nats"], rel=1e-9)


def test_published_values_and_bad_configs():
    assert SPECS["diagonal-bilstm"].published["binarized-mnist"]["nats"] == 79.20
    models = ("pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm", "pixelcnnpp")
    assert {m: SPECS[m].published["cifar10"]["bits_per_dim"] for m in models} \
        == {"pixelcnn": 3.14, "gated-pixelcnn": 3.03, "row-lstm": 3.07, "diagonal-bilstm": 3.00, "pixelcnnpp": 2.92}
    assert "Salimans" in SPECS["pixelcnnpp"].published["cifar10"]["source"]
    assert "Conditional Image Generation" in SPECS["gated-pixelcnn"].published["cifar10"]["source"]
    assert SPECS["pixelcnn"].published["binarized-mnist"]["nats"] == 81.45  # the CIFAR-10 entry added, not replaced
    with pytest.raises(GenevalInputError, match="hidden must be ≥ 1"):
        make_config("row-lstm", budget="smoke", dataset="cifar10", overrides={"hidden": "0"})
    with pytest.raises(ValueError, match="one feature group each"):
        PixelRNN(shape=(3, 4, 4), levels=256, hidden=2, num_layers=1, out_channels=8)
    with pytest.raises(GenevalInputError, match="unknown key 'channels'"):
        make_config("pixelcnnpp", budget="smoke", dataset="cifar10", overrides={"channels": "3"})
    with pytest.raises(GenevalInputError, match="dropout"):
        make_config("pixelcnnpp", budget="smoke", dataset="mnist", overrides={"dropout": "1.0"})
    with pytest.raises(ValueError, match="divisible by 4"):
        PixelCNNpp(shape=(1, 6, 8), levels=256, filters=2, nr_resnet=1, num_mix=1)
    for model, budget, dataset in itertools.product(("pixelcnnpp", "row-lstm", "diagonal-bilstm"),
                                                    ("smoke", "small", "paper"), ("binarized-mnist", "cifar10")):
        make_config(model, budget=budget, dataset=dataset, overrides={})


def test_class_grid_puts_one_class_per_row(tmp_path, mnist_npz):
    """The class-conditional figure: row c of the grid is drawn with label c (the same images as the model's own
    sampler gives for those indexes and labels); an unconditional run is refused in one line."""
    from trainers.autoregressive.class_grid import class_rows
    from trainers.autoregressive.train import load_likelihood_model

    base = ["train", "pixelcnnpp", "--dataset", "mnist", "--budget", "smoke"]
    geneval_run(base + ["--set", "conditional=true", "--out", str(tmp_path / "cond")])
    images, classes = class_rows(tmp_path / "cond", per_class=2, seed=3)
    assert images.shape == (20, 1, 28, 28) and images.dtype == torch.uint8 and len(classes) == 10
    model = load_likelihood_model(load_checkpoint(tmp_path / "cond" / "checkpoint.pt")).model
    with torch.inference_mode():
        row_of_class_2 = model.sample(2, seed=3, first=4, labels=torch.tensor([2, 2]))
        as_class_5 = model.sample(2, seed=3, first=4, labels=torch.tensor([5, 5]))
    assert torch.equal(images[4:6], row_of_class_2.to(torch.uint8))
    assert not torch.equal(row_of_class_2, as_class_5)  # the label changes the draw: rows differ by class
    geneval_run(base + ["--out", str(tmp_path / "plain")])
    with pytest.raises(GenevalInputError, match="not class-conditional"):
        class_rows(tmp_path / "plain", per_class=1, seed=0)


def test_paper_cost_benchmark_prints_one_line_per_model_with_its_extrapolations(mnist_npz):
    """benchmarks/bench_ar_paper_cost.py (the evidence for which reference sizes are trained here) runs as its
    docstring says and its extrapolations follow from its per-image cost: steps × batch, the epoch's images and
    the 10,000 test images."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" /
                                               "bench_ar_paper_cost.py"), "--dataset", "binarized-mnist",
                           "--budget", "smoke", "--models", "pixelcnn", "row-lstm", "--batch", "2"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["model"] for line in lines] == ["pixelcnn", "row-lstm"]
    for line in lines:
        config = make_config(line["model"], budget="smoke", dataset="binarized-mnist", overrides={})
        per_image = line["train_cpu_s_per_image"]
        assert per_image > 0 and line["nominal_steps"] == config.steps and line["batch_size"] == config.batch_size
        assert line["nominal_cpu_h"] == pytest.approx(config.steps * config.batch_size * per_image / 3600, abs=0.051)
        assert line["epoch_cpu_h"] == pytest.approx(60_000 * per_image / 3600, abs=0.051)
        assert line["test_likelihood_cpu_h"] >= 0 and line["threads"] == 1
