"""JPEG compression artefacts (the ``c`` of the degradation model), through OpenCV's libjpeg,
and the JPEG quality a camera used (:func:`file_quality`, :func:`estimate_quality`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from facesr.io import luma


def quantize8(img: Tensor) -> Tensor:
    """Round to the 8-bit grid, as a saved LR image is.

    Shape: any -> same, values in [0, 1].
    """
    return torch.round(img.clamp(0, 1) * 255.0) / 255.0


def jpeg_roundtrip(img: Tensor, quality: int) -> Tensor:
    """Encode to JPEG at ``quality`` (4:2:0, as cameras do) and decode again.

    Shape: (3, H, W) or (N, 3, H, W) in [0, 1] -> same shape, on the 8-bit grid.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if img.ndim == 4:
        return torch.stack([jpeg_roundtrip(x, quality) for x in img])
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected (3, H, W), got {tuple(img.shape)}")
    arr = (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5)
    bgr = np.ascontiguousarray(arr.astype(np.uint8)[..., ::-1])
    ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1]
    out = torch.from_numpy(np.ascontiguousarray(dec)).permute(2, 0, 1).float() / 255.0
    return out.to(device=img.device, dtype=img.dtype)


# ----------------------------------------------------------------------------- quality
# libjpeg's (IJG's) luminance table at quality 50 (natural order); other qualities scale it
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64).reshape(8, 8)
# the DCT positions a decoded image's quantisation is read from: the low frequencies, where
# even a flat scene has coefficients well away from zero
DCT_POSITIONS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (0, 3), (3, 0))
DCT_FIT_MAX = 0.35  # residual ratio under which a quantisation grid counts as found
DCT_MIN_COEFFS = 20  # coefficients a position needs to be scored
DCT_MAX_SIDE = 256  # the grid is looked for in a centre crop at most this large
QUALITIES = range(5, 96)  # estimable by the DCT fit (above ~95 the steps are 1-2 levels)


@dataclass(frozen=True)
class JpegEstimate:
    """The JPEG quality an image was saved at, as libjpeg's (IJG's) quality scale.

    ``method``: "tables" (the JPEG file's own luminance table) or "dct" (the decoded pixels:
    their 8x8 DCT coefficients sit on the multiples of the table's steps); ``fit``: for
    "tables" the mean absolute difference to the IJG table of ``quality`` (0: libjpeg made
    it), for "dct" the mean squared distance of the coefficients to the nearest multiple, over
    its value for unquantised ones (0: exact grid, ~1: no grid); ``grid``: (dy, dx) of the
    8x8 block grid in the image ((0, 0) for "tables").
    """

    quality: int
    method: str
    fit: float
    grid: tuple[int, int] = (0, 0)

    def record(self) -> dict:
        return {"quality": self.quality, "method": self.method, "fit": round(self.fit, 4),
                "grid": list(self.grid)}


def ijg_luma_table(quality: int) -> np.ndarray:
    """libjpeg's luminance quantisation table at ``quality`` (1-100; baseline: steps 1-255)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((IJG_LUMA * scale + 50.0) / 100.0), 1, 255)


def quality_of_table(table: np.ndarray) -> tuple[int, float]:
    """The IJG quality whose luminance table is closest to ``table`` (8x8, natural order) and
    the mean absolute difference (0.0 when libjpeg made it at that quality)."""
    t = np.asarray(table, dtype=np.float64).reshape(8, 8)
    errs = [(float(np.mean(np.abs(ijg_luma_table(q) - t))), q) for q in range(1, 101)]
    err, q = min(errs)
    return q, err


def file_quality(path: str | Path) -> JpegEstimate | None:
    """The quality of a JPEG file, from its own luminance table (None: not a JPEG file)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format != "JPEG" or not getattr(im, "quantization", None):
                return None
            table = im.quantization[0]
    except (OSError, UnidentifiedImageError):
        return None
    q, err = quality_of_table(np.asarray(table))
    return JpegEstimate(q, "tables", err)


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16.0) * np.sqrt(2.0 / 8.0)
    d[0] /= np.sqrt(2.0)
    return d  # orthonormal: JPEG's FDCT


_DCT = _dct_matrix()


def _block_dct(y: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The 8x8 DCTs of ``y`` (luma - 128) on the grid at offset (dy, dx). -> (blocks, 8, 8)"""
    y = y[dy:, dx:]
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    b = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    return np.einsum("ij,njk,lk->nil", _DCT, b, _DCT, optimize=True)


def _fit(c: np.ndarray, steps: np.ndarray) -> float:
    """Mean, over the positions with enough coefficients, of the coefficients' squared
    distance to the nearest multiple of the step (those rounding to 0 left out: they fit
    every grid), over q^2/12 (its value for unquantised coefficients). nan: too few."""
    ratios = []
    for (u, v) in DCT_POSITIONS:
        q = steps[u, v]
        x = c[:, u, v]
        x = x[np.abs(x) >= q / 2.0]
        if len(x) < DCT_MIN_COEFFS:
            continue
        r = x - q * np.round(x / q)
        ratios.append(float(np.mean(r * r)) / (q * q / 12.0))
    return float(np.mean(ratios)) if len(ratios) >= 3 else float("nan")


def estimate_quality(img: np.ndarray) -> JpegEstimate | None:
    """The IJG quality a decoded image was JPEG-compressed at, from its pixels alone.

    JPEG rounds each 8x8 block's DCT coefficients to multiples of its quantisation table;
    decoding (and saving losslessly, e.g. as PNG) keeps them there, up to the 8-bit rounding of
    the pixels. Only libjpeg's (IJG's) scaled tables are tried: other encoders' tables (FFmpeg's
    MJPEG encoder's flat ones, for one) are not recognised. This finds the block grid (any crop
    offset) and the IJG quality whose table the low-frequency coefficients fit best, and
    returns None when no grid fits (never JPEG-compressed, resized or re-encoded by another
    codec since, or above quality ~95, whose steps are too fine to tell from rounding).

    Args:
        img: RGB (HWC) or grey (HW), float in [0, 1] or uint8.
    """
    a = np.asarray(img)
    a = a.astype(np.float64) * (255.0 if a.dtype.kind == "f" else 1.0)
    y = a if a.ndim == 2 else luma(a).astype(np.float64)
    h, w = y.shape
    if min(h, w) < 32:
        return None
    ch, cw = min(h, DCT_MAX_SIDE + 7), min(w, DCT_MAX_SIDE + 7)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    y = np.round(y[y0:y0 + ch, x0:x0 + cw]) - 128.0
    tables = {q: ijg_luma_table(q) for q in QUALITIES}
    coarse = list(QUALITIES)[::5]
    best = None  # (fit, dy, dx, coefficients): the grid, from a coarse quality scan
    for dy in range(8):
        for dx in range(8):
            c = _block_dct(y, dy, dx)
            fits = [f for f in (_fit(c, tables[q]) for q in coarse) if f == f]
            if fits and (best is None or min(fits) < best[0]):
                best = (min(fits), dy, dx, c)
    if best is None:
        return None
    _, dy, dx, c = best
    scored = [(f, q) for q in QUALITIES if (f := _fit(c, tables[q])) == f]
    if not scored:
        return None
    fit, q = min(scored)
    if fit > DCT_FIT_MAX:
        return None
    # the crop's grid offset, back in the whole image's coordinates
    return JpegEstimate(q, "dct", fit, ((y0 + dy) % 8, (x0 + dx) % 8))
