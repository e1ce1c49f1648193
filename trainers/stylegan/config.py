"""``StyleGanConfig``: the switches of the ProGAN / StyleGAN trainer, the recipes (presets) and the budgets.

A run's config = ``PRESETS[preset]`` → ``BUDGETS[budget]`` → ``--set key=value``, validated before any data is
loaded. The presets are cumulative, one per row of StyleGAN's Table 1 (Karras et al. 2019):

    progan = stylegan-a   ProGAN (Karras et al. 2018): nearest resampling, pixel norm, WGAN-GP + ε-drift
    stylegan-b            + bilinear resampling and StyleGAN's tuned training: non-saturating loss with R1 (γ = 10),
                            as the official ``train.py`` trains its "tuned baseline" (the FFHQ setup, appendix C)
    stylegan-c            + mapping network (8 layers, lr × 0.01) and AdaIN styles
    stylegan-d            + learned constant input
    stylegan-e            + noise inputs
    stylegan-f            + style-mixing regularisation (90% of the training samples)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from geneval.datasets import DATASETS
from geneval.errors import GenevalInputError
from trainers.common.config import apply_overrides

LOSSES = ("wgan-gp", "nonsat")
RESAMPLE = ("nearest", "bilinear")


@dataclass(frozen=True)
class StyleGanConfig:
    preset: str = "progan"
    budget: str = "small"
    dataset: str = "fashion-mnist"
    seed: int = 0
    # ---- growing (ProGAN §3): levels start_resolution · 2^k up to resolution; each new level fades in over
    # fade_images shown images, then trains stable_images (level 0: stable only); then full resolution to the end
    start_resolution: int = 0  # 0: a quarter of the data's side (7 for 28×28, 8 for 32×32)
    resolution: int = 0  # the last level's side; 0: the data's (the only value that can be scored)
    fade_images: int = 600_000  # ProGAN's lod_transition_kimg = 600
    stable_images: int = 600_000  # ProGAN's lod_training_kimg = 600
    reset_optimizer_on_grow: bool = True  # the official code resets Adam when a level is added
    # ---- networks
    channels: int = 64  # feature maps at every resolution of G and D (the papers: 512 up to 32×32)
    z_dim: int = 64  # = w_dim
    resample: str = "nearest"  # nearest (ProGAN) | bilinear (StyleGAN B)
    mapping_layers: int = 0  # StyleGAN C: depth of z → w and AdaIN styles (8); 0: no mapping, pixel norm
    mapping_lr_mul: float = 0.01
    const_input: bool = False  # StyleGAN D
    noise_inputs: bool = False  # StyleGAN E
    mixing_prob: float = 0.0  # StyleGAN F: 0.9
    w_avg_beta: float = 0.995  # w̄ ← lerp(mean w, w̄, β) every G step (``dlatent_avg_beta``)
    mbstd_group: int = 4
    # ---- objective and optimisation (both papers: Adam lr 0.001, β = (0, 0.99); D and G once per step)
    loss: str = "wgan-gp"  # wgan-gp (ProGAN, λ = 10 with the ε-drift) | nonsat (with R1)
    gp_weight: float = 10.0
    drift_epsilon: float = 0.001  # ProGAN §A.1: ε·E[D(x)²] keeps the critic's output near 0
    r1_gamma: float = 10.0  # nonsat only: γ/2 · E‖∇D(x_real)‖² (Mescheder et al. 2018; StyleGAN's FFHQ setup)
    lr: float = 0.001
    beta1: float = 0.0
    beta2: float = 0.99
    batch_size: int = 32
    # ProGAN's and StyleGAN's G_smoothing_kimg: the EMA generator (which draws the samples) has a half-life of
    # this many thousand images, β = 0.5^(batch / (1000 · ema_kimg)) per step, debiased (trainers.common.ema):
    # the small budget's 400-step phases are shorter than a fixed β = 0.999's 693-step half-life, which left
    # much of the initial weights in the average of the layers grown last
    ema_kimg: float = 10.0
    steps: int = 2000
    # ---- data and evaluation (as the GAN trainer's: a held-out train slice selects the best checkpoint)
    train_subset: int = 0
    val_holdout: int = 5000
    eval_every: int = 500
    val_samples: int = 5000
    eval_samples: int = 10000
    eval_num_ref: int = 0
    eval_features: str = ""
    eval_metrics: tuple[str, ...] = ("fid", "is", "kid", "precision", "recall")
    collapse_margin: float = 0.5
    sample_seed: int = 20240
    picture_psi: float = 0.7  # ψ of the style-mixing and noise pictures (the paper's figures use truncation)
    log_every: int = 50
    checkpoint_every: int = 250

    # ----------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        def choice(key, allowed):
            if getattr(self, key) not in allowed:
                raise GenevalInputError(f"{key}={getattr(self, key)!r} is unknown; "
                                        f"expected one of {', '.join(allowed)}")

        choice("dataset", tuple(DATASETS))
        choice("loss", LOSSES)
        choice("resample", RESAMPLE)
        for key in ("fade_images", "stable_images", "channels", "z_dim", "batch_size", "steps", "eval_every",
                    "val_samples", "eval_samples", "log_every", "checkpoint_every", "val_holdout", "mbstd_group"):
            if getattr(self, key) < 1:
                raise GenevalInputError(f"{key}={getattr(self, key)} must be ≥ 1")
        for key in ("mapping_layers", "train_subset", "eval_num_ref", "gp_weight", "drift_epsilon", "r1_gamma",
                    "start_resolution", "resolution"):
            if getattr(self, key) < 0:
                raise GenevalInputError(f"{key}={getattr(self, key)} must be ≥ 0")
        for key in ("lr", "mapping_lr_mul"):
            if getattr(self, key) <= 0:
                raise GenevalInputError(f"{key}={getattr(self, key)} must be > 0")
        if self.ema_kimg < 0:
            raise GenevalInputError(f"ema_kimg={self.ema_kimg} must be ≥ 0 (0: sample from the last weights)")
        for key in ("mixing_prob", "picture_psi", "w_avg_beta"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise GenevalInputError(f"{key}={getattr(self, key)} must be in [0, 1]")
        side = self.shape[1]
        if self.resolution > side:
            raise GenevalInputError(f"resolution={self.resolution}: growing past the data resolution ({self.dataset} "
                                    f"is {side}×{side})")
        if self.resolution and self.resolution != side:
            raise GenevalInputError(f"resolution={self.resolution}: the last level must be the data's {side}×{side} "
                                    "(its samples are scored against the data)")
        start = self.start
        if start < 2 or side % start or (side // start) & (side // start - 1):
            raise GenevalInputError(f"start_resolution={start} must be ≥ 2 and {side} / start_resolution a power of "
                                    "two (growing doubles the side)")
        if self.mixing_prob and not self.mapping_layers:
            raise GenevalInputError(f"mixing_prob={self.mixing_prob} mixes styles: it needs a mapping network "
                                    "(mapping_layers ≥ 1, StyleGAN config C)")
        if self.const_input and not self.mapping_layers:
            raise GenevalInputError("const_input=true leaves z no way in without styles: it needs mapping_layers ≥ 1")
        if self.train_subset and self.train_subset < self.batch_size:
            raise GenevalInputError(f"train_subset={self.train_subset} must be ≥ batch_size={self.batch_size}")

    # ---------------------------------------------------------------------------------------------- helpers
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(DATASETS.get(self.dataset).shape)

    @property
    def conditional(self) -> bool:  # read by trainers.gan.evaluation.available_metrics
        return False

    @property
    def start(self) -> int:
        return self.start_resolution or self.shape[1] // 4

    @property
    def levels(self) -> int:
        return (self.shape[1] // self.start).bit_length()

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.start * 2 ** k for k in range(self.levels))

    @property
    def ema_decay(self) -> float:
        """β per step of the EMA generator: a half-life of ``ema_kimg`` thousand images (ProGAN's G_smoothing)."""
        return 0.5 ** (self.batch_size / (1000.0 * self.ema_kimg)) if self.ema_kimg > 0 else 0.0

    def switches(self) -> dict:
        """The ingredient columns of the A → F table."""
        return {"bilinear": self.resample == "bilinear", "loss": self.loss, "mapping": self.mapping_layers > 0,
                "mapping_layers": self.mapping_layers, "styles": self.mapping_layers > 0,
                "const_input": self.const_input, "noise_inputs": self.noise_inputs, "mixing": self.mixing_prob > 0,
                "mixing_prob": self.mixing_prob, "channels": self.channels, "batch_size": self.batch_size,
                "resolutions": "→".join(map(str, self.resolutions))}

    def table1_configuration(self) -> str | None:
        """Which of StyleGAN's Table 1 configurations, A–F, this run's ingredients are (the leaderboard builds
        every row from preset ``stylegan-a`` plus switches, so the preset alone does not say); None: none of them."""
        defaults = {f.name: f.default for f in fields(self)}
        for letter, ingredients in zip("FEDCBA", (_F, _E, _D, _C, _B, _A)):
            if all(getattr(self, key) == ingredients.get(key, defaults[key]) for key in _F):
                return letter
        return None


_A: dict = {}
_B = {**_A, "resample": "bilinear", "loss": "nonsat"}
_C = {**_B, "mapping_layers": 8}
_D = {**_C, "const_input": True}
_E = {**_D, "noise_inputs": True}
_F = {**_E, "mixing_prob": 0.9}
PRESETS: dict[str, dict] = {"progan": _A, "stylegan-a": _A, "stylegan-b": _B, "stylegan-c": _C, "stylegan-d": _D,
                            "stylegan-e": _E, "stylegan-f": _F}

# Steps per level at batch B: stable/B for level 0, (fade + stable)/B for each later one, then full resolution.
BUDGETS: dict[str, dict] = {
    # seconds: 3 levels in 10 steps of 8 (level 0: steps 0–1, fade 2–3, stable 4–5, fade 6–7, full 8–9)
    "smoke": dict(steps=10, batch_size=8, channels=8, z_dim=8, fade_images=16, stable_images=16, train_subset=128,
                  val_holdout=64, eval_every=5, val_samples=32, eval_samples=64, eval_num_ref=256,
                  eval_features="pixels", log_every=1, checkpoint_every=2),
    # ≤ 30 minutes of one run on the shared 2-core CPU (one thread; load ≈ 4.4 from the other jobs), evaluation
    # included. Measured seconds per step (batch 32, 32 channels, 5 steps after a warm-up, progan / stylegan-f):
    # 7×7 0.055 / 0.054, 14×14 fading 0.135 / 0.142, 28×28 0.62 / 0.58. Schedule: 400 steps per phase
    # (12,800 images): 7×7 to step 400, 14×14 fades in over 400–800, 28×28 over 1200–1600, then 28×28 to
    # 3000: ≈ 12 + 110 + 1080 s ≈ 20 min of training, plus ≈ 3 min of validation and test evaluation.
    # (48 channels cost 1.02–1.05 s per 28×28 step: 33 min of training alone.)
    "small": dict(steps=3000, batch_size=32, channels=32, z_dim=64, fade_images=12_800, stable_images=12_800,
                  val_holdout=5000, eval_every=500, val_samples=2000, eval_samples=10000, log_every=50,
                  checkpoint_every=250),
    # the papers' widths at 28×28 (512 maps at every resolution ≤ 32, z = w = 512, 600k images per phase,
    # minibatch 16 as ProGAN's at low resolutions); 6M images in all. Not run here.
    "paper": dict(steps=375_000, batch_size=16, channels=512, z_dim=512, fade_images=600_000, stable_images=600_000,
                  eval_every=10_000, checkpoint_every=2_000),
}


def build_config(*, preset: str, budget: str = "small", dataset: str = "fashion-mnist",
                 overrides: dict | None = None, seed: int | None = None) -> StyleGanConfig:
    """Preset → budget → overrides, validated."""
    if preset not in PRESETS:
        raise GenevalInputError(f"unknown stylegan preset {preset!r}; known: {', '.join(PRESETS)}")
    if budget not in BUDGETS:
        raise GenevalInputError(f"unknown stylegan budget {budget!r}; known: {', '.join(BUDGETS)}")
    values = {"preset": preset, "budget": budget, "dataset": dataset, **PRESETS[preset], **BUDGETS[budget]}
    if seed is not None:
        values["seed"] = seed
    cfg = apply_overrides(StyleGanConfig(**values), dict(overrides or {}), what="stylegan config")
    cfg.validate()
    return cfg
