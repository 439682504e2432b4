"""Noise patches from smooth regions of real source images (Chen et al., CVPR 2018).

A window ``p`` (``patch`` x ``patch``, default 32, the LR training patch size) slides over the
image with stride ``stride``; inside it a window ``q`` (``sub`` x ``sub``, default 8) slides with
stride ``sub_stride``. ``p`` is kept as smooth when, for every ``q`` inside it (statistics on
the 0-255 scale, of the luminance Y = 0.299 R + 0.587 G + 0.114 B by default, as Chen et al.
work on grey images; ``stats="rgb"`` demands the same of each colour channel instead):

    |Mean(q) - Mean(p)| <= mu * Mean(p)        (eq. 4, mu = 0.1)
    |Var(q)  - Var(p)|  <= gamma * Var(p)      (eq. 5, gamma = 0.25)
    Var(p) >= phi                              (eq. 6, phi = 0.5; rejects saturated patches)

The noise patch is ``n = p - Mean(p)`` per colour channel (zero mean), on the [0, 1] scale.

On heavily compressed footage (the shared surveillance clips) these criteria keep almost no
patch: codecs flatten the inside of 8x8 blocks, so sub-window variances differ from the
patch variance by far more than ``gamma``. ``mu``, ``gamma`` and the strides are parameters.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

LUMA = np.array([0.299, 0.587, 0.114])


def _window_stats(img: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every ``size`` x ``size`` window (valid positions), per channel.

    Shape: (H, W, C) -> (H-size+1, W-size+1, C) twice.
    """
    x = img.astype(np.float64)
    n = float(size * size)

    def box(a: np.ndarray) -> np.ndarray:
        c = np.zeros((a.shape[0] + 1, a.shape[1] + 1, a.shape[2]), np.float64)
        c[1:, 1:] = a.cumsum(0).cumsum(1)
        return (c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]) / n

    mean = box(x)
    var = np.maximum(box(x * x) - mean * mean, 0.0)
    return mean, var


def smooth_patch_mask(
    img255: np.ndarray,
    *,
    patch: int = 32,
    sub: int = 8,
    stride: int = 16,
    sub_stride: int = 8,
    mu: float = 0.1,
    gamma: float = 0.25,
    phi: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Which ``patch`` windows satisfy equations 4-6.

    Args:
        img255: (H, W, C) float image on the 0-255 scale.
    Returns:
        ``(ys, xs)``: top-left corners of the smooth windows.
    """
    if sub > patch or (patch - sub) % sub_stride:
        raise ValueError(f"sub-window {sub} with stride {sub_stride} must tile patch {patch}")
    h, w = img255.shape[:2]
    if h < patch or w < patch:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mp, vp = _window_stats(img255, patch)
    mq, vq = _window_stats(img255, sub)
    ys = np.arange(0, h - patch + 1, stride)
    xs = np.arange(0, w - patch + 1, stride)
    mp, vp = mp[np.ix_(ys, xs)], vp[np.ix_(ys, xs)]  # (Ny, Nx, C)
    ok = np.all(vp >= phi, axis=-1)
    offsets = np.arange(0, patch - sub + 1, sub_stride)
    for dy in offsets:
        for dx in offsets:
            q_mean = mq[np.ix_(ys + dy, xs + dx)]
            q_var = vq[np.ix_(ys + dy, xs + dx)]
            ok &= np.all(np.abs(q_mean - mp) <= mu * mp, axis=-1)
            ok &= np.all(np.abs(q_var - vp) <= gamma * vp, axis=-1)
    iy, ix = np.nonzero(ok)
    return ys[iy], xs[ix]


def extract_noise_patches(
    img: np.ndarray,
    *,
    patch: int = 32,
    sub: int = 8,
    stride: int = 16,
    sub_stride: int = 8,
    mu: float = 0.1,
    gamma: float = 0.25,
    phi: float = 0.5,
    stats: str = "luma",
) -> tuple[Tensor, np.ndarray]:
    """Zero-mean noise patches from the smooth regions of one image.

    Args:
        img: float RGB (H, W, 3) in [0, 1], as ``facesr.io.read_image_array`` returns.
        stats: test the criteria on the luminance ("luma") or on every channel ("rgb").
    Returns:
        ``(patches, corners)``: patches (M, 3, patch, patch) float32 on the [0, 1] scale, each
        channel with zero mean; corners (M, 2) int (y, x) of each patch in the image.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) image, got shape {img.shape}")
    if stats not in ("luma", "rgb"):
        raise ValueError(f"stats must be 'luma' or 'rgb', got {stats!r}")
    img255 = img.astype(np.float64) * 255.0
    if stats == "luma":
        img255 = (img255 @ LUMA)[..., None]
    ys, xs = smooth_patch_mask(img255, patch=patch, sub=sub, stride=stride,
                               sub_stride=sub_stride, mu=mu, gamma=gamma, phi=phi)
    if len(ys) == 0:
        return torch.zeros(0, 3, patch, patch), np.zeros((0, 2), np.int64)
    crops = np.stack([img[y:y + patch, x:x + patch] for y, x in zip(ys, xs, strict=True)])
    crops = crops.astype(np.float64)
    crops -= crops.mean(axis=(1, 2), keepdims=True)
    patches = torch.from_numpy(crops.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    return patches, np.stack([ys, xs], axis=1)
