"""Autoregressive trainers: causality, normalisation, cached = uncached sampling, smoke runs with exact resume."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geneval.errors import GenevalInputError
from trainers.autoregressive.models import FVSBN, MADE, NADE, GatedPixelCNN, PixelCNN
from trainers.autoregressive.train import SPECS, make_config
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import train
from trainers.common.runs import RunDir

GENEVAL = str(Path(sys.executable).with_name("geneval"))


def tiny(name: str, *, shape, levels: int, **kw):
    torch.manual_seed(0)
    if name == "fvsbn":
        return FVSBN(shape=shape, levels=levels, rank=3)
    if name == "nade":
        return NADE(shape=shape, levels=levels, hidden=7, rank=3)
    if name == "made":
        return MADE(shape=shape, levels=levels, hidden=(9, 9), rank=3, **kw)
    if name == "pixelcnn":
        return PixelCNN(shape=shape, levels=levels, channels=3, num_blocks=2, out_channels=5)
    return GatedPixelCNN(shape=shape, levels=levels, channels=3, num_layers=3, out_channels=5, **kw)


ALL = ["fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn"]


def randomize(model):
    """Random (not zero-initialised) weights, so that every allowed connection is visibly used."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    return model.eval()


@pytest.mark.parametrize("name", ALL)
def test_pixel_d_depends_only_on_earlier_pixels(name):
    model = randomize(tiny(name, shape=(1, 5, 5), levels=256))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, 1, 5, 5), generator=g).to(torch.uint8)
    base = model.logits(x).detach()
    for d in range(25):
        changed = x.clone().view(2, -1)
        changed[:, d:] = torch.randint(0, 256, (2, 25 - d), generator=g).to(torch.uint8)
        out = model.logits(changed.view(2, 1, 5, 5)).detach().view(2, -1, 25)
        assert torch.equal(out[:, :, : d + 1], base.view(2, -1, 25)[:, :, : d + 1]), f"pixel {d} saw the future"


def test_gated_pixelcnn_has_no_blind_spot_and_pixelcnn_does():
    """Pixel (4, 1) of a 6×6 image must depend on every earlier pixel, including those above and to the
    right that the masked-convolution PixelCNN never sees (van den Oord et al. 2016b, Fig. 1)."""
    def seen(model):
        x = torch.zeros(1, 1, 6, 6, dtype=torch.uint8)
        out = model.logits(x).detach()[..., 4, 1]
        hits = []
        for i, j in itertools.product(range(6), range(6)):
            if (i, j) >= (4, 1):
                continue
            y = x.clone()
            y[0, 0, i, j] = 255
            hits.append(((i, j), not torch.equal(model.logits(y).detach()[..., 4, 1], out)))
        return dict(hits)

    gated = seen(randomize(GatedPixelCNN(shape=(1, 6, 6), levels=256, channels=3, num_layers=4, out_channels=5)))
    assert all(gated.values()), [p for p, hit in gated.items() if not hit]
    plain = seen(randomize(PixelCNN(shape=(1, 6, 6), levels=256, channels=3, num_blocks=3, out_channels=5)))
    assert not plain[(3, 5)]  # the blind spot: above and to the right, out of the masked receptive field


