"""NIQE (Mittal, Soundararajan, Bovik, "Making a 'completely blind' image quality analyzer",
IEEE SPL 2013), as the authors' MATLAB release ``computequality.m``.

The image (grey, 0-255) is cropped to whole 96x96 blocks; at two scales (the second from
MATLAB's bicubic ``imresize(.., 0.5)``) MSCN coefficients (7x7 Gaussian, replicate padding)
are cut into blocks (96 and 48 px) and each block gives 18 features (a GGD-like fit of the
coefficients and AGGD fits of four neighbour products). A multivariate Gaussian fitted to the
block features is compared with the pristine model: sqrt(d^T pinv((S_p + S_d) / 2) d).
Lower is better. Blocks whose features are NaN (flat blocks) are left out, as MATLAB's
``nanmean`` / ``nancov`` do.

Colour space and crop: MATLAB ``rgb2gray`` of the 8-bit image (``color="gray"``, the reference
values; ``"y"``: rounded BT.601 Y, BasicSR's convention); ``crop_border`` pixels removed from
each side first (default 0).

The pristine model is the release's ``modelparameters.mat`` (``mu_prisparam``,
``cov_prisparam``), the same numbers as ``niqe_pris_params.npz`` in the ``basicsr==1.4.2``
sdist (``basicsr/metrics/``) and in ``shared/weights/niqe/``. It is never downloaded: pass
its path, or have basicsr installed (its file is located, the package is not imported).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
from torch import Tensor

from facesr.metrics._matlab import aggd_features, circshift, imresize, metric_gray, mscn

BLOCK = 96
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def basicsr_params_file() -> Path | None:
    """``basicsr/metrics/niqe_pris_params.npz`` of an installed basicsr, or None."""
    spec = importlib.util.find_spec("basicsr")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        p = Path(folder) / "metrics" / "niqe_pris_params.npz"
        if p.is_file():
            return p
    return None


def load_niqe_params(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pristine model (mu (36,), cov (36, 36)) from an ``.npz`` with ``mu_pris_param`` and
    ``cov_pris_param`` (lookup: ``path``, else an installed basicsr's file).

    Raises:
        FileNotFoundError: no file at ``path`` and no basicsr installed.
    """
    if path is None:
        path = basicsr_params_file()
        if path is None:
            raise FileNotFoundError(
                "NIQE pristine parameters not found: pass niqe_params=<path to "
                "niqe_pris_params.npz> (e.g. shared/weights/niqe/niqe_pris_params.npz, or "
                "basicsr/metrics/niqe_pris_params.npz from the basicsr==1.4.2 sdist)")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: NIQE pristine parameter file not found")
    with np.load(p, allow_pickle=False) as z:
        mu, cov = z["mu_pris_param"].astype(np.float64), z["cov_pris_param"].astype(np.float64)
    if mu.size != 36 or cov.shape != (36, 36):
        raise ValueError(f"{p}: expected mu (36,) and cov (36, 36), got {mu.shape}, {cov.shape}")
    return mu.reshape(36), cov


def block_features(block: np.ndarray) -> list[float]:
    """The 18 NIQE features of one block of MSCN coefficients (``computefeature.m``)."""
    alpha, mean, bl, br = aggd_features(block.ravel(), beta=True)
    feat = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        feat += aggd_features((block * circshift(block, shift)).ravel(), beta=True)
    return feat


def niqe_score(gray: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray,
               block: int = BLOCK) -> float:
    """NIQE of one grey image on the 0-255 scale (``computequality.m``, no block overlap).

    Raises:
        ValueError: the image has fewer than two whole blocks.
    """
    rows, cols = gray.shape[0] // block, gray.shape[1] // block
    if rows * cols < 2:
        raise ValueError(f"image {gray.shape[1]}x{gray.shape[0]} px is too small for NIQE: "
                         f"it needs at least two whole {block}x{block} blocks")
    img = gray[: rows * block, : cols * block]
    scales = []
    for s in (1, 2):
        coef, _ = mscn(img, "replicate")
        b = block // s
        # blkproc walks blocks column by column; the order does not change mean or covariance
        scales.append(np.array([block_features(coef[r * b:(r + 1) * b, c * b:(c + 1) * b])
                                for r in range(rows) for c in range(cols)]))
        img = imresize(img, 0.5)
    feat = np.concatenate(scales, axis=1)
    feat = feat[np.all(np.isfinite(feat), axis=1)]
    if len(feat) < 2:
        raise ValueError("NIQE: fewer than two blocks have finite features (flat image?)")
    mu_d = feat.mean(axis=0)
    cov_d = np.cov(feat, rowvar=False)
    d = mu_pris - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_pris + cov_d) / 2) @ d))


def niqe(img: Tensor, mu_pris: np.ndarray, cov_pris: np.ndarray, *, color: str = "gray",
         crop_border: int = 0) -> float:
    """NIQE of one RGB image.

    Args:
        img: (3, H, W) in [0, 1].
        color: ``"gray"`` = MATLAB ``rgb2gray`` of the 8-bit image (the reference values);
            ``"y"`` = rounded BT.601 Y (BasicSR's ``calculate_niqe`` convention).
        crop_border: pixels removed from each side first.
    """
    g = metric_gray(img, color, crop_border)
    return niqe_score(g, mu_pris, cov_pris)
