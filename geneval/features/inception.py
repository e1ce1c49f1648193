"""The FID Inception network: TensorFlow's 2015-12-05 Inception-v3 graph, as ported by pytorch-fid.

FID (Heusel et al., 2017, TTUR), IS and KID are defined on this one network: the ``inception-2015-12-05``
graph. pytorch-fid ported its weights to ``pt_inception-2015-12-05-6726825d.pth`` and torch-fidelity loads
the same tensors. This graph differs from torchvision's Inception-v3 (see pytorch-fid's ``FIDInception*``):

- every average pool inside the Inception blocks ignores the zero padding (``count_include_pad=False``),
  as TF's ``AvgPool`` with ``SAME`` padding does;
- the pool branch of the last block, Mixed_7c, is a *max* pool (an oddity of this graph);
- BatchNorm epsilon is 1e-3 and the classifier has 1008 outputs (1000 classes + 8 unused).

Module names match torchvision/pytorch-fid, so the official state dict (and torch-fidelity's) loads as is.

Two preprocessing modes (``info.mode``):

- ``tf`` (default): uint8 → float32 → TF1 ``resize_bilinear`` to 299² (``tf_resize``) → (x − 128) / 128,
  as TTUR and torch-fidelity. Use it to compare with published FIDs.
- ``pytorch-fid``: uint8 / 255 (``ToTensor``) → ``F.interpolate(bilinear, align_corners=False)`` → 2x − 1,
  as pytorch-fid. Its FIDs differ slightly from TF's; offered to reproduce numbers computed with it.

For speed (``prepare_for_inference``): each conv's BatchNorm is folded into it, its ReLU fused into the
oneDNN call (``features/fusion.py``), each block's 1×1 convs on the block input run as one (``Fused1x1``),
the average-pool branch pools after its 1×1 conv, and the network runs in channels_last. The unfused modules
remain the reference path (BatchNorm calibration in tests). See ``bench_inception_throughput.py``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from geneval.errors import GenevalInputError
from geneval.features.allocator import keep_freed_memory_for_reuse
from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor
from geneval.features.fusion import conv2d, fold_batchnorm_into
from geneval.features.tf_resize import resize_bilinear_tf1
from geneval.images import check_batch

log = logging.getLogger(__name__)

NAME = "inception-v3-fid"
MODES = ("tf", "pytorch-fid")
INPUT_SIZE = 299
# "spatial": sFID's features (Nash et al. 2021; guided-diffusion's evaluator.py reads TF's ``mixed_6/conv:0``,
# the ReLU output of Mixed_6d's 1×1 branch, 192 × 17², keeps channels ``[..., :7]`` of the NHWC tensor and
# flattens it row-major): 7 × 17 × 17 = 2023 values per image in (height, width, channel) order.
SPATIAL_CHANNELS = 7
LAYERS = {"64": 64, "192": 192, "768": 768, "spatial": SPATIAL_CHANNELS * 17 * 17, "pool3": 2048,
          "logits_unbiased": 1008, "logits": 1008}
DEFAULT_LAYERS = {"fid": "pool3", "kid": "pool3", "is": "logits_unbiased", "prdc": "pool3", "sfid": "spatial"}
BN_EPS = 1e-3  # TF's BatchNorm epsilon in this graph


class BasicConv2d(nn.Module):
    """conv (no bias) → BatchNorm(eps 1e-3) → ReLU; after ``fold_batchnorm``, conv (with bias) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.bn, nn.Identity):
            return conv2d(self.conv, x, relu=True)
        return F.relu(self.bn(self.conv(x)), inplace=True)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """The affine part, before the ReLU."""
        if isinstance(self.bn, nn.Identity):
            return conv2d(self.conv, x, relu=False)
        return self.bn(self.conv(x))

    def fold_batchnorm(self) -> None:
        """Fold the inference-mode BatchNorm into the conv (``fusion.fold_batchnorm_into``): float64 factors,
        one float32 rounding of the weights; ~1e-6 relative change, inside float32's own error here."""
        fold_batchnorm_into(self.conv, self.bn)
        self.bn = nn.Identity()


