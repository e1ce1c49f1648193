"""CMMD and the CLIP ViT-L/14@336 extractor against the google-research ``cmmd/`` pipeline.

Weights: a random state dict with open_clip's (= OpenAI's) keys for the image tower, ``visual.*``. For speed the
tower has 2 of its 24 blocks (same width, patch size, 336² input and embedding size — every other code path is
the full one). The reference is re-implemented here as the CMMD repository runs it: per image, PIL centre crop
and ``resize((336, 336), BICUBIC)``, float32, ``/ 255.0``, ``(x − IMAGE_MEAN) / IMAGE_STD`` with scenic's float64
NumPy constants, the model's image embedding divided by its norm; the distance is ``distance.mmd`` transcribed
from JAX to NumPy. Skips when open_clip is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip", reason="open_clip_torch (pip install 'geneval[clip]') is not installed")

from geneval import score  # noqa: E402
from geneval.errors import GenevalInputError  # noqa: E402
from geneval.features import EXTRACTORS, clip  # noqa: E402
from geneval.metrics import METRICS, cmmd  # noqa: E402
from vit_weights import randomise_  # noqa: E402

LAYERS = 2
NUM = 4
IMAGE_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])  # scenic's clip/model.py
IMAGE_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def reference_model():
    config = open_clip.get_model_config("ViT-L-14-336")
    return open_clip.create_model("ViT-L-14-336", pretrained=None, force_quick_gelu=True,
                                  vision_cfg={**config["vision_cfg"], "layers": LAYERS},
                                  text_cfg={**config["text_cfg"], "layers": 1}).eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = randomise_(reference_model(), seed=336)
    state = {k: v for k, v in model.state_dict().items() if k.startswith("visual.")}
    path = tmp_path_factory.mktemp("clip") / "clip-visual.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def images(cifar10_npz):
    """32×28 crops: not square, so the centre crop is exercised."""
    with np.load(cifar10_npz) as data:
        return np.ascontiguousarray(data["x_test"][: 2 * NUM, :, 2:30].transpose(0, 3, 1, 2))


def cmmd_repo_embeddings(path, images: np.ndarray) -> np.ndarray:
    model = reference_model()
    missing, unexpected = model.load_state_dict(torch.load(path, weights_only=True), strict=False)
    assert not unexpected and all(not key.startswith("visual.") for key in missing)
    batch = []
    for image in images.transpose(0, 2, 3, 1):  # io_util._read_image, _center_crop_and_resize
        im = Image.fromarray(image)
        w, h = im.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((336, 336), resample=Image.BICUBIC)
        batch.append(np.asarray(im).astype(np.float32))
    x = np.stack(batch) / 255.0  # compute_embeddings_for_dir
    x = ((x - IMAGE_MEAN) / IMAGE_STD).astype(np.float32)  # clip.normalize_image, then JAX's float32
    with torch.inference_mode():
        embs = model.encode_image(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    return embs / np.linalg.norm(embs, axis=-1, keepdims=True)  # CLIP.encode_image(normalize=True)


def distance_mmd(x, y, dtype=np.float64):
    """cmmd/distance.py ``mmd``, jnp → np."""
    x, y = np.asarray(x, dtype), np.asarray(y, dtype)
    x_sqnorms, y_sqnorms = np.diag(np.matmul(x, x.T)), np.diag(np.matmul(y, y.T))
    gamma = 1 / (2 * 10**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * np.matmul(x, x.T) + x_sqnorms[:, None] + x_sqnorms[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * np.matmul(x, y.T) + x_sqnorms[:, None] + y_sqnorms[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * np.matmul(y, y.T) + y_sqnorms[:, None] + y_sqnorms[None, :])))
    return 1000 * (k_xx + k_yy - 2 * k_xy)


def test_cmmd_is_the_reference_estimator_on_features():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 8)), rng.normal(0.3, 1.2, size=(70, 8))  # unequal sizes, as the code allows
    assert cmmd(x, y) == pytest.approx(distance_mmd(x, y), rel=1e-12)
    assert cmmd(x, x) == pytest.approx(0.0, abs=1e-9)
    spec = METRICS.get("cmmd")
    assert spec.role == "cmmd" and not spec.higher_is_better and spec.reference_needs_features


def test_blocks_bound_the_temporaries_and_change_nothing(monkeypatch):
    """Blocks of BLOCK_ELEMENTS // N rows (here 7 to 9 rows, then 1 row, against 70 and 50): the reference
    estimator to 1e-12; at N = 50,000 a [rows, N] temporary holds 2**23 values (64 MiB), not 2048 × 50,000 (0.8 GB)."""
    import sys

    module = sys.modules["geneval.metrics.cmmd"]  # the name geneval.metrics.cmmd is the function
    assert module.BLOCK_ELEMENTS // 50_000 == 167 and module.BLOCK_ELEMENTS * 8 == 64 * 2**20
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 8)), rng.normal(0.3, 1.2, size=(70, 8))
    expected = distance_mmd(x, y)
    for elements in (7 * 70, 1):
        monkeypatch.setattr(module, "BLOCK_ELEMENTS", elements)
        assert cmmd(x, y) == pytest.approx(expected, rel=1e-12)


def test_features_and_cmmd_match_the_cmmd_repository(weights, images, monkeypatch, tmp_path):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path))
    shallow = clip.visual_tower
    monkeypatch.setattr(clip, "visual_tower", lambda layers=None: shallow(layers=LAYERS))
    extractor = EXTRACTORS.get(clip.NAME)(weights=str(weights), layers=LAYERS)
    ours = extractor.features(torch.from_numpy(images), ("embedding",))["embedding"].numpy()
    theirs = cmmd_repo_embeddings(weights, images)
    rel = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    spread = float(np.linalg.norm(theirs.std(0)))
    print(f"CLIP embeddings: relative norm diff {rel:.2e} (spread across images {spread:.2f})")
    assert ours.shape == (2 * NUM, 768) and rel <= 1e-5 and spread > 0.05

    gen, ref = images[:NUM], images[NUM:]
    record = score(gen, ref, metrics=("cmmd",), features=clip.NAME, weights=str(weights), use_cache=False,
                   progress=False)
    value = record["cmmd"].value
    reference = distance_mmd(theirs[NUM:], theirs[:NUM])  # main.py: mmd(ref_embs, eval_embs)
    print(f"CMMD: geneval {value:.10g}, cmmd repo (float64) {reference:.10g}, "
          f"(float32 as JAX) {distance_mmd(theirs[NUM:], theirs[:NUM], np.float32):.10g}")
    assert value == pytest.approx(reference, rel=1e-6)
    assert value == pytest.approx(cmmd(ours[:NUM], ours[NUM:]), rel=1e-12)


def test_torchscript_is_run_only_from_openais_file(weights, tmp_path, monkeypatch, images):
    class Holder(torch.nn.Module):
        def __init__(self, tower):
            super().__init__()
            self.visual = tower

        def forward(self, x):
            return self.visual(x)

    tower = clip.visual_tower(layers=LAYERS)
    tower.load_state_dict(clip.visual_state_dict(torch.load(weights, weights_only=True)))
    archive = tmp_path / "ViT-L-14-336px.pt"
    torch.jit.trace(Holder(tower).eval(), torch.zeros(1, 3, 336, 336), check_trace=False).save(str(archive))
    with pytest.raises(GenevalInputError, match="TorchScript"):
        EXTRACTORS.get(clip.NAME)(weights=str(archive), layers=LAYERS)
    from geneval.weights import file_sha256

    monkeypatch.setattr(clip, "OPENAI_SHA256", file_sha256(archive))  # as if it were OpenAI's
    from_archive = EXTRACTORS.get(clip.NAME)(weights=str(archive), layers=LAYERS)
    from_state = EXTRACTORS.get(clip.NAME)(weights=str(weights), layers=LAYERS)
    batch = torch.from_numpy(images[:2])
    assert torch.equal(from_archive.features(batch, ("embedding",))["embedding"],
                       from_state.features(batch, ("embedding",))["embedding"])


def test_offline_download_error_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path))
    monkeypatch.delenv("GENEVAL_CLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_CLIP_URL", (tmp_path / "absent.pt").as_uri())
    with pytest.raises(GenevalInputError, match="GENEVAL_CLIP_WEIGHTS"):
        EXTRACTORS.get(clip.NAME)(weights=None)


def test_a_download_is_checked_against_openais_sha256(weights, tmp_path, monkeypatch):
    """A file fetched from the URL (here the random tower, which is not OpenAI's file) is refused for its sha256
    and nothing is left in the cache."""
    assert clip.WEIGHTS.sha256 == clip.OPENAI_SHA256 and clip.OPENAI_SHA256 in clip.WEIGHTS.url
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENEVAL_CLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_CLIP_URL", weights.as_uri())
    with pytest.raises(GenevalInputError, match=f"expected {clip.OPENAI_SHA256[:12]}"):
        EXTRACTORS.get(clip.NAME)(weights=None, progress=False)
    assert not list((tmp_path / "cache").glob("weights/*"))
