"""OpenAI CLIP ViT-L/14@336px image embeddings: the features of CMMD (Jayasumana et al. 2024).

The CMMD reference (google-research ``cmmd/``) embeds each image so:

1. ``io_util._read_image``: PIL centre crop to a square, ``resize((336, 336), BICUBIC)`` (uint8), float32;
2. ``/ 255``, then ``embedding._clip_preprocess``: ``jax.image.resize`` to 336² (the identity here: the
   image is already 336² and the cubic kernel is exactly 1 at 0 and 0 at ±1, ±2) and scenic's
   ``normalize_image`` — ``(x − mean) / std`` with CLIP's mean and std as float64 NumPy arrays, so computed in
   float64 and rounded to float32 when JAX takes it;
3. scenic's ``CLIP.encode_image`` with OpenAI's ``ViT-L-14-336px.pt``: the projected CLS token, divided by its
   L2 norm (``normalize=True``).

Here the network is open_clip's vision tower with OpenAI's configuration (``ViT-L-14-336``, QuickGELU), whose
state-dict keys are OpenAI's (``visual.*``). Layer ``embedding``: 768 values of unit norm.

Weights: OpenAI's file is a TorchScript archive whose sha256 is in its URL (OpenAI's ``clip.py`` and scenic
check it); geneval opens a TorchScript archive only when its sha256 is that one. Any other file must be a plain
state dict (``torch.load(weights_only=True)``) with open_clip's keys; its ``visual.*`` entries are loaded.
Needs ``pip install geneval[clip]`` (open_clip_torch).
"""

from __future__ import annotations

import zipfile

import torch
from torch import nn

from geneval.errors import GenevalInputError
from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor
from geneval.features.pil_resize import resize_bicubic_pil
from geneval.images import check_batch
from geneval.weights import WeightsSpec

NAME = "clip-vit-l14-336"
MODEL_CONFIG = "ViT-L-14-336"
INPUT_SIZE = 336
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_LAYERS = {"cmmd": "embedding"}
OPENAI_SHA256 = "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"
WEIGHTS = WeightsSpec(
    filename="ViT-L-14-336px.pt", sha256=OPENAI_SHA256,
    url=f"https://openaipublic.azureedge.net/clip/models/{OPENAI_SHA256}/ViT-L-14-336px.pt",
    env_path="GENEVAL_CLIP_WEIGHTS", env_url="GENEVAL_CLIP_URL",
    description="CLIP ViT-L/14@336px weights (OpenAI's ViT-L-14-336px.pt)",
)


def visual_tower(*, layers: int | None = None) -> nn.Module:
    """open_clip's ViT-L/14@336 image tower with OpenAI's settings (random weights); ``layers`` overrides the
    depth (tests use a shallow tower of the same shapes)."""
    import open_clip
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    config = open_clip.get_model_config(MODEL_CONFIG)
    vision = dict(config["vision_cfg"], **({"layers": layers} if layers is not None else {}))
    return _build_vision_tower(config["embed_dim"], CLIPVisionCfg(**vision), quick_gelu=True)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 1|3, H, W]`` → float32 ``[B, 3, 336, 336]``, as the CMMD reference computes it (see above)."""
    x = resize_bicubic_pil(images, INPUT_SIZE, center_crop=True).float().div(255)  # float32 / 255.0 in NumPy
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return ((x.double() - mean) / std).float()


def visual_state_dict(state: dict) -> dict:
    """The ``visual.*`` entries of an OpenAI / open_clip state dict, without the prefix."""
    visual = {key[len("visual."):]: value for key, value in state.items() if key.startswith("visual.")}
    return visual or state  # already a tower's own state dict


def _read_weights(path, sha256: str, what: str) -> dict:
    from geneval.weights import load_plain

    if zipfile.is_zipfile(path) and any(n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist()):
        if sha256 != OPENAI_SHA256:
            raise GenevalInputError(
                f"{what}: {path} is a TorchScript archive but not OpenAI's (sha256 {sha256[:12]}, expected "
                f"{OPENAI_SHA256[:12]}); geneval runs TorchScript only from that file — save a state dict instead")
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())  # as OpenAI's clip.py and scenic
    state = load_plain(path, what=what)
    if not isinstance(state, dict):
        raise GenevalInputError(f"{what}: {path} holds a {type(state).__name__}, expected a state dict")
    return state


class CLIPFeatureExtractor(FeatureExtractor):
    """``clip-vit-l14-336``: uint8 images → L2-normalised CLIP image embeddings."""

    batch_size = 16

    def __init__(self, tower: nn.Module, *, weights_sha256: str, device: str | torch.device = "cpu"):
        super().__init__()
        self.device = torch.device(device)
        self.tower = tower.eval().requires_grad_(False).to(self.device)
        self.info = ExtractorInfo(name=NAME, weights_sha256=weights_sha256, mode="cmmd",
                                  layers={"embedding": tower.output_dim}, default_layers=dict(DEFAULT_LAYERS))

    def features(self, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        check_batch(images, what=f"{NAME} input")
        unknown = [layer for layer in layers if layer != "embedding"]
        if unknown:
            raise GenevalInputError(f"{NAME} layers {unknown} are unknown; expected embedding")
        with torch.inference_mode():
            embedding = self.tower(preprocess(images).to(self.device)).float()
            embedding = embedding / embedding.norm(dim=-1, keepdim=True)
        return {layer: embedding for layer in layers}


@EXTRACTORS.register(NAME)
def build(*, weights: str | None = None, device: str = "cpu", progress: bool = True, mode: str = "cmmd",
          layers: int | None = None) -> CLIPFeatureExtractor:
    """The CMMD CLIP extractor; weights from ``weights`` / $GENEVAL_CLIP_WEIGHTS / the cache / OpenAI's URL."""
    from geneval.optional import require
    from geneval.weights import load_state_dict, resolve_weights

    if mode != "cmmd":
        raise GenevalInputError(f"{NAME} has one preprocessing mode, cmmd; got {mode!r}")
    require("open_clip", what=f"the {NAME} extractor")
    resolved = resolve_weights(WEIGHTS, weights, progress=progress)
    state = visual_state_dict(_read_weights(resolved.path, resolved.sha256, WEIGHTS.description))
    tower = visual_tower(layers=layers)
    load_state_dict(state, tower, path=resolved.path, what=WEIGHTS.description)
    return CLIPFeatureExtractor(tower, weights_sha256=resolved.sha256, device=device)
