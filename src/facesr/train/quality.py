"""Validation PSNR and SSIM on the Y channel, as SR papers report them (BasicSR/ESRGAN style).

Both images are rounded to 8 bits, converted to ITU-R BT.601 luma on the 0-255 scale
(Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1]), and ``crop`` pixels (the SR
scale) are dropped at every border. SSIM is Wang et al. 2004: 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean over the map. The full
computation is ``facesr.metrics.fullref`` (``color="y"``) on the 8-bit-rounded images.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from facesr.metrics.color import to_channels
from facesr.metrics.fullref import WINDOW, psnr, ssim


def _q8(img: Tensor) -> Tensor:
    """RGB rounded to 8 bits, float64, still in [0, 1]."""
    return (img.detach().double().clamp(0, 1) * 255).round() / 255


def y_channel(img: Tensor) -> Tensor:
    """BT.601 luma of 8-bit-rounded RGB, 0-255 scale, float64.

    Shape: (N, 3, H, W) in [0, 1] -> (N, 1, H, W).
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB, got {tuple(img.shape)}")
    return to_channels(_q8(img), "y")


def psnr_y(pred: Tensor, target: Tensor, crop: int = 4) -> Tensor:
    """Per-image PSNR (dB) on Y. Identical images give inf.

    Shape: (N, 3, H, W) in [0, 1], twice -> (N,).
    """
    return psnr(_q8(pred), _q8(target), color="y", crop_border=crop)


def ssim_y(pred: Tensor, target: Tensor, crop: int = 4) -> Tensor:
    """Per-image SSIM on Y (see module docs); images need 11 px after cropping.

    Shape: (N, 3, H, W) in [0, 1], twice -> (N,).
    """
    size = (pred.shape[-2] - 2 * crop, pred.shape[-1] - 2 * crop)
    if min(size) < WINDOW:
        raise ValueError(f"image {size} after cropping is smaller than the "
                         f"{WINDOW} px SSIM window")
    return ssim(_q8(pred), _q8(target), color="y", crop_border=crop)


def mean_finite(x: Tensor) -> float:
    """Mean over images, ignoring inf (identical images), nan if none is finite."""
    finite = x[torch.isfinite(x)]
    return float(finite.mean()) if finite.numel() else math.nan