class Fused1x1(nn.Module):
    """The 1×1 convolutions of one Inception block that read the block input (and are followed by a ReLU),
    as one convolution: one wide GEMM instead of two or three narrow ones, and the block input read once.
    Inference only (after ``fold_batchnorm``); each output channel's dot product is the member conv's own.
    """

    def __init__(self, convs: list[BasicConv2d]):
        super().__init__()
        for conv in convs:
            if conv.conv.kernel_size != (1, 1) or not isinstance(conv.bn, nn.Identity):
                raise ValueError("Fused1x1 takes folded 1x1 BasicConv2d modules")
        self.sizes = [conv.conv.out_channels for conv in convs]
        weight = torch.cat([conv.conv.weight for conv in convs])
        bias = torch.cat([conv.conv.bias for conv in convs])
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=1).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)

    def forward(self, x: torch.Tensor, *, relu: bool) -> list[torch.Tensor]:
        """Each member conv's output (after ReLU if ``relu``), as channel slices of one tensor."""
        return list(torch.split(conv2d(self.conv, x, relu=relu), self.sizes, dim=1))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's 3x3/1 SAME average pool divides by the number of *real* pixels under the window (pytorch-fid patch).
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _pool_then_relu(branch_pool: "BasicConv2d", x: torch.Tensor) -> torch.Tensor:
    """The average-pool branch ``relu(conv1x1(avgpool(x)))`` computed as ``relu(avgpool(conv1x1(x)))``.

    A 1×1 conv (a per-pixel linear map over channels, plus a bias) commutes with a per-channel average pool
    whose weights sum to 1, so the pool can run over the branch's 32–192 output channels instead of the
    block's 192–1280 input channels. Exact in real arithmetic; float32 sums are merely ordered differently.
    """
    return F.relu_(_tf_avg_pool(branch_pool.linear(x)))


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d (pytorch-fid's FIDInceptionA)."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

        self.fused: Fused1x1 | None = None

    def fuse(self) -> None:
        self.fused = Fused1x1([self.branch1x1, self.branch5x5_1, self.branch3x3dbl_1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is None:  # reference path (BatchNorm calibration, tests)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)
        b1, b5, b3 = self.fused(x, relu=True)
        b5 = self.branch5x5_2(b5)
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(b3))
        return torch.cat([b1, b5, b3, _pool_then_relu(self.branch_pool, x)], 1)


class InceptionB(nn.Module):
    """Mixed_6a: grid reduction 35 → 17."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """Mixed_6b..6e with factorised 7x7 convolutions (pytorch-fid's FIDInceptionC)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

        self.fused: Fused1x1 | None = None

    def fuse(self) -> None:
        self.fused = Fused1x1([self.branch1x1, self.branch7x7_1, self.branch7x7dbl_1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tapped(x)[0]

    def forward_tapped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output, its 1×1 branch after the ReLU): TF's ``mixed_N/conv``, which sFID reads in Mixed_6d."""
        if self.fused is None:  # reference path
            b1 = self.branch1x1(x)
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            bd = self.branch7x7dbl_1(x)
            for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                bd = conv(bd)
            return torch.cat([b1, b7, bd, self.branch_pool(_tf_avg_pool(x))], 1), b1
        b1, b7, bd = self.fused(x, relu=True)
        b7 = self.branch7x7_3(self.branch7x7_2(b7))
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = conv(bd)
        return torch.cat([b1, b7, bd, _pool_then_relu(self.branch_pool, x)], 1), b1


class InceptionD(nn.Module):
    """Mixed_7a: grid reduction 17 → 8."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

        self.fused: Fused1x1 | None = None

    def fuse(self) -> None:
        self.fused = Fused1x1([self.branch3x3_1, self.branch7x7x3_1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is None:  # reference path
            b3 = self.branch3x3_2(self.branch3x3_1(x))
            b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
            return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)
        b3, b7 = self.fused(x, relu=True)
        b3 = self.branch3x3_2(b3)
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(b7)))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b (average pool branch, FIDInceptionE_1) and Mixed_7c (max pool branch, FIDInceptionE_2)."""

    def __init__(self, in_channels: int, *, max_pool_branch: bool):
        super().__init__()
        self.max_pool_branch = max_pool_branch
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

        self.fused: Fused1x1 | None = None

    def fuse(self) -> None:
        self.fused = Fused1x1([self.branch1x1, self.branch3x3_1, self.branch3x3dbl_1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is None:  # reference path
            b3 = self.branch3x3_1(x)
            bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            if self.max_pool_branch:  # the 2015-12-05 graph's Mixed_7c pools with max, not average
                pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
            else:
                pooled = _tf_avg_pool(x)
            return torch.cat([
                self.branch1x1(x),
                self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
                self.branch_pool(pooled),
            ], 1)
        b1, b3, bd = self.fused(x, relu=True)
        bd = self.branch3x3dbl_2(bd)
        if self.max_pool_branch:  # a max pool does not commute with the conv: pool first, as the graph does
            pooled = self.branch_pool(F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        else:
            pooled = _pool_then_relu(self.branch_pool, x)
        return torch.cat([
            b1, self.branch3x3_2a(b3), self.branch3x3_2b(b3), self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
            pooled,
        ], 1)


def _global_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


def _spatial_features(branch1x1: torch.Tensor) -> torch.Tensor:
    """sFID's features: the first 7 channels of Mixed_6d's 1×1 branch, flattened in TF's NHWC order."""
    return branch1x1[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(len(branch1x1), -1)


class FIDInceptionV3(nn.Module):
    """The network proper: normalised 299² float input → ``{layer: [B, D]}``. State-dict keys are official."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool_branch=False)
        self.Mixed_7c = InceptionE(2048, max_pool_branch=True)
        self.fc = nn.Linear(2048, 1008)

    def fold_batchnorm(self) -> None:
        for module in self.modules():
            if isinstance(module, BasicConv2d):
                module.fold_batchnorm()

    def prepare_for_inference(self) -> None:
        """Fold every BatchNorm into its conv, then fuse each block's 1×1 convs (see ``Fused1x1``)."""
        self.fold_batchnorm()
        for module in self.modules():
            if hasattr(module, "fuse"):
                module.fuse()

    def forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        wanted = set(layers)

        def done(name: str, value: torch.Tensor) -> bool:
            if name in wanted:
                out[name] = value
                wanted.discard(name)
            return not wanted

        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 64 × 73²
        if done("64", _global_pool(x)):
            return out
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 192 × 35²
        if done("192", _global_pool(x)):
            return out
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c):
            x = block(x)  # → 768 × 17²
        x, branch1x1 = self.Mixed_6d.forward_tapped(x)
        if done("spatial", _spatial_features(branch1x1)):
            return out
        x = self.Mixed_6e(x)
        if done("768", _global_pool(x)):
            return out
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # 2048 × 8²
        pool3 = _global_pool(x)
        if done("pool3", pool3):
            return out
        # IS uses the logits without the bias, as torch-fidelity's "logits_unbiased" (pool3 @ Wᵀ).
        unbiased = pool3 @ self.fc.weight.T
        if done("logits_unbiased", unbiased):
            return out
        done("logits", unbiased + self.fc.bias)
        return out


def preprocess(images: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 ``[B, 1|3, H, W]`` → the float32 ``[B, 3, 299, 299]`` network input of ``mode``."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)  # grayscale → RGB by repetition
    if mode == "tf":
        x = resize_bilinear_tf1(images.float(), (INPUT_SIZE, INPUT_SIZE))
        return (x - 128) / 128  # the graph's Sub(128) then Mul(1/128); the division is exact
    # pytorch-fid: torchvision's ToTensor divides by 255, InceptionV3.forward resizes then scales to [-1, 1]
    x = images.float().div(255)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


class InceptionFeatureExtractor(FeatureExtractor):
    """``inception-v3-fid``: uint8 images → pool3 / logits features of the FID Inception network."""

    def __init__(self, net: FIDInceptionV3, *, mode: str, weights_sha256: str, device: str | torch.device = "cpu"):
        super().__init__()
        if mode not in MODES:
            raise GenevalInputError(f"inception mode {mode!r} is not supported; expected one of {', '.join(MODES)}")
        self.mode = mode
        self.device = torch.device(device)
        net.eval().requires_grad_(False)
        net.prepare_for_inference()
        self.net = net.to(self.device, memory_format=torch.channels_last)
        if self.device.type == "cpu":  # layer outputs of 50–180 MB: reuse freed ones instead of page-faulting
            keep_freed_memory_for_reuse()
        self.info = ExtractorInfo(
            name=NAME, weights_sha256=weights_sha256, mode=mode, layers=dict(LAYERS), default_layers=dict(DEFAULT_LAYERS)
        )

    def features(self, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        check_batch(images, what="inception input")
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown:
            raise GenevalInputError(f"inception layers {unknown} are unknown; expected some of {', '.join(LAYERS)}")
        with torch.inference_mode():
            x = preprocess(images.to(self.device), self.mode).contiguous(memory_format=torch.channels_last)
            out = self.net(x, tuple(layers))
            return {layer: out[layer].float().contiguous() for layer in layers}


@EXTRACTORS.register(NAME)
def build(*, mode: str = "tf", weights: str | None = None, device: str = "cpu", progress: bool = True) -> InceptionFeatureExtractor:
    """The FID Inception extractor with weights from ``weights`` / $GENEVAL_INCEPTION_WEIGHTS / cache / download."""
    from geneval.weights import INCEPTION_FID, load_state_dict_file, resolve_weights

    if mode not in MODES:
        raise GenevalInputError(f"inception mode {mode!r} is not supported; expected one of {', '.join(MODES)}")
    resolved = resolve_weights(INCEPTION_FID, weights, progress=progress)
    net = FIDInceptionV3()
    load_state_dict_file(resolved.path, net, what=INCEPTION_FID.description)
    return InceptionFeatureExtractor(net, mode=mode, weights_sha256=resolved.sha256, device=device)
