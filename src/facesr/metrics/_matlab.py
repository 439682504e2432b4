"""MATLAB-compatible building blocks for the metrics (numpy, float64).

The published reference values of NIQE, BRISQUE, PIQE, SSIM, MS-SSIM and NLPD come from the
authors' MATLAB scripts; reproducing them needs MATLAB's exact conventions, written here from
MATLAB's documented behaviour:

- ``rgb2gray`` on uint8 input: ``round(0.298936 R + 0.587043 G + 0.114021 B)`` (coefficients
  are the first row of the inverse NTSC matrix), result uint8;
- ``fspecial('gaussian', n, s)``: sampled, normalised Gaussian;
- ``imfilter`` / ``filter2``: correlation with ``'replicate'``, ``'symmetric'`` or zero padding
  (scipy modes ``nearest``, ``reflect``, ``constant``);
- ``imresize(x, scale)`` (bicubic, a = -0.5, antialiased when shrinking, mirrored borders,
  output ``ceil(scale * size)``), on double input (no rounding);
- the moment-matching fits of the generalised and asymmetric generalised Gaussian
  (``estimateggdparam`` / ``estimateaggdparam``: a table search over 0.2:0.001:10).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import gamma as gamma_fn
from torch import Tensor

_NTSC = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
GRAY_COEFFS = np.linalg.inv(_NTSC)[0]  # 0.298936021293775, 0.587043074451121, 0.114020904255103
FLAT_TOL = 1e-8  # grey levels; see mscn()
_PAD_MODES = {"replicate": "nearest", "symmetric": "reflect", "zero": "constant"}


def round_half_up(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round`` for non-negative values (halves go up, not to even)."""
    return np.floor(x + 0.5)


def gray_uint8(img: Tensor) -> np.ndarray:
    """MATLAB ``double(rgb2gray(im))`` of an 8-bit RGB image given as a [0, 1] tensor.

    Values are quantised to 8 bits first (exact for images read from 8-bit files), as MATLAB
    scripts read uint8 files.

    Shape: (3, H, W) or (1, H, W) in [0, 1] -> (H, W) float64 integers in [0, 255].
    """
    arr = img.detach().double().cpu().numpy()
    q = round_half_up(np.clip(arr, 0.0, 1.0) * 255.0)
    if q.shape[0] == 1:
        return q[0]
    return np.clip(round_half_up(np.tensordot(GRAY_COEFFS, q, axes=1)), 0, 255)


def y_bt601(img: Tensor, *, quantize: bool = False) -> np.ndarray:
    """Y of YCbCr, ITU-R BT.601 studio range (MATLAB ``rgb2ycbcr``), on the 0-255 scale.

    Shape: (3, H, W) in [0, 1] -> (H, W) float64 in [16, 235] (rounded if ``quantize``).
    """
    arr = img.detach().double().cpu().numpy()
    y = 16.0 + 65.481 * arr[0] + 128.553 * arr[1] + 24.966 * arr[2]
    return round_half_up(y) if quantize else y


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: (size, size), sums to 1."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    g[g < np.finfo(np.float64).eps * g.max()] = 0
    return g / g.sum()


