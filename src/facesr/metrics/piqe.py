"""PIQE: perception-based image quality evaluator (no-reference, numpy, float64).

Source: Venkatanath, Praneeth, Chandrasekhar, Channappayya, Medasani, "Blind image quality
evaluation using perception based features", NCC 2015; reference implementation MATLAB's
Image Processing Toolbox ``piqe`` (as ported line by line by ``pypiqe``, MIT):

- grey image (``color="gray"``: MATLAB ``rgb2gray`` of the 8-bit image; ``"y"``: rounded
  BT.601 Y), ``crop_border`` pixels removed from each side first (default 0), padded
  ``'symmetric'`` at the bottom / right to whole 16x16 blocks, then
  ``round(255 * x / max(x))``;
- MSCN coefficients: 7x7 Gaussian (sigma 7/6), ``'replicate'`` padding, C = 1;
- per 16x16 block: active if its variance (n - 1) exceeds 0.1; an active block is
  "noticeably distorted" if any 6-px segment of one of its four edges has a standard
  deviation below 0.1, and "noisy" if sigma > 2 beta, beta comparing the block's sigma with
  the centre-to-surround deviation ratio (centre: columns 8 and 9 of the block);
- score = 100 (sum over active blocks of [distorted] (1 - var) + [noisy] var + 1) /
  (number of active blocks + 1): in [0, 100], lower is better; 100 for an image without
  active blocks (flat).

Flat areas: where a window is flat the MSCN numerator is 0 in exact arithmetic; it is set to
exactly 0 here (see :func:`facesr.metrics._matlab.mscn`), which only matters for blocks whose
variance is about 0.1 (none of the calibration images).

Calibration (tests/metrics/test_piqe.py): the ``piqe`` reference row (MATLAB's ``piqe`` on
the RGB images, printed with 2 decimals) is matched within its rounding: 100.0000, 21.6244,
35.8645, 41.1475, 76.9485 vs 100.00, 21.62, 35.86, 41.15, 76.95.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from facesr.metrics._matlab import metric_gray, mscn

BLOCK = 16
ACTIVITY = 0.1  # block variance above which a block is "spatially active"
IMPAIRED = 0.1  # edge-segment std below which a block shows a noticeable artefact
SEGMENT = 6


def _blocks(x: np.ndarray) -> np.ndarray:
    """(H, W) with H, W multiples of BLOCK -> (n_blocks, BLOCK, BLOCK), row-major."""
    h, w = x.shape
    return x.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK,
                                                                                  BLOCK)


def _impaired(blocks: np.ndarray) -> np.ndarray:
    """Whether any 6-px segment of a block edge has a std (n - 1) below IMPAIRED."""
    edges = np.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], 1)
    segs = np.lib.stride_tricks.sliding_window_view(edges, SEGMENT, axis=-1)
    return (segs.std(axis=-1, ddof=1) < IMPAIRED).any(axis=(1, 2))


def _center_surround(blocks: np.ndarray) -> np.ndarray:
    """std(centre) / std(surround) per block; 0 where undefined (MATLAB's NaN check).

    As the reference: the centre is columns 8 and 9 (1-based); the surround drops column 8
    and then the column that moved into place 9, i.e. columns 8 and 10 of the original.
    """
    center = blocks[:, :, 7:9].reshape(len(blocks), -1)
    keep = [c for c in range(BLOCK) if c not in (7, 9)]
    surround = blocks[:, :, keep].reshape(len(blocks), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = center.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
    return np.nan_to_num(ratio, nan=0.0)


def piqe_score(gray: np.ndarray) -> float:
    """PIQE of one grey image on the 0-255 scale (see the module docs).

    Raises:
        ValueError: the image is smaller than one block, or entirely black.
    """
    h, w = gray.shape
    if min(h, w) < BLOCK:
        raise ValueError(f"image {w}x{h} px is smaller than PIQE's {BLOCK} px block")
    img = np.pad(gray, ((0, -h % BLOCK), (0, -w % BLOCK)), mode="symmetric")
    peak = img.max()
    if peak <= 0:
        raise ValueError("PIQE is undefined for an all-black image (it scales by the maximum)")
    img = np.floor(255.0 * img / peak + 0.5)
    coef, _ = mscn(img, "replicate")
    blocks = _blocks(coef)
    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > ACTIVITY
    sigma = np.sqrt(var)
    csd = _center_surround(blocks)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.abs(sigma - csd) / np.maximum(sigma, csd)
    noisy = sigma > 2 * beta
    distorted = _impaired(blocks)
    scores = active * (distorted * (1 - var) + noisy * var)
    return float((scores.sum() + 1) / (active.sum() + 1) * 100)


def piqe(img: Tensor, *, color: str = "gray", crop_border: int = 0) -> float:
    """PIQE of one RGB image. Lower is better, in [0, 100].

    Args:
        img: (3, H, W) in [0, 1], H, W >= 16 after cropping.
        color: ``"gray"`` = MATLAB ``rgb2gray`` of the 8-bit image (the reference values);
            ``"y"`` = rounded BT.601 Y.
        crop_border: pixels removed from each side first.
    """
    g = metric_gray(img, color, crop_border)
    return piqe_score(g)
