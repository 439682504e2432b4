"""PSNR / SSIM / MS-SSIM: properties, and the published reference values.

Reference rows (../shared/calibration/calibration_summary.csv, the IQA-PyTorch calibration
set, 5 TID2013 pairs): ``psnr`` is scikit-image's RGB PSNR printed with 2 decimals; ``ssim``
is the authors' ``ssim.m`` on MATLAB ``rgb2gray`` images, printed with 4 decimals;
``ms_ssim`` is the authors' ``msssim.m`` on ``rgb2gray`` images with its ``'wtd_sum'`` pooling
(see facesr.metrics.fullref: the product pooling differs by up to 0.0044 on I03 and I19).
"""

from __future__ import annotations

import math

import pytest
import torch

from facesr.metrics import ms_ssim, psnr, ssim

COLORS = ("y", "gray", "rgb")


def smooth(h: int = 48, w: int = 40) -> torch.Tensor:
    """A (1, 3, h, w) colour gradient image in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, (xx + yy) / 2])[None] * 0.8 + 0.1


def noisy(img: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (img + sigma * torch.randn(img.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("color", COLORS)
def test_identical_images(color: str) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert torch.all(torch.isinf(psnr(x, x, color=color)))  # documented: not capped
    torch.testing.assert_close(ssim(x, x, color=color), torch.ones(2, dtype=torch.float64))
    big = torch.rand(1, 3, 176, 176, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ms_ssim(big, big, color=color),
                               torch.ones(1, dtype=torch.float64))


# MS-SSIM needs 176 px; its colour handling is shared with SSIM, so one colour is enough
CASES = [(m, c) for m in (psnr, ssim) for c in COLORS] + [(ms_ssim, "gray")]


@pytest.mark.parametrize(("metric", "color"), CASES)
def test_symmetric_and_batched(metric, color: str) -> None:
    x = smooth(176, 180) if metric is ms_ssim else smooth()
    y = noisy(x, 0.1)
    xy = metric(x, y, color=color)
    torch.testing.assert_close(xy, metric(y, x, color=color))
    both = metric(torch.cat([x, y]), torch.cat([y, y]), color=color)
    torch.testing.assert_close(both[:1], xy)


@pytest.mark.parametrize(("metric", "color"), CASES)
def test_monotone_under_added_noise(metric, color: str) -> None:
    x = smooth(176, 176) if metric is ms_ssim else smooth()
    values = [metric(noisy(x, s), x, color=color).item() for s in (0.01, 0.03, 0.1, 0.3)]
    assert values == sorted(values, reverse=True)


def test_psnr_formula_and_crop() -> None:
    x = torch.full((1, 3, 20, 20), 0.5)
    y = x.clone()
    y[..., :2, :] += 10 / 255  # the top 2 rows (10 % of pixels) are off by 10 grey levels
    expected = 10 * math.log10(255**2 / 10)
    assert psnr(y, x, color="rgb").item() == pytest.approx(expected, abs=1e-5)
    assert torch.isinf(psnr(y, x, color="rgb", crop_border=2)).all()
    assert psnr(y, x, color="rgb", crop_border=1).item() < math.inf


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="11 px minimum"):
        ssim(torch.rand(1, 3, 10, 16), torch.rand(1, 3, 10, 16))
    with pytest.raises(ValueError, match="176 px minimum"):
        ms_ssim(torch.rand(1, 3, 175, 200), torch.rand(1, 3, 175, 200))
    with pytest.raises(ValueError, match="RGB batch"):
        psnr(torch.rand(3, 16, 16), torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="color must be"):
        psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), color="lab")


def test_psnr_matches_scikit_image_rgb(pairs, reference) -> None:
    # the reference is printed with 2 decimals: 0.005 is its rounding, nothing more
    got = psnr(*pairs, color="rgb").tolist()
    assert got == pytest.approx(reference("psnr"), abs=0.005)


def test_ssim_matches_matlab_ssim_m_on_rgb2gray(pairs, reference) -> None:
    # 4 printed decimals (rounding 5e-5); measured max difference 4.7e-5
    got = ssim(*pairs, color="gray").tolist()
    assert got == pytest.approx(reference("ssim"), abs=1e-4)


def test_ms_ssim_matches_matlab_msssim_m_wtd_sum_on_rgb2gray(pairs, reference) -> None:
    # 4 printed decimals (rounding 5e-5); measured max difference 3.5e-5
    got = ms_ssim(*pairs, color="gray", pooling="sum").tolist()
    assert got == pytest.approx(reference("ms_ssim"), abs=5e-5)


def test_ms_ssim_poolings_share_their_scale_terms(pairs, reference) -> None:
    dist, ref = pairs
    prod = ms_ssim(dist, ref, color="gray")
    total = ms_ssim(dist, ref, color="gray", pooling="sum")
    # a weighted geometric mean never exceeds the weighted arithmetic mean of the same terms
    assert torch.all(prod <= total + 1e-12)
    # the product is what IQA-PyTorch's product port reports (its Y channel and per-pixel
    # clipping differ a little from ours): measured max difference 7e-4
    assert prod.tolist() == pytest.approx(reference("ms_ssim(ours)"), abs=1e-3)
    x = smooth(176, 176)
    torch.testing.assert_close(ms_ssim(x, x, pooling="sum"), torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="pooling must be"):
        ms_ssim(x, x, pooling="mean")