@pytest.mark.parametrize("name", ["pixelcnn", "gated-pixelcnn", "gated-conditional"])
def test_colour_channels_read_earlier_channels_of_their_pixel_and_nothing_later(name):
    """Colour images, generation order raster then R → G → B (van den Oord et al. 2016a §3.4): the gradient of
    the log-likelihood of x_ijc with respect to every input at or after (i, j, c) is exactly zero, and channel c
    of a pixel reads that pixel's channels < c; the Gated PixelCNN (no blind spot) reads every earlier input."""
    shape = (3, 5, 6)  # widths: enough features per colour group that no group is all dead ReLUs somewhere
    kw = {"num_classes": 3} if name == "gated-conditional" else {}
    if name == "pixelcnn":
        model = PixelCNN(shape=shape, levels=256, channels=12, num_blocks=2, out_channels=30)
    else:
        model = GatedPixelCNN(shape=shape, levels=256, channels=24, num_layers=4, out_channels=30, **kw)
    model = randomize(model)
    labels = torch.tensor([1, 2]) if kw else None
    x = torch.randint(0, 256, (2, *shape), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    xs = model.scaled(x).requires_grad_()
    model.scaled = lambda _: xs  # logits as a function of the scaled inputs
    logits = model.logits(x, labels)
    c, h, w = shape
    order = torch.arange(h * w).view(1, h, w) * c + torch.arange(c).view(-1, 1, 1)
    for i, j, k in itertools.product(range(h), range(w), range(c)):
        ll = -torch.nn.functional.cross_entropy(logits[:1, :, k, i, j], x[:1, k, i, j].long())
        grad, = torch.autograd.grad(ll, xs, retain_graph=True)
        position = (i * w + j) * c + k
        assert not grad[0][order >= position].any(), f"pixel {(i, j)} channel {k} saw the future"
        assert not grad[1].any()  # nor another image of the batch
        assert (grad[0][:k, i, j] != 0).all(), f"channel {k} of pixel {(i, j)} does not read its earlier channels"
        if name != "pixelcnn" and position > 0:
            assert (grad[0][order < position] != 0).all(), f"pixel {(i, j)} channel {k} has a blind spot"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("levels,shape", [(2, (1, 2, 2)), (256, (1, 1, 2)), (2, (3, 1, 2))])
def test_probabilities_sum_to_one_over_all_images(name, levels, shape):
    kw = {"num_masks": 3, "resample_order": True} if name == "made" else {}
    model = randomize(tiny(name, shape=shape, levels=levels, **kw))
    values = torch.tensor(list(itertools.product(range(levels), repeat=shape[0] * shape[1] * shape[2])), dtype=torch.uint8).view(-1, *shape)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(values), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-5)  # float32 networks


@pytest.mark.parametrize("name", ALL)
def test_cached_sampling_equals_uncached_and_is_per_sample(name):
    model = randomize(tiny(name, shape=(1, 6, 5), levels=256))
    with torch.no_grad():
        cached = model.sample(4, seed=3)
        assert torch.equal(cached, model.sample_uncached(4, seed=3)) if name != "made" else True
        assert torch.equal(cached[2:], model.sample(2, seed=3, first=2))
        assert not torch.equal(cached, model.sample(4, seed=4))


