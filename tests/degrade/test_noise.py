"""Noise pool extraction (equations 4-6) on synthetic images with known noise."""

from __future__ import annotations

import numpy as np
import pytest

from facesr.degrade.noise import extract_noise_patches, smooth_patch_mask


def _checker(h: int, w: int, c: int = 1) -> np.ndarray:
    """+-1 checkerboard: every 8x8 window has the same mean and variance (stationary 'noise')."""
    return np.broadcast_to(((np.indices((h, w)).sum(0) % 2) * 2 - 1)[..., None], (h, w, c))


def _scene(sigma: float = 6.0, seed: int = 0, checker: bool = False) -> np.ndarray:
    """Left third flat grey + noise; middle third strong texture; right third saturated."""
    rng = np.random.default_rng(seed)
    h, w = 128, 384
    img = np.empty((h, w, 3))
    noise = sigma * _checker(h, 128, 3) if checker else rng.normal(0, sigma, (h, 128, 3))
    img[:, :128] = 110 + noise
    yy, xx = np.mgrid[0:h, 0:128]
    img[:, 128:256] = (120 + 90 * np.sin(xx / 3.0) * np.cos(yy / 5.0))[..., None]
    img[:, 256:] = 255.0
    return np.clip(img, 0, 255) / 255.0


@pytest.mark.parametrize("stats", ["luma", "rgb"])
def test_patches_come_from_the_flat_noisy_region_only(stats: str) -> None:
    # i.i.d. noise passes eq. 5 in every channel too rarely for a small test: use a checkerboard
    patches, corners = extract_noise_patches(_scene(checker=stats == "rgb"), stride=8, stats=stats)
    assert len(patches) > 5
    assert patches.shape[1:] == (3, 32, 32)
    assert (corners[:, 1] + 32 <= 128).all()  # never textured or saturated


def test_noise_patches_are_zero_mean_with_the_injected_std() -> None:
    for sigma in (3.0, 8.0):
        patches, _ = extract_noise_patches(_scene(sigma, seed=1), stride=8)
        assert len(patches) > 5
        means = patches.mean(dim=(2, 3))
        assert means.abs().max() < 1e-6
        std = float(patches.std()) * 255
        assert std == pytest.approx(sigma, rel=0.1)


def test_saturated_and_flat_noiseless_regions_are_rejected() -> None:
    flat = np.full((96, 96, 1), 255.0)
    assert len(smooth_patch_mask(flat)[0]) == 0  # phi: variance 0 < 0.5
    clean = np.full((96, 96, 1), 100.0)
    assert len(smooth_patch_mask(clean)[0]) == 0


def test_each_criterion_rejects() -> None:
    base = 100 + 4.0 * _checker(64, 64)
    assert len(smooth_patch_mask(base, stride=32)[0]) == 4  # all four windows pass
    step = base.copy()
    step[:8, :8] += 40  # one sub-window's mean is 40% off: eq. 4 fails (eq. 5 switched off)
    assert len(smooth_patch_mask(step, stride=32, gamma=1e9)[0]) == 3
    loud = base.copy()
    loud[:8, :8] = 100 + 12.0 * _checker(8, 8)  # one sub-window far noisier: eq. 5 fails
    assert len(smooth_patch_mask(loud, stride=32, mu=1e9)[0]) == 3
    dim = 100 + 0.5 * _checker(64, 64)  # variance 0.25 < phi = 0.5: eq. 6 fails
    assert len(smooth_patch_mask(dim, stride=32)[0]) == 0


def test_bad_window_geometry() -> None:
    with pytest.raises(ValueError, match="tile"):
        smooth_patch_mask(np.zeros((64, 64, 1)), patch=32, sub=8, sub_stride=5)
