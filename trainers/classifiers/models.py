"""Which network each dataset trains, and how: the training recipes of the shipped domain classifiers.

The networks themselves live in ``geneval.features.domain`` (the installed package must rebuild them to
load the shipped weights, and ``geneval`` never imports ``trainers``). A recipe is everything the training
script needs beyond the seed; changing one changes the weights, so the export records it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from geneval.features.domain import NETS, Classifier


@dataclass(frozen=True)
class Recipe:
    net: str  # name in geneval.features.domain.NETS
    epochs: int
    batch_size: int
    lr: float  # peak learning rate of SGD (Nesterov momentum 0.9)
    weight_decay: float
    warmup_epochs: float  # linear warm-up from 0, then cosine decay to 0 at the last step
    crop_pad: int  # random crop of the zero-padded image; 0 = no shift
    hflip: bool
    channels_last: bool  # memory layout only (NHWC): oneDNN trains these small convs ~2-3x faster on CPU

    def as_dict(self) -> dict:
        return asdict(self)

    def build(self) -> Classifier:
        return NETS[self.net].build()


RECIPES: dict[str, Recipe] = {
    # Clothes are left/right symmetric: flips and ±2 px shifts.
    "fashion-mnist": Recipe("fashion-mnist-cnn", epochs=30, batch_size=128, lr=0.05, weight_decay=5e-4,
                            warmup_epochs=1, crop_pad=2, hflip=True, channels_last=True),
    # Digits are not symmetric (flips would turn some into others): small shifts only.
    "mnist": Recipe("mnist-cnn", epochs=15, batch_size=128, lr=0.05, weight_decay=5e-4,
                    warmup_epochs=1, crop_pad=2, hflip=False, channels_last=True),
    # 12 epochs: ~10 CPU-minutes each on one core; the narrow ResNet-9 passes 85% well before 30.
    "cifar10": Recipe("cifar10-cnn", epochs=12, batch_size=128, lr=0.1, weight_decay=5e-4,
                      warmup_epochs=2, crop_pad=4, hflip=True, channels_last=True),
}
