"""Target augmentation, per-pair seeding and the on-the-fly training Dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facesr.data.dataset import DegradedFaces, collate_pairs
from facesr.degrade.degradation import PRESETS, DegradeConfig, Pools
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pairs import hr_variant, pair_rng, variant_size
from facesr.degrade.pools import KernelPool, NoisePool


def test_hr_variants_are_divisible_by_the_scale() -> None:
    img = torch.rand(3, 203, 150)
    for fac in (1.0, 0.75, 0.5, 0.25):
        v = hr_variant(img, fac)
        assert v.shape[-2] % 4 == 0 and v.shape[-1] % 4 == 0
        assert tuple(v.shape[-2:]) == variant_size(203, 150, fac)
        assert abs(v.shape[-2] - 203 * fac) < 4


def test_pair_rng_depends_on_seed_and_name_only() -> None:
    assert pair_rng(1, "a").random() == pair_rng(1, "a").random()
    assert pair_rng(1, "a").random() != pair_rng(2, "a").random()
    assert pair_rng(1, "a").random() != pair_rng(1, "b").random()


@pytest.fixture()
def faces(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for i, size in enumerate([(200, 200), (140, 180)]):
        img = cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), dtype=np.uint8), (0, 0), 2)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
        files.append(tmp_path / f"f{i}.png")
    return files


def _pools() -> Pools:
    patches = torch.randn(4, 3, 32, 32) * 0.02
    return Pools(KernelPool(gaussian_kernel(25, 2.0, 1.0, 0.3)[None], [{"source": "k"}]),
                 NoisePool(patches - patches.mean((2, 3), keepdim=True),
                           torch.zeros(4, dtype=torch.long), [{"source": "n"}]))


def test_dataset_items_are_deterministic_per_epoch(faces: list[Path]) -> None:
    ds = DegradedFaces(faces, _pools(), PRESETS["paper"], hr_patch=64, seed=3)
    # 200x200 holds 64 px crops at 1, 0.75, 0.5; 140x180 at 1, 0.75, 0.5 (70x90)
    assert len(ds) == 6
    a, b = ds[1], ds[1]
    assert a["lr"].shape == (3, 16, 16) and a["hr"].shape == (3, 64, 64)
    assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["hr"], a["hr"])
    batch = collate_pairs([ds[i] for i in range(4)])
    assert batch["lr"].shape == (4, 3, 16, 16) and len(batch["record"]) == 4


def test_dataset_crops_are_aligned_with_whole_image_degradation(faces: list[Path]) -> None:
    """With bicubic blur and nothing else, the LR crop is the antialiased bicubic downscale."""
    cfg = DegradeConfig(kernel="bicubic", noise="none", jpeg_prob=0.0, quantize=False)
    ds = DegradedFaces(faces[:1], Pools(), cfg, hr_patch=64, factors=(1.0,), augment=False)
    item = ds[0]
    lr_of_hr = F.interpolate(item["hr"][None], scale_factor=0.25, mode="bicubic",
                             antialias=True)[0]
    # interior pixels see only the crop, so they must agree
    assert (item["lr"] - lr_of_hr)[:, 2:-2, 2:-2].abs().max() < 1e-5


def test_dataset_refuses_images_too_small(faces: list[Path]) -> None:
    with pytest.raises(ValueError, match="holds a 512 px crop"):
        DegradedFaces(faces, _pools(), PRESETS["paper"], hr_patch=512)


def test_burst_items_are_fused_frames_with_less_noise(tmp_path: Path) -> None:
    """data.burst: the LR is a fused burst; 8 frames of one camera (same blur, fresh white noise
    each) leave far less noise than one frame, and items stay deterministic."""
    yy, xx = np.mgrid[0:200, 0:200]
    img = np.dstack([60 + 0.6 * xx, 80 + 0.5 * yy, 120 + 0.3 * (xx - yy)]).astype(np.uint8)
    for (cx, cy, r), colour in zip([(60, 70, 25), (130, 90, 35), (100, 150, 20)],
                                   [(250, 240, 230), (20, 30, 40), (200, 60, 60)], strict=True):
        cv2.circle(img, (cx, cy), r, colour, -1)
    faces = [tmp_path / "shapes.png"]
    cv2.imwrite(str(faces[0]), cv2.GaussianBlur(img, (0, 0), 1.5))
    cfg = DegradeConfig(kernel="bicubic", noise="gaussian", noise_sigma=8.0, jpeg_prob=0.0,
                        quantize=False)
    kw = {"hr_patch": 128, "factors": (1.0,), "augment": False}
    one = DegradedFaces(faces[:1], Pools(), cfg, **kw)[0]
    ds = DegradedFaces(faces[:1], Pools(), cfg, burst=(8, 8), burst_shift=3.0, **kw)
    a, b = ds[0], ds[0]
    assert a["lr"].shape == (3, 32, 32) and a["hr"].shape == (3, 128, 128)
    assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], one["hr"])
    assert a["record"]["burst"] == 8 and a["record"]["burst_used"] >= 6
    clean = F.interpolate(a["hr"][None], scale_factor=0.25, mode="bicubic", antialias=True)[0]
    inner = (slice(None), slice(3, -3), slice(3, -3))
    err_one = float((one["lr"] - clean)[inner].std())
    err_fused = float((a["lr"] - clean)[inner].std())
    assert err_one > 6 / 255  # one frame keeps its noise (sigma 8)
    assert err_fused < 0.6 * err_one, (err_fused, err_one)


def test_burst_range_is_checked(faces: list[Path]) -> None:
    from facesr.config import ConfigError
    from facesr.train.config import load_config

    with pytest.raises(ValueError, match="burst"):
        DegradedFaces(faces, _pools(), PRESETS["paper"], hr_patch=64, burst=(4, 2))
    with pytest.raises(ConfigError, match="data.burst"):
        load_config(None, ["data.burst=[4, 2]"])
    assert load_config(None, ["data.burst=[2, 16]"]).data.burst == (2, 16)
