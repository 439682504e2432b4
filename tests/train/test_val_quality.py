"""The loop's validation PSNR/SSIM on Y agree with scikit-image on the same Y images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facesr.train.quality import mean_finite, psnr_y, ssim_y, y_channel


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hr = torch.nn.functional.interpolate(torch.rand(2, 3, 12, 12, generator=g), size=48,
                                         mode="bicubic").clamp(0, 1)
    return (hr + 0.05 * torch.randn(hr.shape, generator=g)).clamp(0, 1), hr


def test_psnr_and_ssim_match_scikit_image() -> None:
    sr, hr = _pair()
    ys, yh = (y_channel(t)[:, 0, 4:-4, 4:-4].numpy() for t in (sr, hr))
    for i in range(2):
        want_psnr = peak_signal_noise_ratio(yh[i], ys[i], data_range=255)
        want_ssim = structural_similarity(yh[i], ys[i], data_range=255, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False)
        assert psnr_y(sr, hr)[i].item() == pytest.approx(want_psnr, abs=1e-6)
        assert ssim_y(sr, hr)[i].item() == pytest.approx(want_ssim, abs=1e-6)


def test_identical_images() -> None:
    _, hr = _pair()
    assert torch.isinf(psnr_y(hr, hr)).all()
    assert ssim_y(hr, hr).numpy() == pytest.approx(np.ones(2))
    assert mean_finite(torch.tensor([math.inf, 30.0, 40.0])) == 35.0
    assert math.isnan(mean_finite(torch.tensor([math.inf])))
    with pytest.raises(ValueError, match="smaller than the 11 px SSIM window"):
        ssim_y(hr[..., :16, :16], hr[..., :16, :16], crop=4)
