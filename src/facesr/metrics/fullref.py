"""PSNR, SSIM and MS-SSIM (full-reference, pure torch, float64, any device).

All take a prediction and a reference batch in the package's contract (RGB, (N, 3, H, W),
[0, 1]), a colour space (``color``: ``"y"`` default, ``"gray"``, ``"rgb"``; see
:mod:`facesr.metrics.color`) and a border crop (``crop_border`` pixels removed from each side
first, default 0; SR benchmarks usually crop ``scale`` pixels). Peak value 255.

Sources:
    PSNR: 10 log10(255^2 / MSE), MSE over all pixels and channels (scikit-image's
        ``peak_signal_noise_ratio`` with ``data_range=255``, which made the reference row).
    SSIM: Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility
        to structural similarity", IEEE TIP 2004, as the authors' ``ssim.m``: 11x11 Gaussian
        window (sigma 1.5), K = (0.01, 0.03), L = 255, 'valid' filtering, mean of the map; the
        automatic downsampling of images over 256 px is *not* done (as in the reference row).
    MS-SSIM: Wang, Simoncelli, Bovik, "Multi-scale structural similarity for image quality
        assessment", Asilomar 2003, as the authors' ``msssim.m``: 5 scales, weights
        (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), the SSIM window above ('valid' filtering),
        2x2 mean filter with symmetric padding and decimation between scales (no rounding),
        contrast-structure means of scales 1-4 and the SSIM mean of scale 5 pooled by
        ``pooling="product"`` (the paper's Eq. 7, ``msssim.m``'s default; the default here) or
        ``"sum"`` (``msssim.m``'s ``'wtd_sum'``: weights normalised to sum 1, terms added).
        A negative contrast-structure mean is clipped to 0 (MATLAB would return a complex
        number there); per-pixel values are not clipped.

Calibration (tests/metrics/test_fullref.py): PSNR (``color="rgb"``) and SSIM (``color="gray"``)
match the reference rows within their printed precision. The ``ms_ssim`` row was made with
``msssim.m``'s ``'wtd_sum'`` pooling on ``rgb2gray`` images: ``ms_ssim(.., color="gray",
pooling="sum")`` matches it within 3.5e-5 (0.67331, 0.99963, 0.99982, 0.95657, 0.84618 vs
0.6733, 0.9996, 0.9998, 0.9566, 0.8462). The product (our default) differs from it by up to
0.0044 on I03 and I19 (0.6700, 0.8418), as IQA-PyTorch's product port does (0.6707, 0.8418):
that gap is the pooling, not the scales. No colour conversion, downsampling, 8-bit rounding
between scales or clipping variant closes it; the weighted sum closes it on all five images.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from facesr.metrics.color import Color, check_images, crop, to_channels

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11


def _prepare(pred: Tensor, ref: Tensor, color: Color, crop_border: int,
             min_side: int = 1) -> tuple[Tensor, Tensor]:
    check_images(pred, ref)
    a, b = crop(to_channels(pred, color), crop_border), crop(to_channels(ref, color), crop_border)
    if min(a.shape[-2:]) < min_side:
        raise ValueError(f"image {a.shape[-1]}x{a.shape[-2]} px (after cropping) is smaller "
                         f"than the {min_side} px minimum of this metric")
    return a, b


def psnr(pred: Tensor, ref: Tensor, *, color: Color = "y", crop_border: int = 0) -> Tensor:
    """Peak signal-to-noise ratio in dB, peak 255. Higher is better.

    Identical images give ``inf`` (MSE 0); nothing is capped.

    Shape: pred, ref (N, 3, H, W) in [0, 1] -> (N,) float64.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> psnr(x, x)
        tensor([inf, inf], dtype=torch.float64)
    """
    a, b = _prepare(pred, ref, color, crop_border)
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def gaussian_window(size: int = WINDOW, sigma: float = 1.5, *, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)`` as a (1, 1, size, size) tensor."""
    ax = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum())[None, None]


def _ssim_maps(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """SSIM and contrast-structure maps ('valid' filtering) per channel."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ch = a.shape[1]
    w = gaussian_window(dtype=a.dtype, device=a.device).expand(ch, 1, WINDOW, WINDOW)

    def filt(x: Tensor) -> Tensor:
        return F.conv2d(x, w, groups=ch)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    return (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs, cs


def ssim(pred: Tensor, ref: Tensor, *, color: Color = "y", crop_border: int = 0) -> Tensor:
    """Structural similarity (mean SSIM; channels averaged for ``"rgb"``). Higher is better,
    at most 1 (identical images).

    Shape: pred, ref (N, 3, H, W) in [0, 1], H, W >= 11 after cropping -> (N,) float64.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> ssim(x, x)
        tensor([1.], dtype=torch.float64)
    """
    a, b = _prepare(pred, ref, color, crop_border, min_side=WINDOW)
    return _ssim_maps(a, b)[0].mean(dim=(1, 2, 3))


def _halve(x: Tensor) -> Tensor:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric')`` then ``x(1:2:end, 1:2:end)``."""
    x = torch.cat([x, x[..., -1:, :]], dim=-2)  # symmetric padding below / right of a 2x2
    x = torch.cat([x, x[..., :, -1:]], dim=-1)  # kernel anchored at its top-left
    return F.avg_pool2d(x, 2, stride=1)[..., ::2, ::2]


def ms_ssim(pred: Tensor, ref: Tensor, *, color: Color = "y", crop_border: int = 0,
            pooling: Literal["product", "sum"] = "product") -> Tensor:
    """Multi-scale SSIM over 5 scales. Higher is better, at most 1 (identical images).

    Args:
        pooling: ``"product"`` (the paper; default) or ``"sum"`` (``msssim.m``'s
            ``'wtd_sum'``, what the published reference row used); see the module docs.

    Shape: pred, ref (N, 3, H, W) in [0, 1], H, W >= 176 after cropping (11 px at the
    coarsest scale) -> (N,) float64.
    """
    if pooling not in ("product", "sum"):
        raise ValueError(f"pooling must be 'product' or 'sum', got {pooling!r}")
    min_side = WINDOW * 2 ** (len(MSSSIM_WEIGHTS) - 1)
    a, b = _prepare(pred, ref, color, crop_border, min_side=min_side)
    terms = []
    for level in range(len(MSSSIM_WEIGHTS)):
        s_map, cs_map = _ssim_maps(a, b)
        last = level == len(MSSSIM_WEIGHTS) - 1
        terms.append((s_map if last else cs_map).mean(dim=(1, 2, 3)))
        if not last:
            a, b = _halve(a), _halve(b)
    t = torch.stack(terms, dim=1)  # (N, 5)
    w = torch.tensor(MSSSIM_WEIGHTS, dtype=t.dtype, device=t.device)
    if pooling == "sum":
        return (t * (w / w.sum())).sum(dim=1)
    return (t.clamp_min(0) ** w).prod(dim=1)
