"""DINOv2 extractors against dgm-eval's pipeline, on a random state dict with the official key layout.

The reference is re-implemented here as dgm-eval's ``DINOv2Encoder`` runs it: per image, torchvision
``Resize((224, 224), BICUBIC)`` on a PIL image, ``ToTensor``, ImageNet ``Normalize``; then the hub model's forward
(patch embedding, CLS token, position embeddings resampled by its ``interpolate_pos_encoding`` — bicubic with
``scale_factor = (16 + 0.1) / 37`` — blocks, final norm, CLS token) written out with timm's modules of a 518²
model that loaded the file unchanged; FD as dgm-eval's ``compute_FD_with_reps`` (np.cov, scipy ``sqrtm``).
Skips when timm is not installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

timm = pytest.importorskip("timm", reason="timm (pip install 'geneval[dinov2]') is not installed")

from geneval import score  # noqa: E402
from geneval.errors import GenevalInputError  # noqa: E402
from geneval.features import EXTRACTORS  # noqa: E402
from geneval.metrics import frechet_distance  # noqa: E402
from geneval.weights import file_sha256  # noqa: E402
from vit_weights import randomise_  # noqa: E402

NAME, ARCH = "dinov2-vit-b14", "vit_base_patch14_dinov2"  # ViT-L/14 runs the same code, 3.5× slower
ARCHS_DIM = 768  # ViT-B/14 CLS token
NUM = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The hub's layout: a 518² model's state dict (37×37 positions) plus the unused ``mask_token``."""
    model = randomise_(timm.create_model(ARCH, pretrained=False, num_classes=0, img_size=518), seed=1402)
    state = {**model.state_dict(), "mask_token": torch.zeros(1, 768)}
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vitb14_pretrain.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def images(cifar10_npz):
    with np.load(cifar10_npz) as data:
        return np.ascontiguousarray(data["x_test"][: 2 * NUM].transpose(0, 3, 1, 2))