def test_made_mixture_samples_use_each_mask_order():
    model = randomize(tiny("made", shape=(1, 3, 3), levels=2, num_masks=3, resample_order=True))
    with torch.no_grad():
        assert torch.equal(model.sample(6, seed=1)[3:], model.sample(3, seed=1, first=3))
        # one mask set sampled in its own order agrees with a full forward pass per pixel in that order
        u = torch.rand(5, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        fast = model._sample_order(5, u, 2)
        slow = torch.zeros(5, 9, dtype=torch.uint8)
        from trainers.autoregressive.models import draw
        for d in torch.argsort(model.orders[2]).tolist():
            slow[:, d] = draw(model.logits_with(slow.view(5, 1, 3, 3), 2).view(5, 1, 9)[:, :, d], u[:, d])
        assert torch.equal(fast, slow)


def params_of(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.pt")["trainer"]["model"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dataset", ["binarized-mnist", "fashion-mnist"])
def test_smoke_train_checkpoint_resume_evaluate_record(name, dataset, tmp_path, fashion_mnist_dir, mnist_npz):
    config = make_config(name, budget="smoke", dataset=dataset, overrides={})
    whole = train(SPECS[name], config, out=tmp_path / "whole", budget="smoke")
    assert train(SPECS[name], config, out=tmp_path / "split", budget="smoke", stop_after_steps=3) is None
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    resumed = train(SPECS[name], config, out=tmp_path / "split", budget="smoke", resume=True)
    a, b = params_of(tmp_path / "whole"), params_of(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same parameters after N steps
    assert resumed["metrics"]["final"]["test_nats"]["value"] == whole["metrics"]["final"]["test_nats"]["value"]
    def losses(run):
        return [(e["step"], e["train_nats"]) for e in RunDir(tmp_path / run).read_log()]

    assert losses("split") == losses("whole")  # same losses after the resume as without it
    record = json.loads((tmp_path / "split" / "record.json").read_text())
    assert record["steps"] == 6 and record["likelihood"]["num_examples"] == 64 and record["likelihood"]["kind"] == "exact"
    assert record["likelihood"]["convention"]["data"] == ("binary" if dataset == "binarized-mnist" else "8bit")
    assert record["params"]["total"] > 0 and record["sampling"]["num_images"] == 4
    assert record["sampling"]["s_per_1000"] > 0  # over all num_samples: the column tables of every family share
    assert {"fid", "kid"} <= set(record["metrics"]["final"])
    assert (tmp_path / "split" / "samples.png").stat().st_size > 0


def test_cli_smoke_resume_and_geneval_likelihood(tmp_path, mnist_npz):
    out = tmp_path / "made"
    base = [GENEVAL, "train", "made", "--dataset", "binarized-mnist", "--budget", "smoke", "--out", str(out)]
    first = subprocess.run(base + ["--stop-after-steps", "3"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1])["stopped"]
    again = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr  # an existing run needs --resume
    done = subprocess.run(base + ["--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 6 and summary["test_nats"] > 0
    # the checkpoint evaluates through the geneval.likelihood entry point, without importing trainers by name
    evaluated = subprocess.run([GENEVAL, "likelihood", str(out / "checkpoint.pt"), "--num", "64", "--json", "-q"],
                               capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["nats"] == pytest.approx(summary["test_nats"], rel=1e-12) and result["num_examples"] == 64
    # the record the likelihood leaderboards adopt: preset = the model, budget = how long, the published value
    record = json.loads((out / "record.json").read_text())
    assert record["model"] == record["preset"] == "made" and record["budget"] == "smoke" and record["steps"] == 6
    assert record["metrics"]["final"]["test_nats"]["value"] == summary["test_nats"]
    assert record["published"]["nats"] == 84.87
    # ... and the table a likelihood spec builds from it (as leaderboards/specs/likelihood_*.toml do)
    leaderboards = tmp_path / "leaderboards"
    (leaderboards / "specs").mkdir(parents=True)
    (leaderboards / "records").mkdir()
    (leaderboards / "records" / "made.json").write_text(json.dumps(record))
    spec = leaderboards / "specs" / "made.toml"
    spec.write_text('[table]\ntrainer = "autoregressive"\npreset = "made"\nbudget = "smoke"\n'
                    'dataset = "binarized-mnist"\nseeds = [0]\nimport = ["records/made.json"]\n'
                    '[columns]\nshow = ["likelihood.kind", "published.nats", "steps"]\n'
                    'metrics = ["test_nats", "test_bits_per_dim"]\n[[rows]]\nname = "MADE"\nbaseline = true\n')
    built = subprocess.run([GENEVAL, "leaderboard", "run", str(spec), "--no-train"], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    table = (leaderboards / "tables" / "made.md").read_text()
    assert "| Row | Kind | Published (nats) | Steps | NLL (nats) ↓ | bits/dim ↓ |" in table
    row = next(line for line in table.splitlines() if line.startswith("| MADE"))
    assert f"| exact | 84.87 | 6 | {summary['test_nats']:.2f} ± " in row, row
    assert "likelihood on `mnist:test`" in table


def test_bad_configs_fail_at_start():
    with pytest.raises(GenevalInputError, match="unknown key 'hiden'"):
        make_config("made", budget="smoke", dataset="binarized-mnist", overrides={"hiden": "3"})
    with pytest.raises(GenevalInputError, match="num_masks applies to made only"):
        make_config("nade", budget="smoke", dataset="binarized-mnist", overrides={"num_masks": "2"})
    with pytest.raises(GenevalInputError, match="conditional applies to gated-pixelcnn"):
        make_config("pixelcnn", budget="smoke", dataset="fashion-mnist", overrides={"conditional": "true"})
    with pytest.raises(GenevalInputError, match="unknown budget"):
        make_config("fvsbn", budget="huge", dataset="binarized-mnist", overrides={})


def test_class_conditional_gated_pixelcnn_smoke(tmp_path, fashion_mnist_dir):
    config = make_config("gated-pixelcnn", budget="smoke", dataset="fashion-mnist", overrides={"conditional": "true"})
    record = train(SPECS["gated-pixelcnn"], config, out=tmp_path / "cond", budget="smoke")
    assert record["likelihood"]["conditional"] is True
    # kept samples can be scored again later (e.g. once a domain extractor ships) to the same numbers
    from trainers.common.likelihood_training import rescore

    again = rescore(tmp_path / "cond")
    assert again["metrics"]["final"]["fid"]["value"] == pytest.approx(record["metrics"]["final"]["fid"]["value"], rel=1e-9)
    assert again["evaluation"]["rescored"]
