"""The cached samplers draw the same images as the naive samplers that run the network once per pixel (per channel),
for the same seeds: PixelCNN / Gated PixelCNN (trainers/autoregressive/fast_sampling.py), Row LSTM / Diagonal
BiLSTM (fast_sampling_rnn.py) and PixelCNN++ (fast_sampling_pp.py)."""

from __future__ import annotations

import pytest
import torch

from trainers.autoregressive import fast_sampling
from trainers.autoregressive.fast_sampling_pp import cached_params
from trainers.autoregressive.fast_sampling_rnn import cached_logits
from trainers.autoregressive.models import GatedPixelCNN, PixelCNN
from trainers.autoregressive.pixelcnnpp import PixelCNNpp
from trainers.autoregressive.pixelrnn import PixelRNN


def randomised(model, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised layers would make every logit equal
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


MODELS = {
    "pixelcnn": lambda shape, levels: PixelCNN(shape=shape, levels=levels, channels=6, num_blocks=2, out_channels=10),
    "gated": lambda shape, levels: GatedPixelCNN(shape=shape, levels=levels, channels=6, num_layers=3, out_channels=10),
    "gated-conditional": lambda shape, levels: GatedPixelCNN(shape=shape, levels=levels, channels=6, num_layers=3,
                                                             out_channels=10, num_classes=3),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("levels,shape", [(256, (1, 9, 8)), (2, (1, 7, 7)), (256, (3, 6, 5))])
def test_fast_sampler_equals_naive_sampler(name, levels, shape):
    model = randomised(MODELS[name](shape, levels))
    labels = torch.tensor([0, 2, 1, 1, 0, 2]) if model.conditional else None
    with torch.no_grad():
        fast = model.sample(6, seed=11, labels=labels)
        naive = model.sample_uncached(6, seed=11, labels=labels)
        assert torch.equal(fast, naive)
        # in float64 the two summation orders agree to ~1e-15: equality is then not luck at a CDF step
        model64 = model.double()
        model64.scaled = lambda x: x.double() * (2.0 / (model64.levels - 1)) - 1.0
        assert torch.equal(model64.sample(6, seed=11, labels=labels), model64.sample_uncached(6, seed=11, labels=labels))


def test_fast_sampler_is_per_sample_across_batches(monkeypatch):
    from trainers.autoregressive import fast_sampling

    model = randomised(MODELS["gated"]((1, 5, 5), 256))
    with torch.no_grad():
        whole = model.sample(7, seed=2)
        monkeypatch.setattr(fast_sampling, "BATCH", 3)  # batches of 3, 3, 1: sample i still from (seed, i)
        assert torch.equal(model.sample(7, seed=2), whole)
        assert torch.equal(model.sample(4, seed=2, first=3), whole[3:])


@pytest.mark.parametrize("levels", [7, 300])
def test_fast_sampler_with_embedded_categorical_inputs(levels):
    """A VQ-VAE prior: code indices read through an embedding (300 > 256 codes: int64 values), same draws."""
    model = randomised(GatedPixelCNN(shape=(1, 5, 6), levels=levels, channels=6, num_layers=3, out_channels=10,
                                     embedding=4))
    with torch.no_grad():
        fast = model.sample(5, seed=3)
        assert fast.dtype == (torch.int64 if levels > 256 else torch.uint8)
        assert torch.equal(fast, model.sample_uncached(5, seed=3))
        assert int(fast.max()) < levels and len(fast.unique()) > 3
        model64 = model.double()
        assert torch.equal(model64.sample(5, seed=3), model64.sample_uncached(5, seed=3))


def test_embedded_inputs_are_autoregressive():
    """Changing code (i, j) changes no logit at positions ≤ (i, j) in raster order."""
    model = randomised(GatedPixelCNN(shape=(1, 5, 5), levels=300, channels=4, num_layers=3, out_channels=6,
                                     embedding=3)).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 300, (1, 1, 5, 5), generator=g)
    base = model.logits(x)
    for i, j in [(0, 0), (2, 3), (4, 4)]:
        y = x.clone()
        y[0, 0, i, j] = (y[0, 0, i, j] + 17) % 300
        changed = (model.logits(y) - base).abs().amax(dim=(0, 1, 2)) > 0
        before = torch.zeros(5, 5, dtype=torch.bool)
        before.view(-1)[:i * 5 + j + 1] = True
        assert not changed[before].any()
        assert changed[~before].any() or (i, j) == (4, 4)


# --------------------------------------------------------------------------------------------- PixelRNN


def in_float64(model):
    """The model in float64 (its input scaling too): the cached and naive summation orders then agree to ~1e-14,
    so equal draws are not luck at a CDF step."""
    model = model.double()
    model.scaled = lambda x: x.double() * (2.0 / (model.levels - 1)) - 1.0
    return model


def pixelrnn(layer, shape, levels, kernel=3):
    wide = shape[0] > 1  # colour: a few units per channel group
    torch.manual_seed(0)
    return randomised(PixelRNN(shape=shape, levels=levels, layer=layer, hidden=6 if wide else 3, num_layers=3,
                               out_channels=12 if wide else 5, kernel=kernel))


@pytest.mark.parametrize("layer,kernel", [("row", 3), ("row", 5), ("diagonal", 3)])
@pytest.mark.parametrize("levels,shape", [(256, (1, 7, 6)), (2, (1, 6, 7)), (256, (3, 5, 4))])
def test_pixelrnn_cached_sampler_equals_naive_sampler(layer, kernel, levels, shape):
    model = pixelrnn(layer, shape, levels, kernel)
    x = torch.randint(0, levels, (3, *shape), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    with torch.no_grad():
        # the logits the cached passes compute, fed x's values, are the network's
        assert torch.allclose(cached_logits(model, x), model.logits(x), rtol=0, atol=2e-5)
        fast = model.sample(6, seed=11)
        assert torch.equal(fast, model.sample_uncached(6, seed=11)) and len(fast.unique()) > 1
        model64 = in_float64(model)
        assert torch.allclose(cached_logits(model64, x), model64.logits(x), rtol=0, atol=1e-12)
        assert torch.equal(model64.sample(6, seed=11), model64.sample_uncached(6, seed=11))


@pytest.mark.parametrize("layer", ["row", "diagonal"])
def test_pixelrnn_cached_sampler_is_per_sample_across_batches(layer, monkeypatch):
    model = pixelrnn(layer, (1, 5, 4), 256)
    with torch.no_grad():
        whole = model.sample(7, seed=2)
        monkeypatch.setattr(fast_sampling, "BATCH", 3)  # batches of 3, 3, 1: sample i still from (seed, i)
        assert torch.equal(model.sample(7, seed=2), whole)
        assert torch.equal(model.sample(4, seed=2, first=3), whole[3:])


# --------------------------------------------------------------------------------------------- PixelCNN++


def pixelcnnpp(shape, levels, nr_resnet=1, num_classes=0):
    """Random weights at 0.15: large enough that every connection matters, small enough that the network does not
    amplify float32 rounding (at 0.3 its parameters reach 1e5 and a different summation order moves them by ~1)."""
    torch.manual_seed(0)
    return randomised(PixelCNNpp(shape=shape, levels=levels, filters=6, nr_resnet=nr_resnet, num_mix=3,
                                 num_classes=num_classes), scale=0.15)


@pytest.mark.parametrize("shape,levels,nr_resnet,classes", [((1, 8, 8), 256, 1, 0), ((1, 8, 4), 2, 2, 0),
                                                            ((3, 4, 8), 256, 1, 0), ((3, 8, 4), 256, 2, 3)])
def test_pixelcnnpp_cached_sampler_equals_naive_sampler(shape, levels, nr_resnet, classes):
    model = pixelcnnpp(shape, levels, nr_resnet, classes)
    labels = torch.tensor([0, 2, 1, 1, 0]) if classes else None
    x = torch.randint(0, levels, (5, *shape), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    with torch.no_grad():
        # the mixture parameters the cached pass computes, fed x's values, are the network's at every pixel
        assert torch.allclose(cached_params(model, x, labels), model.params(model.scaled(x), labels), rtol=0, atol=1e-5)
        fast = model.sample(5, seed=11, labels=labels)
        assert torch.equal(fast, model.sample_uncached(5, seed=11, labels=labels)) and len(fast.unique()) > 1
        model64 = in_float64(model)
        assert torch.allclose(cached_params(model64, x, labels), model64.params(model64.scaled(x), labels), rtol=0,
                              atol=1e-12)
        assert torch.equal(model64.sample(5, seed=11, labels=labels),
                           model64.sample_uncached(5, seed=11, labels=labels))


def test_pixelcnnpp_cached_sampler_is_per_sample_across_batches(monkeypatch):
    model = pixelcnnpp((3, 4, 4), 256, num_classes=3)
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    with torch.no_grad():
        whole = model.sample(7, seed=2, labels=labels)
        monkeypatch.setattr(fast_sampling, "BATCH", 3)  # batches of 3, 3, 1: sample i still from (seed, i)
        assert torch.equal(model.sample(7, seed=2, labels=labels), whole)
        assert torch.equal(model.sample(4, seed=2, first=3, labels=labels[3:]), whole[3:])
        with pytest.raises(ValueError, match="needs labels"):
            model.sample(2, seed=2)
