"""``GanConfig``: every switch of the GAN trainer, the named recipes (presets) and the budgets.

A run's config = ``PRESETS[preset]`` → ``BUDGETS[budget]`` → ``--set key=value`` overrides, in that order;
``validate()`` then rejects unknown values and incompatible switches with one line naming them, before any
data is loaded. The two axes are independent: the preset says *what* is trained (the recipe of a paper), the
budget says *how long and how big* (``smoke``: seconds, for the test suite; ``small``: minutes on a CPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from geneval.datasets import DATASETS
from geneval.errors import GenevalInputError
from trainers.common.config import apply_overrides
from trainers.gan.losses import LOSSES


@dataclass(frozen=True)
class GanConfig:
    preset: str = "dcgan"
    budget: str = "default"
    dataset: str = "fashion-mnist"
    seed: int = 0
    # ---- architecture
    arch: str = "dcgan"  # mlp | dcgan | resnet
    # dcgan generator: transposed (4×4 stride-2 transposed conv, as published) | nearest (upsample + 3×3 conv,
    # no checkerboard artefacts; measured ~1.8× *slower* per step on this CPU: 2.25× the multiply-adds)
    g_upsample: str = "transposed"
    z_dim: int = 100
    g_ch: int = 64  # base channels (dcgan: at the output resolution; resnet: every block)
    d_ch: int = 64
    mlp_hidden: int = 256
    width_mult: float = 1.0  # multiplies g_ch, d_ch and mlp_hidden (BigGAN's "Ch." column)
    d_norm: str = "none"  # dcgan discriminator: none | batch | layer
    # ---- ingredients (independent switches)
    sn_g: bool = False  # spectral norm in G (SAGAN, BigGAN)
    sn_d: bool = False  # spectral norm in D (SNGAN)
    attention_res: int = 0  # SAGAN self-attention at this resolution in G and D; 0: none; -1: the largest allowed
    # the block at attention_res: self-attention, or SAGAN's control, a same-size local residual block
    attention_block: str = "self-attention"
    conditional: bool = False  # train on class labels
    g_cond: str = "none"  # none | cbn (conditional batch norm) | concat (one-hot appended to z)
    d_cond: str = "none"  # none | projection (Miyato & Koyama 2018) | acgan (auxiliary classifier) | concat
    acgan_weight: float = 1.0  # weight of the auxiliary classification loss
    shared_embedding: bool = False  # BigGAN: one class embedding, linearly projected into every CBN
    shared_dim: int = 128
    skip_z: bool = False  # BigGAN: hierarchical latents, one chunk of z per generator block
    ortho_beta: float = 0.0  # BigGAN's off-diagonal orthogonal regularisation strength (1e-4); 0: off
    ema_decay: float = 0.0  # EMA of G's weights for sampling (e.g. 0.999); 0: off
    ema_start: int = 0  # step from which the EMA averages (before: a copy)
    # ---- objective and optimisation
    loss: str = "nonsat"  # minimax | nonsat | wasserstein | hinge
    gp_weight: float = 0.0  # WGAN-GP gradient penalty λ (10); 0: off
    clip: float = 0.0  # WGAN weight clipping c (0.01); 0: off
    optimizer: str = "adam"  # adam | rmsprop
    lr_g: float = 2e-4
    lr_d: float = 2e-4  # lr_d ≠ lr_g: TTUR (Heusel et al. 2017)
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 64
    n_dis: int = 1  # discriminator steps per generator step
    steps: int = 2000  # generator steps ("iterations" of the papers)
    # ---- data
    train_subset: int = 0  # train on the first N images of the train split (0: all but the validation slice)
    val_holdout: int = 5000  # the last N train images: never trained on, the model-selection reference
    # ---- evaluation
    eval_every: int = 500  # steps between validation evaluations (FID/IS on the held-out train slice)
    val_samples: int = 5000  # generated samples per validation evaluation
    eval_samples: int = 10000  # generated samples for the reported (test-split) evaluation of final and best
    eval_num_ref: int = 0  # reference images for the reported evaluation (the first N of the test split); 0: all
    eval_features: str = ""  # extractor; "": the dataset's default (its domain classifier)
    eval_metrics: tuple[str, ...] = ("fid", "is", "kid", "intra_fid", "precision", "recall")
    collapse_margin: float = 0.5  # collapse: a validation FID above best × (1 + margin) after the best
    sample_seed: int = 20240  # seeds of the evaluation samples (sample i: seed + stream + i)
    log_every: int = 50
    checkpoint_every: int = 500

    # ----------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        def choice(key, allowed):
            value = getattr(self, key)
            if value not in allowed:
                raise GenevalInputError(f"{key}={value!r} is unknown; expected one of {', '.join(map(str, allowed))}")

        choice("dataset", tuple(DATASETS))  # shape and classes come from geneval.datasets
        choice("arch", ("mlp", "dcgan", "resnet"))
        choice("g_upsample", ("nearest", "transposed"))
        choice("attention_block", ("self-attention", "residual"))
        choice("d_norm", ("none", "batch", "layer"))
        choice("g_cond", ("none", "cbn", "concat"))
        choice("d_cond", ("none", "projection", "acgan", "concat"))
        choice("loss", LOSSES)
        choice("optimizer", ("adam", "rmsprop"))
        for key in ("z_dim", "g_ch", "d_ch", "mlp_hidden", "batch_size", "n_dis", "steps", "eval_every",
                    "val_samples", "eval_samples", "log_every", "checkpoint_every", "val_holdout", "shared_dim"):
            if getattr(self, key) < 1:
                raise GenevalInputError(f"{key}={getattr(self, key)} must be ≥ 1")
        for key in ("lr_g", "lr_d", "width_mult"):
            if getattr(self, key) <= 0:
                raise GenevalInputError(f"{key}={getattr(self, key)} must be > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise GenevalInputError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        if self.train_subset < 0 or self.eval_num_ref < 0 or self.gp_weight < 0 or self.clip < 0 or self.ortho_beta < 0:
            raise GenevalInputError("train_subset, eval_num_ref, gp_weight, clip and ortho_beta must be ≥ 0")

        # class conditioning
        for key in ("g_cond", "d_cond"):
            if getattr(self, key) != "none" and not self.conditional:
                raise GenevalInputError(f"{key}={getattr(self, key)} needs class labels: set conditional=true "
                                        f"(or {key}=none)")
        if self.conditional and self.g_cond == "none" and self.d_cond == "none":
            raise GenevalInputError("conditional=true but g_cond=none and d_cond=none: choose how G and D see labels")
        if self.shared_embedding and self.g_cond != "cbn":
            raise GenevalInputError("shared_embedding=true feeds conditional batch norm: it needs conditional=true "
                                    "and g_cond=cbn")
        if self.arch == "mlp":
            for key, on in (("g_cond", self.g_cond == "cbn"), ("skip_z", self.skip_z),
                            ("attention_res", self.attention_res != 0)):
                if on:
                    raise GenevalInputError(f"{key}={getattr(self, key)!r} needs a convolutional generator "
                                            "(arch=dcgan or resnet), not arch=mlp")
        if self.d_norm != "none" and self.arch != "dcgan":
            raise GenevalInputError(f"d_norm={self.d_norm} applies to arch=dcgan only (arch={self.arch} has none)")
        if self.attention_block != "self-attention" and self.attention_res == 0:
            raise GenevalInputError(f"attention_block={self.attention_block!r} replaces the attention block, but "
                                    "attention_res=0 places none: set attention_res too")
        if self.attention_res not in (0, -1):
            from trainers.gan.models import attention_resolutions

            allowed = attention_resolutions(self.shape[1])
            if self.attention_res not in allowed:
                raise GenevalInputError(f"attention_res={self.attention_res} is not a feature-map resolution of both "
                                        f"networks on {self.dataset}; expected one of {allowed} (or 0 / -1)")
        if self.skip_z:
            from trainers.gan.models import ladder

            blocks = ladder(self.shape[1])[1]
            if self.z_dim < blocks + 1:
                raise GenevalInputError(f"skip_z=true splits z into {blocks + 1} chunks: z_dim={self.z_dim} "
                                        f"must be ≥ {blocks + 1}")

        # objective
        if self.clip and self.loss != "wasserstein":
            raise GenevalInputError(f"clip={self.clip} (weight clipping) belongs to loss=wasserstein, not {self.loss}")
        if self.clip and self.gp_weight:
            raise GenevalInputError("clip and gp_weight are two ways to bound the critic: use one (WGAN or WGAN-GP)")
        if self.loss == "wasserstein" and not (self.clip or self.gp_weight or self.sn_d):
            raise GenevalInputError("loss=wasserstein needs a Lipschitz constraint: clip>0, gp_weight>0 or sn_d=true")
        if self.gp_weight and self.d_norm == "batch":
            raise GenevalInputError("gp_weight>0 with d_norm=batch: batch norm couples samples, which invalidates a "
                                    "per-sample gradient penalty (Gulrajani et al. 2017 §4); use d_norm=layer or none")
        if self.train_subset and self.train_subset < self.batch_size:
            raise GenevalInputError(f"train_subset={self.train_subset} must exceed batch_size={self.batch_size}")

    # ---------------------------------------------------------------------------------------------- helpers
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(DATASETS.get(self.dataset).shape)

    @property
    def num_classes(self) -> int:
        return len(DATASETS.get(self.dataset).classes)

    def switches(self) -> dict:
        """The ingredient columns of an ablation table, each explicit (booleans and values)."""
        return {
            "arch": self.arch, "loss": self.loss, "n_dis": self.n_dis, "sn_g": self.sn_g, "sn_d": self.sn_d,
            "attention_res": self.attention_res,
            "attention": self.attention_res != 0 and self.attention_block == "self-attention",
            "attention_block": self.attention_block if self.attention_res else "none",
            "conditional": self.conditional, "g_cond": self.g_cond, "d_cond": self.d_cond,
            "shared_embedding": self.shared_embedding, "skip_z": self.skip_z, "ortho_reg": self.ortho_beta > 0,
            "ortho_beta": self.ortho_beta, "ema": self.ema_decay > 0, "ema_decay": self.ema_decay,
            "gradient_penalty": self.gp_weight > 0, "gp_weight": self.gp_weight, "weight_clipping": self.clip > 0,
            "clip": self.clip, "ttur": self.lr_g != self.lr_d, "lr_g": self.lr_g, "lr_d": self.lr_d,
            "betas": [self.beta1, self.beta2], "optimizer": self.optimizer, "g_upsample": self.g_upsample,
            "d_norm": self.d_norm, "batch_size": self.batch_size, "width_mult": self.width_mult,
            "g_ch": self.g_ch, "d_ch": self.d_ch,
        }


# The recipes. Each cites the paper whose choices it copies; CPU-scale widths come from the budgets.
PRESETS: dict[str, dict] = {
    # Goodfellow et al. 2014: MLPs, the non-saturating generator loss of §3.
    "mlp": dict(arch="mlp", loss="nonsat", lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
    # Radford et al. 2016: BN in G and D (not on D's first layer), Adam 2e-4, β1 = 0.5.
    "dcgan": dict(arch="dcgan", loss="nonsat", d_norm="batch", lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
    # Mirza & Osindero 2014: the MLP GAN with the one-hot label appended to G's and D's inputs.
    "cgan": dict(arch="mlp", loss="nonsat", conditional=True, g_cond="concat", d_cond="concat",
                 lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
    # Arjovsky et al. 2017: critic clipped to [−0.01, 0.01], RMSProp 5e-5, 5 critic steps, DCGAN networks.
    "wgan": dict(arch="dcgan", loss="wasserstein", clip=0.01, d_norm="batch", optimizer="rmsprop",
                 lr_g=5e-5, lr_d=5e-5, n_dis=5),
    # Gulrajani et al. 2017, Algorithm 1: λ = 10, n_critic = 5, Adam(1e-4, β = (0, 0.9)); layer norm in D.
    "wgan-gp": dict(arch="dcgan", loss="wasserstein", gp_weight=10.0, d_norm="layer", lr_g=1e-4, lr_d=1e-4,
                    beta1=0.0, beta2=0.9, n_dis=5),
    # Miyato et al. 2018 (ResNet, CIFAR-10): SN in D, hinge loss, Adam(2e-4, β = (0, 0.9)), n_dis = 5.
    "sngan": dict(arch="resnet", loss="hinge", sn_d=True, lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.9, n_dis=5,
                  z_dim=128),
    # Zhang et al. 2019: SN in G and D, self-attention, TTUR (1e-4 / 4e-4), n_dis = 1, class-conditional
    # (conditional BN in G, projection D), hinge loss.
    "sagan": dict(arch="resnet", loss="hinge", sn_g=True, sn_d=True, attention_res=-1, conditional=True,
                  g_cond="cbn", d_cond="projection", lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.9, n_dis=1,
                  z_dim=128),
    # Brock et al. 2019 at small scale: SAGAN + shared embedding + skip-z + orthogonal reg. (β = 1e-4) + EMA
    # of G; n_dis = 2, β = (0, 0.999). The EMA starts half-way, as BigGAN's starts late (20k iterations): an
    # average over the first, fast-moving ~1000 steps was noise even with standing statistics (measured on a
    # conditional DCGAN, Fashion-MNIST: EMA FID 126 vs G's 79 at step 1000).
    "biggan-lite": dict(arch="resnet", loss="hinge", sn_g=True, sn_d=True, attention_res=-1, conditional=True,
                        g_cond="cbn", d_cond="projection", shared_embedding=True, shared_dim=128, skip_z=True,
                        ortho_beta=1e-4, ema_decay=0.999, ema_start=1000, lr_g=1e-4, lr_d=4e-4, beta1=0.0,
                        beta2=0.999, n_dis=2, z_dim=120),
}

BUDGETS: dict[str, dict] = {
    "default": {},
    # seconds: tiny widths, a few steps, small data slices, pixel features (no shipped weights needed)
    "smoke": dict(steps=4, batch_size=16, g_ch=8, d_ch=8, mlp_hidden=32, shared_dim=8, z_dim=16, train_subset=256,
                  val_holdout=64, eval_every=2, val_samples=64, eval_samples=64, eval_num_ref=256,
                  eval_features="pixels",
                  log_every=1, checkpoint_every=2, ema_start=1),
    # minutes on 2 CPU cores (≤ 20 min per run on Fashion-MNIST); domain-classifier features
    "small": dict(steps=4000, batch_size=64, g_ch=32, d_ch=32, mlp_hidden=256, val_holdout=5000,
                  eval_every=500, val_samples=5000, eval_samples=10000, log_every=50, checkpoint_every=250),
}

# Budget entries that depend on the recipe (ResNets cost ~n_dis× more per generator step).
PRESET_BUDGETS: dict[tuple[str, str], dict] = {
    ("sngan", "small"): dict(steps=1500, eval_every=250, n_dis=2),
    ("sagan", "small"): dict(steps=2000, eval_every=250),
    ("biggan-lite", "small"): dict(steps=1500, eval_every=250, ema_start=750),
    ("wgan", "small"): dict(steps=1500, eval_every=250),
    ("wgan-gp", "small"): dict(steps=1500, eval_every=250),
}


def build_config(*, preset: str, budget: str = "default", dataset: str = "fashion-mnist",
                 overrides: dict | None = None, seed: int | None = None) -> GanConfig:
    """Preset → budget → overrides, validated; ``attention_res=-1`` resolved to the largest allowed."""
    if preset not in PRESETS:
        raise GenevalInputError(f"unknown GAN preset {preset!r}; known: {', '.join(PRESETS)}")
    if budget not in BUDGETS:
        raise GenevalInputError(f"unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
    values = {"preset": preset, "budget": budget, "dataset": dataset, **PRESETS[preset], **BUDGETS[budget],
              **PRESET_BUDGETS.get((preset, budget), {})}
    if seed is not None:
        values["seed"] = seed
    cfg = GanConfig(**values)
    cfg = apply_overrides(cfg, dict(overrides or {}), what="GAN config")  # validates
    if cfg.attention_res == -1:
        from trainers.gan.models import attention_resolutions

        cfg = dataclasses.replace(cfg, attention_res=max(attention_resolutions(cfg.shape[1])))
    cfg.validate()
    return cfg