def dgm_eval_features(path, images: np.ndarray, arch: str = ARCH, **timm_kwargs) -> torch.Tensor:
    import torchvision.transforms as TF

    model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=518, **timm_kwargs).eval()
    state = torch.load(path, weights_only=True)
    state.pop("mask_token")
    model.load_state_dict(state)
    transform = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor(),
                            TF.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([transform(Image.fromarray(image.transpose(1, 2, 0))) for image in images])
    with torch.inference_mode():
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([model.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        n, dim, w0 = model.pos_embed.shape[1] - 1, tokens.shape[-1], 224 // 14
        m = int(math.sqrt(n))
        patch_pos = F.interpolate(model.pos_embed[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2),
                                  scale_factor=((w0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic", antialias=False)
        pos = torch.cat([model.pos_embed[:, :1], patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)
        tokens = tokens + pos
        for block in model.blocks:
            tokens = block(tokens)
        return model.norm(tokens)[:, 0]


def dgm_eval_fd(reps1: np.ndarray, reps2: np.ndarray) -> float:
    mu1, sigma1 = reps1.mean(0), np.cov(reps1, rowvar=False)
    mu2, sigma2 = reps2.mean(0), np.cov(reps2, rowvar=False)
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1.dot(sigma2))  # compute_FD_with_stats (its disp=False is gone in SciPy ≥ 1.18)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def test_registered_and_offline_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path))
    monkeypatch.delenv("GENEVAL_DINOV2_VITL14_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_DINOV2_VITL14_URL", (tmp_path / "absent.pth").as_uri())  # never the network
    assert {"dinov2-vit-b14", "dinov2-vit-l14"} <= set(EXTRACTORS)
    with pytest.raises(GenevalInputError, match="GENEVAL_DINOV2_VITL14_WEIGHTS"):
        EXTRACTORS.get("dinov2-vit-l14")(weights=None)


def test_a_download_is_checked_against_the_pinned_sha256(weights, tmp_path, monkeypatch):
    from geneval.features.dinov2 import ARCHS

    assert ARCHS["dinov2-vit-b14"][2].sha256.startswith("0b8b82f8")
    assert ARCHS["dinov2-vit-l14"][2].sha256.startswith("d5383ea8")
    monkeypatch.setenv("GENEVAL_CACHE", str(tmp_path))
    monkeypatch.delenv("GENEVAL_DINOV2_VITB14_WEIGHTS", raising=False)
    monkeypatch.setenv("GENEVAL_DINOV2_VITB14_URL", weights.as_uri())  # the random file is not Meta's
    with pytest.raises(GenevalInputError, match="expected 0b8b82f85de9"):
        EXTRACTORS.get("dinov2-vit-b14")(weights=None, progress=False)
    assert not list(tmp_path.glob("weights/*"))  # nothing half-written left behind


def test_features_and_fd_match_dgm_eval(weights, images):
    extractor = EXTRACTORS.get(NAME)(weights=str(weights))
    assert extractor.info.weights_sha256 == file_sha256(weights) and extractor.info.layers == {"cls": 768}
    ours = extractor.features(torch.from_numpy(images), ("cls",))["cls"]
    theirs = dgm_eval_features(weights, images)
    rel = float((ours - theirs).norm() / theirs.norm())
    spread = float(theirs.std(0).norm() / theirs.mean(0).norm())
    print(f"DINOv2 features: relative norm diff {rel:.2e} (spread across images {spread:.2f})")
    assert rel <= 1e-5 and spread > 0.05
    gen, ref = images[:NUM], images[NUM:]
    record = score(gen, ref, metrics=("fid",), features=NAME, weights=str(weights), use_cache=False, progress=False)
    reference = dgm_eval_fd(theirs[:NUM].double().numpy(), theirs[NUM:].double().numpy())
    x, y = theirs[:NUM].double().numpy(), theirs[NUM:].double().numpy()
    same_estimator = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    print(f"FD-DINOv2: geneval {record['fid'].value:.10g}, geneval's FD of dgm-eval's features {same_estimator:.10g}, "
          f"dgm-eval's sqrtm {reference:.10g}")
    assert record["fid"].value == pytest.approx(same_estimator, rel=1e-9)
    # With N = 6 ≪ D = 768 both covariances are singular: sqrtm returns √(round-off) for ~760 zero eigenvalues of
    # Σ₁Σ₂, which geneval's FID sets to zero (metrics/fid.py, _numerical_spectrum) — a 2e-6 relative difference
    # here. With N > D, the case FD-DINOv2 is meant for, the two agree to 1e-6: the next test.
    assert record["fid"].value == pytest.approx(reference, rel=1e-5)
    assert record.provenance["extractor"]["layers"] == {"fid": "cls"}


def test_fd_equals_dgm_eval_on_full_rank_covariances():
    """FD as ``geneval score`` computes it for ``--features dinov2-vit-b14`` (float32 CLS features → Gaussian stats
    streamed over batches of the extractor's 32 → ``frechet_distance``) against dgm-eval's ``compute_FD_with_reps``
    (np.cov, scipy sqrtm) on the same features in float64, with N = 1500 > D = 768 per side: both covariances full
    rank (condition number ~6e2). Synthetic features (a random rotation of a 10:1 decaying spectrum; the second set
    scaled and shifted):
    running the ViT on 2000 images would take minutes; the features' path from the network is the test above."""
    from geneval.features.dinov2 import DINOv2FeatureExtractor
    from geneval.stats import GaussianStats

    rng = np.random.default_rng(0)
    dim, num = ARCHS_DIM, 1500
    rotation = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    mixing = np.geomspace(1.0, 0.1, dim)[:, None] * rotation  # population covariance: condition number 100
    reps1 = (rng.normal(size=(num, dim)) @ mixing).astype(np.float32)
    reps2 = (1.1 * rng.normal(size=(num, dim)) @ mixing + 0.05).astype(np.float32)
    stats = []
    for reps in (reps1, reps2):
        streamed = GaussianStats.empty(dim)
        for lo in range(0, num, DINOv2FeatureExtractor.batch_size):
            streamed.update(reps[lo : lo + DINOv2FeatureExtractor.batch_size])
        stats.append(streamed)
    ours = frechet_distance(stats[0].mean, stats[0].cov, stats[1].mean, stats[1].cov)
    reference = dgm_eval_fd(reps1.astype(np.float64), reps2.astype(np.float64))
    print(f"FD, N = {num} > D = {dim}: geneval {ours:.12g}, dgm-eval {reference:.12g}, "
          f"relative {abs(ours - reference) / reference:.1e}")
    assert ours == pytest.approx(reference, rel=1e-6) and reference > 1.0


def test_timm_layout_without_mask_token_loads_too(weights, tmp_path, images):
    state = torch.load(weights, weights_only=True)
    del state["mask_token"]
    torch.save(state, tmp_path / "timm.pth")
    a = EXTRACTORS.get(NAME)(weights=str(weights)).features(torch.from_numpy(images[:2]), ("cls",))["cls"]
    b = EXTRACTORS.get(NAME)(weights=str(tmp_path / "timm.pth")).features(torch.from_numpy(images[:2]), ("cls",))
    assert torch.equal(a, b["cls"])


def test_vit_l14_matches_dgm_eval_on_a_shallow_tower(tmp_path, images, monkeypatch):
    """``dinov2-vit-l14`` (width 1024, 16 heads, the ViT-L/14 hub layout with its 37×37 positions and mask token)
    against the same re-implemented dgm-eval pipeline; for speed the tower has 2 of its 24 blocks (every other path
    is the full model's), as tests/test_cmmd.py does for CLIP."""
    from geneval.features import dinov2

    arch, depth = "vit_large_patch14_dinov2", 2
    model = randomise_(timm.create_model(arch, pretrained=False, num_classes=0, img_size=518, depth=depth), seed=1403)
    path = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save({**model.state_dict(), "mask_token": torch.zeros(1, 1024)}, path)
    monkeypatch.setattr(dinov2, "vit", lambda name: timm.create_model(dinov2.ARCHS[name][0], pretrained=False,
                                                                      num_classes=0, img_size=224, depth=depth))
    extractor = EXTRACTORS.get("dinov2-vit-l14")(weights=str(path))
    assert extractor.info.layers == {"cls": 1024} and extractor.info.weights_sha256 == file_sha256(path)
    ours = extractor.features(torch.from_numpy(images), ("cls",))["cls"]
    theirs = dgm_eval_features(path, images, arch, depth=depth)
    rel = float((ours - theirs).norm() / theirs.norm())
    spread = float(theirs.std(0).norm() / theirs.mean(0).norm())
    print(f"DINOv2 ViT-L/14 (2 blocks) features: relative norm diff {rel:.2e} (spread across images {spread:.2f})")
    assert ours.shape == (2 * NUM, 1024) and rel <= 1e-5 and spread > 0.05
