"""Train an autoregressive model (FVSBN, NADE, MADE, PixelCNN, Gated PixelCNN, PixelCNN++, Row LSTM, Diagonal
BiLSTM) and evaluate its exact test likelihood with geneval.

    geneval train pixelcnn --dataset binarized-mnist --budget small --out runs/pixelcnn-bmnist
    geneval train made --dataset fashion-mnist --budget small --set num_masks=4 --out runs/made-fmnist --resume
    geneval train pixelcnnpp --dataset cifar10 --budget small --out runs/pixelcnnpp-cifar10

The loop, checkpoints, evaluation and record are ``trainers.common.likelihood_training``; this file says
which network each name (the *preset*: what is trained) builds and the budgets (how long and how big):
``smoke`` (a few steps on 256 images, seconds; the test suite runs it), ``small`` (minutes on one CPU core:
what the likelihood table reports) and ``paper`` (the reference sizes of pytorch-generative, trained for hours
on a GPU there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geneval.errors import GenevalInputError
from trainers.autoregressive.models import FVSBN, MADE, NADE, GatedPixelCNN, PixelCNN
from trainers.autoregressive.pixelcnnpp import PixelCNNpp
from trainers.autoregressive.pixelrnn import PixelRNN
from trainers.common.likelihood_training import (LikelihoodTrainConfig, Spec, TrainingData, load_for_likelihood,
                                                   model_config)
from trainers.common.seeding import derived_seed

PYTORCH_GENERATIVE = "pytorch-generative README (dynamically binarised MNIST, test NLL in nats)"
PIXELRNN_PAPER = "van den Oord et al. 2016a (Pixel Recurrent Neural Networks), test NLL tables"
PIXELCNNPP_PAPER = "Salimans et al. 2017 (PixelCNN++), Table 1"
GATED_PIXELCNN_PAPER = "van den Oord et al. 2016b (Conditional Image Generation with PixelCNN Decoders), Table 1"
CLASSIC = ("fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn")  # the models of AutoregressiveConfig


@dataclass(frozen=True)
class AutoregressiveConfig(LikelihoodTrainConfig):
    model: str = "pixelcnn"
    rank: int = 8  # 8-bit data: rank of each pixel's 256-way readout (FVSBN, NADE, MADE)
    hidden: int = 500  # NADE hidden units; MADE units per hidden layer
    hidden_layers: int = 1  # MADE
    num_masks: int = 1  # MADE: order/connectivity sets (1 = no resampling)
    resample_order: bool = False  # MADE: also resample the input order (besides the connectivity)
    channels: int = 64  # PixelCNN / Gated PixelCNN
    num_layers: int = 7  # PixelCNN residual blocks / Gated PixelCNN gated layers
    out_channels: int = 256  # the 1×1 output layer before the logits
    conditional: bool = False  # Gated PixelCNN: p(x | class)

    def validate(self) -> None:
        super().validate()
        if self.model not in CLASSIC:
            raise GenevalInputError(f"model {self.model!r} is not one of {', '.join(CLASSIC)}")
        if self.num_masks != 1 and self.model != "made":
            raise GenevalInputError(f"num_masks applies to made only, not {self.model}")
        if self.resample_order and (self.model != "made" or self.num_masks < 2):
            raise GenevalInputError("resample_order needs model made and num_masks ≥ 2")
        if self.conditional and self.model != "gated-pixelcnn":
            raise GenevalInputError(f"conditional applies to gated-pixelcnn only, not {self.model}")
        for name in ("rank", "hidden", "hidden_layers", "num_masks", "channels", "num_layers", "out_channels"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")


# The newer models have their own small configs rather than more fields on AutoregressiveConfig: a new field
# would change the config hash of every committed autoregressive record (geneval.leaderboard.spec.config_hashes).


@dataclass(frozen=True)
class PixelCNNppConfig(LikelihoodTrainConfig):
    """PixelCNN++; defaults are the reference's train.py (nr_filters 160, nr_resnet 5, nr_logistic_mix 10,
    dropout_p 0.5, polyak_decay 0.9995)."""

    model: str = "pixelcnnpp"
    filters: int = 160
    nr_resnet: int = 5  # gated ResNet blocks per resolution and stream
    num_mix: int = 10  # logistic mixture components
    dropout: float = 0.5
    conditional: bool = False  # p(x | class): a class embedding added in every gated ResNet block
    ema_decay: float = 0.9995  # Polyak averaging: the evaluated (and sampled) weights are the EMA; 0 = off

    def validate(self) -> None:
        super().validate()
        if self.model != "pixelcnnpp":
            raise GenevalInputError(f"PixelCNNppConfig is for pixelcnnpp, not {self.model!r}")
        for name in ("filters", "nr_resnet", "num_mix"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1 or not 0 <= self.ema_decay < 1:
            raise GenevalInputError(f"dropout and ema_decay must be in [0, 1), got {self.dropout}, {self.ema_decay}")


@dataclass(frozen=True)
class PixelRNNConfig(LikelihoodTrainConfig):
    """Row LSTM / Diagonal BiLSTM."""

    model: str = "diagonal-bilstm"
    hidden: int = 16  # h: each residual block carries 2h features; the LSTM has h units
    num_layers: int = 7  # residual LSTM blocks
    out_channels: int = 32  # the 1×1 output layer before the logits
    kernel: int = 3  # Row LSTM: width of the input-to-state and state-to-state convolutions
    ema_decay: float = 0.0  # Polyak averaging of the weights (off: the PixelRNN paper does not use it)

    def validate(self) -> None:
        super().validate()
        if self.model not in ("row-lstm", "diagonal-bilstm"):
            raise GenevalInputError(f"PixelRNNConfig is for row-lstm or diagonal-bilstm, not {self.model!r}")
        for name in ("hidden", "num_layers", "out_channels", "kernel"):
            if getattr(self, name) < 1:
                raise GenevalInputError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise GenevalInputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def build(config, data: TrainingData):
    shape, levels = data.shape, data.levels
    if config.model == "fvsbn":
        return FVSBN(shape=shape, levels=levels, rank=config.rank)
    if config.model == "nade":
        return NADE(shape=shape, levels=levels, hidden=config.hidden, rank=config.rank)
    if config.model == "made":
        return MADE(shape=shape, levels=levels, hidden=(config.hidden,) * config.hidden_layers, rank=config.rank,
                    num_masks=config.num_masks, resample_order=config.resample_order,
                    mask_seed=derived_seed(config.seed, 201))
    if config.model == "pixelcnn":
        return PixelCNN(shape=shape, levels=levels, channels=config.channels, num_blocks=config.num_layers,
                        out_channels=config.out_channels)
    if config.model == "pixelcnnpp":
        return PixelCNNpp(shape=shape, levels=levels, filters=config.filters, nr_resnet=config.nr_resnet,
                          num_mix=config.num_mix, dropout=config.dropout,
                          num_classes=data.num_classes if config.conditional else 0)
    if config.model in ("row-lstm", "diagonal-bilstm"):
        return PixelRNN(shape=shape, levels=levels, layer="row" if config.model == "row-lstm" else "diagonal",
                        hidden=config.hidden, num_layers=config.num_layers, out_channels=config.out_channels,
                        kernel=config.kernel)
    return GatedPixelCNN(shape=shape, levels=levels, channels=config.channels, num_layers=config.num_layers,
                         out_channels=config.out_channels, num_classes=data.num_classes if config.conditional else 0)


def published(nats: float) -> dict:
    return {"binarized-mnist": {"nats": nats, "source": PYTORCH_GENERATIVE}}


def cifar10_bits(bits_per_dim: float, source: str = PIXELRNN_PAPER) -> dict:
    """A published CIFAR-10 test bits/dim, with the nats per image it means (3072 dimensions)."""
    return {"bits_per_dim": bits_per_dim, "nats": round(bits_per_dim * 3072 * math.log(2), 1), "source": source}


def exact(config) -> str:
    return "exact"


SPECS = {
    name: Spec(family="autoregressive", model=name, build=build, kind=exact, published=published(nats))
    for name, nats in (("fvsbn", 96.58), ("nade", 85.65), ("made", 84.87), ("pixelcnn", 81.45),
                       ("gated-pixelcnn", 81.50))
}
# CIFAR-10 test bits/dim: PixelCNN in the PixelRNN paper's table, Gated PixelCNN in its own paper.
SPECS["pixelcnn"].published["cifar10"] = cifar10_bits(3.14)
SPECS["gated-pixelcnn"].published["cifar10"] = cifar10_bits(3.03, GATED_PIXELCNN_PAPER)
# Published values of the papers themselves. The PixelRNN paper's 79.20 nats is on the statically binarised
# MNIST of Murray & Salakhutdinov; the runs here binarise dynamically and evaluate on a fixed binarisation.
SPECS["pixelcnnpp"] = Spec(family="autoregressive", model="pixelcnnpp", build=build, kind=exact,
                           published={"cifar10": cifar10_bits(2.92, PIXELCNNPP_PAPER)})
SPECS["row-lstm"] = Spec(family="autoregressive", model="row-lstm", build=build, kind=exact,
                         published={"cifar10": cifar10_bits(3.07)})
SPECS["diagonal-bilstm"] = Spec(family="autoregressive", model="diagonal-bilstm", build=build, kind=exact,
                                published={"binarized-mnist": {"nats": 79.20, "source": PIXELRNN_PAPER + " (static "
                                                               "binarisation)"}, "cifar10": cifar10_bits(3.00)})
MODELS = tuple(SPECS)
CONFIGS = {**{name: AutoregressiveConfig for name in CLASSIC}, "pixelcnnpp": PixelCNNppConfig,
           "row-lstm": PixelRNNConfig, "diagonal-bilstm": PixelRNNConfig}

EIGHT_BIT_DATASETS = ("mnist", "fashion-mnist", "cifar10")
SMOKE = dict(steps=6, batch_size=16, warmup_steps=2, train_num=256, eval_num=64, eval_batch_size=64, num_samples=8,
             timing_num=4, sample_features="pixels", checkpoint_every=3, log_every=2)
# small: ~5 minutes of training on one core each (the likelihood table's budget); 8-bit data cost a 256-way
# softmax per pixel, so the MLP models get smaller batches and readout rank there ("small:fashion-mnist").
# paper: the sizes of pytorch-generative's examples (NADE 500 hidden, MADE 1 layer of 8000 in Germain et al.).
# Model → budget (or "budget:dataset", applied on top) → config fields.
BUDGETS: dict[str, dict[str, dict]] = {
    "fvsbn": {"smoke": {**SMOKE}, "small": dict(steps=20000, lr=3e-3, batch_size=100, warmup_steps=200),
              "small:fashion-mnist": dict(steps=1500, batch_size=32, rank=4),
              "paper": dict(steps=60000, lr=3e-3, batch_size=100)},
    "nade": {"smoke": {**SMOKE, "hidden": 16}, "small": dict(steps=3000, hidden=100, batch_size=64),
             "small:fashion-mnist": dict(steps=2000, batch_size=32, rank=4),
             "paper": dict(steps=60000, hidden=500, batch_size=64)},
    "made": {"smoke": {**SMOKE, "hidden": 16, "num_masks": 2}, "small": dict(steps=20000, hidden=500, batch_size=100),
             "small:fashion-mnist": dict(steps=1500, batch_size=32, rank=4),
             "paper": dict(steps=60000, hidden=8000, batch_size=100)},
    "pixelcnn": {"smoke": {**SMOKE, "channels": 4, "num_layers": 1, "out_channels": 8},
                 "small": dict(steps=4000, channels=16, num_layers=4, out_channels=64, batch_size=32),
                 "small:fashion-mnist": dict(steps=3000),
                 "paper": dict(steps=60000, channels=64, num_layers=7, out_channels=256, batch_size=64)},
    "gated-pixelcnn": {"smoke": {**SMOKE, "channels": 4, "num_layers": 2, "out_channels": 8},
                       "small": dict(steps=3000, channels=16, num_layers=5, out_channels=64, batch_size=32),
                       "small:fashion-mnist": dict(steps=2000),
                       "paper": dict(steps=60000, channels=64, num_layers=7, out_channels=256, batch_size=64)},
    # PixelCNN++, Row LSTM, Diagonal BiLSTM. small: ≤ 30 minutes for one run (training + evaluation on the test
    # split + samples) on one thread of a 2-core CPU shared with two other training jobs, estimated from seconds
    # per step measured over 4 steps (batch 16) and forward passes of 100 images there:
    #   pixelcnnpp  filters 32, 1 block, 5 components: 0.67 s/step at 28×28 (0.93 at 32×32); 10k test images
    #               2.3 min (2.7); 100 samples ≈ 6 min (50 samples at 32×32 ≈ 6.5 min)  → 1200 steps ≈ 22 min
    #               (CIFAR-10: 800 steps ≈ 21 min)
    #   row-lstm    h 16, 4 layers: 0.16 s/step; test 0.6 min; 100 samples ≈ 2 min → 6000 steps ≈ 19 min
    #               (CIFAR-10: 0.47 s/step, test 1.7 min, 20 samples ≈ 6 min → 2200 steps ≈ 25 min)
    #   diagonal-bilstm  h 16, 2 layers: 0.72 s/step (4 layers: 1.1–1.3); test ≈ 1.5 min; 100 samples ≈ 3 min
    #               → 1300 steps ≈ 20 min (CIFAR-10: 0.81 s/step, test 2.6 min, 20 samples ≈ 6.5 min → 1100
    #               steps ≈ 24 min)
    # Sampling was a forward pass per pixel (per channel for the colour PixelRNNs) when these budgets were set, so
    # the small runs draw 100 samples, not 200 (CIFAR-10: 50 for PixelCNN++, 20 for the PixelRNNs; sample metrics
    # on so few are rough). The samplers are now cached (fast_sampling_rnn.py, fast_sampling_pp.py: the same
    # values for the same seed); benchmarks/bench_ar_sampling.py, Fashion-MNIST small presets, CPU seconds per
    # 1000 samples on one thread (naive → cached): row-lstm 2368 → 9.7, diagonal-bilstm 5862 → 6.1, pixelcnnpp
    # 6253 → 37 — 10,000 samples in 1–6 minutes. The budgets are kept as they are: num_samples is part of the
    # config, and changing it would change the config hash of the recorded small runs.
    # paper: PixelCNN++ as the reference's train.py (160 filters, 5 blocks per resolution, 10 components,
    # dropout 0.5, Polyak 0.9995, lr 1e-3, batch 16 per GPU × 8 GPUs = 128) — the same network at 28×28 (the
    # three resolutions are 28, 14, 7); PixelRNN as its paper (§5 and its table of hyper-parameters): binarised
    # MNIST a 7-layer Diagonal BiLSTM with h = 16 (the Row LSTM gets the same here), CIFAR-10 12 layers with
    # h = 128, which the 28×28 8-bit datasets get too. The output layers' width is not given; 2h here. Steps:
    # the papers train for days on GPUs; these are nominal.
    "pixelcnnpp": {"smoke": {**SMOKE, "filters": 4, "nr_resnet": 1, "num_mix": 2, "ema_decay": 0.9, "timing_num": 8},
                   "small": dict(steps=1200, filters=32, nr_resnet=1, num_mix=5, batch_size=16, ema_decay=0.999,
                                 num_samples=100, timing_num=100),
                   "small:cifar10": dict(steps=800, num_samples=50, timing_num=50),
                   "paper": dict(steps=300000, filters=160, nr_resnet=5, num_mix=10, dropout=0.5, batch_size=128,
                                 lr=1e-3, ema_decay=0.9995, warmup_steps=0, checkpoint_every=1000)},
    "row-lstm": {"smoke": {**SMOKE, "hidden": 3, "num_layers": 1, "out_channels": 8, "timing_num": 8},
                 "small": dict(steps=6000, hidden=16, num_layers=4, out_channels=32, batch_size=16,
                               num_samples=100, timing_num=100),
                 "small:cifar10": dict(steps=2200, num_samples=20, timing_num=20),
                 "paper": dict(steps=100000, hidden=16, num_layers=7, out_channels=32, batch_size=16),
                 **{f"paper:{d}": dict(hidden=128, num_layers=12, out_channels=256) for d in EIGHT_BIT_DATASETS}},
    "diagonal-bilstm": {"smoke": {**SMOKE, "hidden": 3, "num_layers": 1, "out_channels": 8, "timing_num": 8},
                        "small": dict(steps=1300, hidden=16, num_layers=2, out_channels=32, batch_size=16,
                                      num_samples=100, timing_num=100),
                        "small:cifar10": dict(steps=1100, num_samples=20, timing_num=20),
                        "paper": dict(steps=100000, hidden=16, num_layers=7, out_channels=32, batch_size=16),
                        **{f"paper:{d}": dict(hidden=128, num_layers=12, out_channels=256) for d in EIGHT_BIT_DATASETS}},
}
BUDGET_NAMES = ("smoke", "small", "paper")


def make_config(model: str, *, budget: str, dataset: str, overrides: dict) -> AutoregressiveConfig:
    """The config of ``model`` at ``budget`` on ``dataset``, with ``--set`` overrides, validated."""
    if model not in CONFIGS:
        raise GenevalInputError(f"model {model!r} is not one of {', '.join(CONFIGS)}")
    return model_config(CONFIGS[model], model, BUDGETS, budget=budget, dataset=dataset, overrides=overrides)


def load_likelihood_model(state: dict):
    """Entry point ``geneval.likelihood: autoregressive``: a checkpoint → a LikelihoodModel."""
    return load_for_likelihood(state, SPECS, CONFIGS.get(state.get("model_name"), AutoregressiveConfig))
