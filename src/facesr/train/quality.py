"""Validation PSNR and SSIM on the Y channel, as SR papers report them (BasicSR/ESRGAN style).

Both images are rounded to 8 bits, converted to ITU-R BT.601 luma on the 0-255 scale
(Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1]), and ``crop`` pixels (the SR
scale) are dropped at every border. SSIM is Wang et al. 2004: 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean over the map. The full
metrics live in ``facesr.metrics``; these are the training loop's quick checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_Y = (65.481, 128.553, 24.966)


def y_channel(img: Tensor) -> Tensor:
    """BT.601 luma of 8-bit-rounded RGB, 0-255 scale, float64.

    Shape: (N, 3, H, W) in [0, 1] -> (N, 1, H, W).
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB, got {tuple(img.shape)}")
    q = (img.detach().double().clamp(0, 1) * 255).round() / 255
    w = q.new_tensor(_Y).view(1, 3, 1, 1)
    return (q * w).sum(1, keepdim=True) + 16.0


def _crop(x: Tensor, crop: int) -> Tensor:
    return x[..., crop:-crop, crop:-crop] if crop else x


def psnr_y(pred: Tensor, target: Tensor, crop: int = 4) -> Tensor:
    """Per-image PSNR (dB) on Y. Identical images give inf.

    Shape: (N, 3, H, W) in [0, 1], twice -> (N,).
    """
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    a, b = _crop(y_channel(pred), crop), _crop(y_channel(target), crop)
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_y(pred: Tensor, target: Tensor, crop: int = 4) -> Tensor:
    """Per-image SSIM on Y (see module docs); images need 11 px after cropping.

    Shape: (N, 3, H, W) in [0, 1], twice -> (N,).
    """
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    a, b = _crop(y_channel(pred), crop), _crop(y_channel(target), crop)
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"image {tuple(a.shape[-2:])} after cropping is smaller than the "
                         "11 px SSIM window")
    w = _gaussian_window().to(a.device)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    var_a = F.conv2d(a * a, w) - mu_a**2
    var_b = F.conv2d(b * b, w) - mu_b**2
    cov = F.conv2d(a * b, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1)
                                                      * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def mean_finite(x: Tensor) -> float:
    """Mean over images, ignoring inf (identical images), nan if none is finite."""
    finite = x[torch.isfinite(x)]
    return float(finite.mean()) if finite.numel() else math.nan
