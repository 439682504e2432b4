"""Blur kernels and the blur + subsample operator of the degradation model.

Sampling convention (used everywhere in facesr): ``blur_downsample`` cross-correlates with
'same' reflect padding and keeps HR pixels ``s*i + s//2 - 1``. A kernel is *centred* when its
centre of mass lies half a pixel right of and below its middle pixel, at ``(K-1)/2 + 0.5``.
Together these put LR pixel ``i`` at HR position ``s*i + (s-1)/2``, the grid of area and
antialiased bicubic resampling (and of KernelGAN's x2 kernels), so a centred bicubic kernel
reproduces antialiased bicubic downscaling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def kernel_centre(size: int) -> float:
    """The centre of mass of a centred kernel of side ``size`` (see module docstring)."""
    return (size - 1) / 2 + 0.5


def center_of_mass(kernel: Tensor) -> tuple[float, float]:
    """(row, col) centre of mass of a (K, K) kernel."""
    k = kernel.double()
    total = k.sum()
    rows = torch.arange(k.shape[0], dtype=k.dtype)
    cols = torch.arange(k.shape[1], dtype=k.dtype)
    return float((k.sum(1) * rows).sum() / total), float((k.sum(0) * cols).sum() / total)


def principal_widths(kernel: Tensor) -> tuple[float, float, float]:
    """How wide a (K, K) kernel is: ``(major, minor, angle)``.

    ``major`` >= ``minor`` are the standard deviations (in kernel pixels, i.e. HR pixels) along
    the principal axes: square roots of the eigenvalues of the second-moment matrix of the
    kernel normalised to sum 1, about its centre of mass. ``angle`` is the direction of the
    major axis in degrees in [0, 180), from +x (columns) towards +y (rows, downwards): the
    ``theta`` of :func:`gaussian_kernel`, so ``gaussian_kernel(25, 2.5, 1.0, t)`` gives about
    ``(2.5, 1.0, degrees(t))``. A kernel without positive mass gives NaNs.
    """
    k = kernel.detach().double()
    total = k.sum()
    if not bool(total > 0):
        return math.nan, math.nan, math.nan
    k = k / total
    idx = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    cy, cx = (k.sum(1) * idx).sum(), (k.sum(0) * idx).sum()
    dy, dx = idx[:, None] - cy, idx[None, :] - cx
    xx, xy, yy = ((k * dx * dx).sum(), (k * dx * dy).sum(), (k * dy * dy).sum())
    cov = torch.stack([torch.stack([xx, xy]), torch.stack([xy, yy])]).cpu()
    ev, vec = torch.linalg.eigh(cov)  # ascending
    angle = math.degrees(math.atan2(float(vec[1, 1]), float(vec[0, 1]))) % 180
    return float(ev[1].clamp_min(0).sqrt()), float(ev[0].clamp_min(0).sqrt()), angle


def rotate_kernel(kernel: Tensor, degrees: float) -> Tensor:
    """``kernel`` turned by ``degrees`` about its centre of mass, in the sense of
    :func:`principal_widths`' angle (from +x towards +y), resampled bicubically; centred, sum 1
    (:func:`normalize_kernel`). Mass turned beyond the square is lost.

    Shape: (K, K) -> (K, K).
    """
    k = normalize_kernel(kernel).double()
    size = k.shape[-1]
    cy, cx = center_of_mass(k)
    t = math.radians(degrees)
    idx = torch.arange(size, dtype=torch.float64)
    yy, xx = torch.meshgrid(idx - cy, idx - cx, indexing="ij")
    # each output pixel p samples the input at R(-t) (p - c) + c
    sx = math.cos(t) * xx + math.sin(t) * yy + cx
    sy = -math.sin(t) * xx + math.cos(t) * yy + cy
    grid = torch.stack([sx / (size - 1) * 2 - 1, sy / (size - 1) * 2 - 1], -1)[None]
    out = F.grid_sample(k[None, None], grid, mode="bicubic", padding_mode="zeros",
                        align_corners=True)
    return normalize_kernel(out[0, 0])


def shift_kernel(kernel: Tensor, dy: float, dx: float) -> Tensor:
    """Shift a kernel by a sub-pixel amount (Fourier shift), keeping its sum."""
    k = kernel.double()
    h, w = k.shape
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    phase = torch.exp(-2j * math.pi * (fy * dy + fx * dx))
    out = torch.fft.ifft2(torch.fft.fft2(k) * phase).real
    return out.to(kernel.dtype)


def normalize_kernel(kernel: Tensor, *, centre: bool = True, clip_negative: bool = True) -> Tensor:
    """Make a kernel usable as a blur: optionally centred (see module docstring), sum 1.

    Shape: (K, K) -> (K, K).
    """
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be square (K, K), got {tuple(kernel.shape)}")
    k = kernel.double()
    if clip_negative:
        k = k.clamp_min(0)
    if k.sum() <= 0:
        raise ValueError("kernel has no positive mass")
    k = k / k.sum()
    if centre:
        c = kernel_centre(k.shape[0])
        for _ in range(3):  # the Fourier shift and the clip interact slightly; iterate
            cy, cx = center_of_mass(k)
            k = shift_kernel(k, c - cy, c - cx)
            if clip_negative:
                k = k.clamp_min(0)
            k = k / k.sum()
    return k.to(torch.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None,
                    theta: float = 0.0) -> Tensor:
    """Centred, normalised (anisotropic) Gaussian kernel.

    Args:
        sigma_x, sigma_y: standard deviations (HR pixels) along the rotated axes.
        theta: rotation in radians.
    Shape: -> (size, size).
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    c = kernel_centre(size)
    ax = torch.arange(size, dtype=torch.float64) - c
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    cos, sin = math.cos(theta), math.sin(theta)
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).to(torch.float32)


