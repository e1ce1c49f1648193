"""Inference-time rewrites shared by the extractors: BatchNorm folded into the conv before it, and the ReLU
after a conv fused into the convolution call itself. Same function, fewer passes over the activations.

``conv2d(conv, x, relu=...)`` runs, on CPU, oneDNN's convolution with the ReLU as a post-op — the kernel
PyTorch's own compiler emits for conv+relu — and elsewhere the plain conv then ReLU; the two give identical
numbers (the post-op is applied to the same float32 accumulator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_POINTWISE_CONV = getattr(torch.ops.mkldnn, "_convolution_pointwise", None) if torch.backends.mkldnn.is_available() else None


def conv2d(conv: nn.Conv2d, x: torch.Tensor, *, relu: bool) -> torch.Tensor:
    """``conv(x)``, then ReLU if asked, in one oneDNN call on CPU."""
    if _POINTWISE_CONV is not None and x.device.type == "cpu" and x.dtype == torch.float32 and conv.padding_mode == "zeros":
        return _POINTWISE_CONV(x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
                               conv.groups, "relu" if relu else "none", [], "")
    y = conv(x)
    return F.relu_(y) if relu else y


@torch.no_grad()
def fold_batchnorm_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Scale ``conv``'s weights by γ/√(σ²+ε) and set its bias to β − μ·γ/√(σ²+ε) (+ scaled old bias), with
    the factors in float64; ``bn`` must be in inference mode (running statistics)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = bn.bias.double() - bn.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)


class ConvReLU(nn.Module):
    """A conv (BatchNorm already folded in) and the ReLU after it, as one call."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(self.conv, x, relu=True)


@torch.no_grad()
def fuse_for_inference(net: nn.Module) -> nn.Module:
    """In every ``nn.Sequential`` of ``net``: ``Conv2d → BatchNorm2d`` becomes the folded conv, and a
    ``Conv2d`` (folded or not) followed by a ``ReLU`` becomes ``ConvReLU``. Returns ``net`` in eval mode."""
    net.eval()
    for module in list(net.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        fused: list[nn.Module] = []
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, nn.Conv2d):
                j = i + 1
                if j < len(layers) and isinstance(layers[j], nn.BatchNorm2d):
                    fold_batchnorm_into(layer, layers[j])
                    j += 1
                if j < len(layers) and isinstance(layers[j], nn.ReLU):
                    fused.append(ConvReLU(layer))
                    j += 1
                else:
                    fused.append(layer)
                i = j
            else:
                fused.append(layer)
                i += 1
        for name in list(module._modules):
            del module._modules[name]
        for index, layer in enumerate(fused):
            module.add_module(str(index), layer)
    return net
