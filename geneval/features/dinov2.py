"""DINOv2 ViT-B/14 and ViT-L/14 (Oquab et al. 2023): the features of FD-DINOv2 (Stein et al. 2023, dgm-eval).

dgm-eval's ``DINOv2Encoder`` (``dgm_eval/models/dinov2.py``) loads ``torch.hub`` ``facebookresearch/dinov2``
``dinov2_vitl14`` (or ``vitb14``) and, per image: PIL bicubic resize to 224² (torchvision ``Resize`` on a PIL
image), ``ToTensor``, ImageNet ``Normalize``; the feature is the model's output, the final-LayerNorm CLS token
(``x_norm_clstoken``; the hub model's head is the identity). This module rebuilds that with timm's
architecture (``vit_{base,large}_patch14_dinov2``, the same modules and state-dict keys as the hub's, without
``mask_token``, which inference never reads):

- layer ``cls``: the normalised CLS token, 768 (ViT-B) or 1024 (ViT-L) values;
- the weights' 37×37 position grid (518² training size) is resampled to 16×16 once, at load time, exactly as
  the hub model does on every call (``interpolate_pos_encoding``: bicubic, ``align_corners=False``, no
  antialiasing, and ``scale_factor = (16 + 0.1) / 37``, its "interpolate_offset" — not ``size=16``, which gives
  other numbers).

FD-DINOv2 is FID's Fréchet distance on these features: ``--metrics fid --features dinov2-vit-l14`` (KID and PRDC
read the same layer, as in dgm-eval). Weights: the hub's ``dinov2_vit{b,l}14_pretrain.pth`` or timm's
``vit_*_patch14_dinov2.lvd142m`` state dict, from ``--weights`` / ``$GENEVAL_DINOV2_VIT{B,L}14_WEIGHTS`` / the
cache (``geneval.weights``), or a download from dl.fbaipublicfiles.com checked against the sha256 pinned below.
Needs ``pip install geneval[dinov2]`` (timm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geneval.errors import GenevalInputError
from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor
from geneval.features.pil_resize import resize_bicubic_pil
from geneval.images import check_batch
from geneval.weights import WeightsSpec

INPUT_SIZE = 224
PATCH_SIZE = 14
INTERPOLATE_OFFSET = 0.1  # the hub's interpolate_offset
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_LAYERS = {"fid": "cls", "kid": "cls", "prdc": "cls"}


# sha256 of Meta's files (dl.fbaipublicfiles.com/dinov2/dinov2_vit{b,l}14/...), not published by Meta itself: this
# machine cannot download them, so they are taken from public mirrors of the unchanged files, which agree:
#   ViT-B/14, 346,378,731 bytes: Git LFS oid on huggingface.co/spaces/qubvel-hf/omniglue (models/), CSWRY/VOSR
#     (torch_cache/checkpoints/) and msdkhairi/vit_sam (commit 907fe76);
#   ViT-L/14, 1,217,586,395 bytes (the size of Meta's file as its HEAD reports it): huggingface.co/junjiexv/dinov2_vit
#     (commit 1a7ac70), alexgenovese/reica_clothes, CSWRY/VOSR and Cusyoung/CrossEarth (commit c4beaae).
# A download is checked against them; a local file with another hash is used, logged and recorded as it is.
SHA256 = {
    "b": "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",
    "l": "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
}


def _spec(arch: str, size: str) -> WeightsSpec:
    return WeightsSpec(
        filename=f"dinov2_vit{size}14_pretrain.pth", sha256=SHA256[size],
        url=f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{size}14/dinov2_vit{size}14_pretrain.pth",
        env_path=f"GENEVAL_DINOV2_VIT{size.upper()}14_WEIGHTS", env_url=f"GENEVAL_DINOV2_VIT{size.upper()}14_URL",
        description=f"DINOv2 ViT-{size.upper()}/14 weights ({arch})",
    )


# extractor name -> (timm architecture, feature dimension, weights)
ARCHS = {
    "dinov2-vit-b14": ("vit_base_patch14_dinov2", 768, _spec("vit_base_patch14_dinov2", "b")),
    "dinov2-vit-l14": ("vit_large_patch14_dinov2", 1024, _spec("vit_large_patch14_dinov2", "l")),
}


def vit(name: str) -> nn.Module:
    """The architecture of ``name`` at 224² input (random weights), CLS-token output."""
    import timm

    return timm.create_model(ARCHS[name][0], pretrained=False, num_classes=0, img_size=INPUT_SIZE)


def hub_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """The hub's ``interpolate_pos_encoding`` for a ``grid × grid`` patch grid: ``[1, 1 + M², D]`` →
    ``[1, 1 + grid², D]``."""
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:].float()
    side = int(round(patches.shape[1] ** 0.5))
    if side * side != patches.shape[1]:
        raise ValueError(f"position embedding of {patches.shape[1]} patches is not a square grid")
    if side == grid:
        return pos_embed
    scale = (grid + INTERPOLATE_OFFSET) / side
    patches = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos_embed.dtype)
    return torch.cat([cls, patches], dim=1)


def adapt_state_dict(state: dict) -> dict:
    """A hub or timm DINOv2 state dict for the 224² model: ``mask_token`` dropped, positions resampled."""
    state = {key: value for key, value in state.items() if key != "mask_token"}
    if isinstance(state.get("pos_embed"), torch.Tensor):
        state["pos_embed"] = hub_pos_embed(state["pos_embed"], INPUT_SIZE // PATCH_SIZE)
    return state


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 1|3, H, W]`` → normalised float32 ``[B, 3, 224, 224]``, as ToTensor and Normalize compute it."""
    x = resize_bicubic_pil(images, INPUT_SIZE).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class DINOv2FeatureExtractor(FeatureExtractor):
    """``dinov2-vit-{b,l}14``: uint8 images → the final-LayerNorm CLS token."""

    batch_size = 32

    def __init__(self, model: nn.Module, *, name: str, weights_sha256: str, device: str | torch.device = "cpu"):
        super().__init__()
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.info = ExtractorInfo(name=name, weights_sha256=weights_sha256, mode="dgm-eval",
                                  layers={"cls": ARCHS[name][1]}, default_layers=dict(DEFAULT_LAYERS))

    def features(self, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        check_batch(images, what=f"{self.info.name} input")
        unknown = [layer for layer in layers if layer != "cls"]
        if unknown:
            raise GenevalInputError(f"{self.info.name} layers {unknown} are unknown; expected cls")
        with torch.inference_mode():
            cls = self.model(preprocess(images).to(self.device)).float()
        return {layer: cls for layer in layers}


def _builder(name: str):
    def build(*, weights: str | None = None, device: str = "cpu", progress: bool = True,
              mode: str = "dgm-eval") -> DINOv2FeatureExtractor:
        from geneval.optional import require
        from geneval.weights import load_plain, load_state_dict, resolve_weights

        if mode != "dgm-eval":
            raise GenevalInputError(f"{name} has one preprocessing mode, dgm-eval; got {mode!r}")
        require("timm", what=f"the {name} extractor")
        spec = ARCHS[name][2]
        resolved = resolve_weights(spec, weights, progress=progress)
        state = load_plain(resolved.path, what=spec.description)
        if not isinstance(state, dict):
            raise GenevalInputError(f"{spec.description}: {resolved.path} holds a {type(state).__name__}, "
                                    "expected a state dict")
        model = vit(name)
        load_state_dict(adapt_state_dict(state), model, path=resolved.path, what=spec.description)
        return DINOv2FeatureExtractor(model, name=name, weights_sha256=resolved.sha256, device=device)

    build.__doc__ = f"The {name} extractor; weights from ``weights`` / ${ARCHS[name][2].env_path} / the cache."
    return build


for _name in ARCHS:
    EXTRACTORS.register(_name)(_builder(_name))