def _cubic(x: Tensor, a: float = -0.5) -> Tensor:
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    return torch.where(
        ax <= 1, (a + 2) * ax3 - (a + 3) * ax2 + 1,
        torch.where(ax < 2, a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a, torch.zeros_like(ax)),
    )


def bicubic_kernel(scale: int = 4, size: int = 25, a: float = -0.5) -> Tensor:
    """The antialiased bicubic downscaling kernel for ``scale``, centred, as a (size, size) blur.

    With ``blur_downsample`` it reproduces ``F.interpolate(..., mode='bicubic', antialias=True)``
    away from the borders (``a=-0.5``, PyTorch's and MATLAB's cubic).
    """
    c = kernel_centre(size)
    x = (torch.arange(size, dtype=torch.float64) - c) / scale
    k1 = _cubic(x, a)
    k1 = k1 / k1.sum()
    return torch.outer(k1, k1).to(torch.float32)


def blur_downsample(img: Tensor, kernel: Tensor, scale: int = 4) -> Tensor:
    """Cross-correlate with ``kernel`` (reflect padding) and keep every ``scale``-th pixel.

    Args:
        img: (C, H, W) or (N, C, H, W), H and W divisible by ``scale``.
        kernel: (K, K) shared by the batch, or (N, K, K) one per image.
    Shape: -> (C, H/scale, W/scale) or (N, C, H/scale, W/scale).
    """
    squeeze = img.ndim == 3
    x = img.unsqueeze(0) if squeeze else img
    if x.ndim != 4:
        raise ValueError(f"expected (C,H,W) or (N,C,H,W), got {tuple(img.shape)}")
    n, c, h, w = x.shape
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not divisible by {scale}")
    k = kernel.to(device=x.device, dtype=x.dtype)
    if k.ndim == 2:
        k = k.expand(n, *k.shape)
    if k.ndim != 3 or k.shape[0] != n:
        raise ValueError(f"kernel shape {tuple(kernel.shape)} does not match batch {n}")
    ks = k.shape[-1]
    left = (ks - 1) // 2
    right = ks - 1 - left
    if max(left, right) >= min(h, w):
        raise ValueError(f"image {h}x{w} is too small for a {ks}x{ks} kernel")
    xp = F.pad(x, (left, right, left, right), mode="reflect")
    # one group per (image, channel): every image gets its own kernel
    weight = k.repeat_interleave(c, dim=0).unsqueeze(1)  # (n*c, 1, K, K)
    off = scale // 2 - 1 if scale > 1 else 0
    xp = xp[..., off:, off:]
    out = F.conv2d(xp.reshape(1, n * c, *xp.shape[-2:]), weight, stride=scale, groups=n * c)
    out = out[..., : h // scale, : w // scale].reshape(n, c, h // scale, w // scale)
    return out[0] if squeeze else out
