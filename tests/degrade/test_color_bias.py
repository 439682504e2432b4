"""The degradation keeps the mean colour: a model learns E[HR | LR], so a stage that shifted
the LR's per-channel mean would teach it to shift colour. Over 300 clean faces (seeded), the
LR's per-channel mean must equal the HR's within 0.3 level (8-bit), stage by stage and for the
whole training pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facesr.data.dataset import DegradedFaces
from facesr.degrade.degradation import DegradeConfig, Pools, mirror_tile
from facesr.degrade.jpeg import jpeg_roundtrip
from facesr.degrade.kernels import bicubic_kernel, blur_downsample, gaussian_kernel
from facesr.degrade.pairs import bicubic_resize
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.io import read_image

N_FACES = 300
TOL = 0.3  # 8-bit levels, per channel, mean over faces


@pytest.fixture(scope="module")
def faces(shared):
    files = sorted((shared / "data" / "faces_hq" / "utkface").glob("*.jpg"))
    if len(files) < N_FACES:
        pytest.skip(f"needs {N_FACES} UTKFace faces in {shared}")
    pick = np.random.default_rng(7).choice(len(files), N_FACES, replace=False)
    return [read_image(files[i])[:, :196, :196] for i in sorted(pick)]


def _shift(pairs) -> np.ndarray:
    """Mean over images of mean(after) - mean(before), per channel, in 8-bit levels."""
    d = torch.stack([a.double().mean((1, 2)) - b.double().mean((1, 2)) for a, b in pairs])
    return (d.mean(0) * 255).numpy()


def _assert_mean_kept(shift: np.ndarray, stage: str) -> None:
    assert np.all(np.abs(shift) <= TOL), f"{stage} shifts R/G/B by {np.round(shift, 3)} levels"


def _zero_mean_pool(g: torch.Generator) -> NoisePool:
    """40 zero-mean 32 px noise patches of std 7 levels (like the footage pool's)."""
    patches = torch.randn(40, 3, 32, 32, generator=g) * 7 / 255
    return NoisePool(patches - patches.mean((-1, -2), keepdim=True),
                     torch.zeros(40, dtype=torch.long))


def _lr(faces):
    k = gaussian_kernel(25, 2.0, 1.2, math.pi / 5)
    return [blur_downsample(hr, k, 4) for hr in faces]


def test_blur_and_subsampling_keep_the_mean(faces):
    for k in (gaussian_kernel(25, 0.8), gaussian_kernel(25, 3.0, 1.5, 1.0), bicubic_kernel(4)):
        _assert_mean_kept(_shift((blur_downsample(hr, k, 4), hr) for hr in faces), "blur")


def test_noise_and_clamp_keep_the_mean(faces):
    g = torch.Generator().manual_seed(0)
    lrs = _lr(faces)
    white = [((x + torch.randn(x.shape, generator=g) * 8 / 255).clamp(0, 1), x) for x in lrs]
    _assert_mean_kept(_shift(white), "Gaussian noise sigma 8 + clamp")
    pool = _zero_mean_pool(g)
    tiled = [((x + mirror_tile(pool.patches[i % 40], i % 4, tuple(x.shape[-2:]))).clamp(0, 1), x)
             for i, x in enumerate(lrs)]
    _assert_mean_kept(_shift(tiled), "pool noise + clamp")


def test_jpeg_keeps_the_mean(faces):
    # q30 moves B by about +0.23 level (chroma DC quantisation; the same without any clipping,
    # gone at q90): inside the tolerance, and the model sees it in training as in the camera
    lrs = _lr(faces)
    _assert_mean_kept(_shift((jpeg_roundtrip(x, 30), x) for x in lrs), "JPEG 30")


def test_target_augmentation_keeps_the_mean(faces):
    for f in (0.75, 0.5):
        pairs = ((bicubic_resize(hr, (round(196 * f), round(196 * f))), hr) for hr in faces)
        _assert_mean_kept(_shift(pairs), f"HR resize x{f}")


def test_training_pairs_keep_the_mean(faces, shared, tmp_path):
    """The whole training pipeline (crops, flips, pool or Gaussian blur, pool or white noise,
    JPEG with probability 0.9, target sizes) as ``facesr train`` draws it."""
    g = torch.Generator().manual_seed(1)
    kernels = KernelPool(torch.stack([gaussian_kernel(25, s) for s in (1.0, 2.0, 3.0)]),
                         [{"source": f"sigma {s}"} for s in (1.0, 2.0, 3.0)], 4, {})
    noise = _zero_mean_pool(g)
    cfg = DegradeConfig(gaussian_prob=0.5, gaussian_noise_prob=0.5)
    files = sorted((shared / "data" / "faces_hq" / "utkface").glob("*.jpg"))[:N_FACES]
    ds = DegradedFaces(files, Pools(kernels, noise), cfg, hr_patch=96, factors=(1.0, 0.75),
                       seed=0)
    items = [ds[i] for i in range(0, len(ds), 2)]
    _assert_mean_kept(_shift((it["lr"], it["hr"]) for it in items), "training pairs")