def imfilter(img: np.ndarray, kernel: np.ndarray, padding: str) -> np.ndarray:
    """MATLAB ``imfilter(img, kernel, padding)`` ('same' size, correlation) for odd kernels.

    ``padding``: ``'replicate'``, ``'symmetric'`` or ``'zero'`` (MATLAB's default, and what
    ``filter2(kernel, img, 'same')`` does).
    """
    return ndimage.correlate(img, kernel, mode=_PAD_MODES[padding], cval=0.0)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and (0-based, mirrored) source indices of MATLAB's bicubic imresize."""
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)
    return w[:, keep], src[:, keep]


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` (bicubic, antialiased) of a 2-D double image.

    Shape: (H, W) -> (ceil(scale * H), ceil(scale * W)).
    """
    out = img
    for axis in (0, 1):  # equal scales: MATLAB resizes rows first
        n = out.shape[axis]
        w, src = _contributions(n, int(np.ceil(scale * n)), scale)
        moved = np.moveaxis(out, axis, 0)
        moved = np.einsum("ok,ok...->o...", w, moved[src])
        out = np.moveaxis(moved, 0, axis)
    return out


def mscn(img: np.ndarray, padding: str, *, flat_tol: float = FLAT_TOL
         ) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients, 7x7 Gaussian (sigma 7/6), C = 1.

    Where the window is flat, ``img - mu`` is 0 in exact arithmetic but a rounding residue
    (about 1e-13) in floating point, whose sign depends on the summation order. The AGGD fits
    count signs, so these residues move NIQE on images with flat areas by several percent
    (reference I19: 8.635 in MATLAB, 9.126 with scipy's residues, 8.667 exact). Residues below
    ``flat_tol`` (grey levels) are therefore set to 0: the exact value, reproducible anywhere.

    Returns:
        (mscn, sigma), both of the image's shape (pixel values on the 0-255 scale).
    """
    window = fspecial_gaussian(7, 7 / 6)
    mu = imfilter(img, window, padding)
    sigma = np.sqrt(np.abs(imfilter(img * img, window, padding) - mu * mu))
    centred = img - mu
    centred[np.abs(centred) < flat_tol] = 0.0
    return centred / (sigma + 1), sigma


_GAM = np.arange(0.2, 10.0005, 0.001)  # MATLAB 0.2:0.001:10 (9801 values)
_R_GGD = gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM) / gamma_fn(2 / _GAM) ** 2
_R_AGGD = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))


def fit_ggd(vec: np.ndarray) -> tuple[float, float]:
    """Generalised Gaussian fit by moment matching (``estimateggdparam``).

    Returns:
        (shape alpha, standard deviation sigma).
    """
    sigma_sq = np.mean(vec**2)
    rho = sigma_sq / np.mean(np.abs(vec)) ** 2
    return float(_GAM[np.argmin(np.abs(rho - _R_GGD))]), float(np.sqrt(sigma_sq))


def fit_aggd(vec: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit (``estimateaggdparam``).

    Returns:
        (shape alpha, left std, right std); the stds are NaN where a side has no samples.
    """
    neg, pos = vec[vec < 0], vec[vec > 0]
    left = np.sqrt(np.mean(neg**2)) if neg.size else np.nan
    right = np.sqrt(np.mean(pos**2)) if pos.size else np.nan
    gammahat = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    if not np.isfinite(rhatnorm):
        return float("nan"), float(left), float(right)
    alpha = float(_GAM[np.argmin((_R_AGGD - rhatnorm) ** 2)])
    return alpha, float(left), float(right)


def aggd_features(vec: np.ndarray, *, beta: bool) -> list[float]:
    """[alpha, mean, left, right] of an AGGD fit, as NIQE (``beta``) or BRISQUE use them.

    NIQE reports the scale parameters beta_l, beta_r = std * sqrt(G(1/a) / G(3/a)) and the mean
    (beta_r - beta_l) G(2/a) / G(1/a); BRISQUE reports the squared stds and the mean
    (std_r - std_l) G(2/a) / G(1/a) * sqrt(G(1/a) / G(3/a)) (the same number).
    """
    alpha, left, right = fit_aggd(vec)
    if not np.isfinite(alpha):
        return [float("nan")] * 4
    k = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    mean = (right - left) * k * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
    if beta:
        return [alpha, float(mean), float(left * k), float(right * k)]
    return [alpha, float(mean), left**2, right**2]


def circshift(img: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """MATLAB ``circshift(img, [dy dx])``."""
    return np.roll(img, shift, axis=(0, 1))


def metric_gray(img: Tensor, color: str, crop_border: int) -> np.ndarray:
    """The 8-bit grey plane the classical no-reference metrics score: ``"gray"`` = MATLAB
    ``rgb2gray`` of the 8-bit image, ``"y"`` = rounded BT.601 Y; ``crop_border`` px removed
    from each side."""
    g = gray_uint8(img) if color == "gray" else y_bt601(img, quantize=True)
    if crop_border:
        g = g[crop_border:-crop_border, crop_border:-crop_border]
    return g
