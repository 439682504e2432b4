"""Kernel operators: centring convention, bicubic equivalence, batched blur."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facesr.degrade.kernels import (
    bicubic_kernel,
    blur_downsample,
    center_of_mass,
    gaussian_kernel,
    kernel_centre,
    normalize_kernel,
    principal_widths,
    rotate_kernel,
)


def _smooth_image(seed: int = 0, size: int = 96) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(1, 3, size, size, generator=g), 5, 1, 2)


def test_bicubic_kernel_reproduces_antialiased_bicubic() -> None:
    x = _smooth_image()
    ours = blur_downsample(x, bicubic_kernel(4, 25), 4)
    ref = F.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True)
    assert ours.shape == ref.shape == (1, 3, 24, 24)
    assert (ours - ref)[..., 3:-3, 3:-3].abs().max() < 1e-5  # borders differ by padding only


@pytest.mark.parametrize("sx, sy, theta", [(1.0, 1.0, 0.0), (3.0, 1.2, 0.7), (0.6, 2.5, -1.0)])
def test_gaussian_kernels_sum_to_one_and_are_centred(sx: float, sy: float, theta: float) -> None:
    k = gaussian_kernel(25, sx, sy, theta)
    assert k.shape == (25, 25)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    assert center_of_mass(k) == pytest.approx((12.5, 12.5), abs=1e-4)
    assert kernel_centre(25) == 12.5


@pytest.mark.parametrize("sx, sy, theta", [(1.0, 2.5, 0.0), (2.5, 1.0, 0.5), (3.0, 1.2, -1.0),
                                            (1.5, 1.5, 0.0)])
def test_principal_widths_are_a_gaussians_sigmas_and_angle(sx: float, sy: float,
                                                           theta: float) -> None:
    major, minor, angle = principal_widths(gaussian_kernel(25, sx, sy, theta))
    assert (major, minor) == pytest.approx((max(sx, sy), min(sx, sy)), abs=1e-3)
    if sx != sy:  # the major axis: theta for sigma_x, theta + 90 deg for sigma_y
        expected = math.degrees(theta + (0 if sx > sy else math.pi / 2)) % 180
        assert angle == pytest.approx(expected, abs=0.1)
    assert math.isnan(principal_widths(torch.zeros(5, 5))[0])


def test_normalize_kernel_recentres_a_shifted_kernel() -> None:
    k = gaussian_kernel(25, 2.0, 1.0, 0.4)
    shifted = torch.roll(k, shifts=(3, -2), dims=(0, 1)) * 5
    n = normalize_kernel(shifted)
    assert float(n.sum()) == pytest.approx(1.0, abs=1e-6)
    assert center_of_mass(n) == pytest.approx((12.5, 12.5), abs=1e-3)
    assert (n - k).abs().max() < 1e-4
    with pytest.raises(ValueError, match="square"):
        normalize_kernel(torch.ones(3, 5))


def test_per_image_kernels_match_one_by_one() -> None:
    x = torch.cat([_smooth_image(1, 64), _smooth_image(2, 64)])
    ks = torch.stack([gaussian_kernel(25, 1.0), gaussian_kernel(25, 3.0, 1.0, math.pi / 4)])
    both = blur_downsample(x, ks, 4)
    for i in range(2):
        assert torch.allclose(both[i], blur_downsample(x[i], ks[i], 4), atol=1e-6)


def test_blur_downsample_checks_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        blur_downsample(torch.rand(3, 30, 32), gaussian_kernel(25, 1.0), 4)
    with pytest.raises(ValueError, match="too small"):
        blur_downsample(torch.rand(3, 8, 8), gaussian_kernel(25, 1.0), 4)


def test_blur_preserves_flat_images() -> None:
    x = torch.full((3, 64, 64), 0.3)
    y = blur_downsample(x, gaussian_kernel(25, 2.0, 1.0, 0.3), 4)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)


@pytest.mark.parametrize("turn", [20.0, -35.0, 90.0])
def test_rotate_kernel_turns_the_major_axis_and_keeps_the_widths(turn: float) -> None:
    k = gaussian_kernel(25, 3.0, 1.0, math.radians(30))
    major, minor, angle = principal_widths(rotate_kernel(k, turn))
    assert (angle - (30 + turn)) % 180 == pytest.approx(0, abs=1.0) or \
        (angle - (30 + turn)) % 180 == pytest.approx(180, abs=1.0)
    assert major == pytest.approx(3.0, abs=0.1) and minor == pytest.approx(1.0, abs=0.1)
    turned = rotate_kernel(k, turn)
    assert float(turned.sum()) == pytest.approx(1.0, abs=1e-5)
    assert center_of_mass(turned) == pytest.approx((kernel_centre(25),) * 2, abs=0.01)
