"""Score candidate target (HQ) faces and decide which to keep for training.

Every score is computed from a float RGB HWC image in [0, 1] (as
:func:`facesr.io.read_image_array` returns it); luma is BT.601 on the 0-255 scale. The
*working size* is the image resized (antialiased Lanczos) so that its short side is
``WORK_SIZE`` = 128 px, the HR training patch size: a 200x200 and a 1024x1024 face are
compared at the same face-relative scale.

Scores (:class:`CurateScore`):

- ``sharpness``: variance of the 3x3 Laplacian of luma at the working size, over the central
  60% of each side (where aligned crops put the eyes, nose and mouth; bokeh backgrounds and
  borders do not count). A Gaussian blur of sigma 1 working px divides it by 10-14 on faces;
  a 1024 px face area-downscaled to 200 px keeps 0.8-0.85 of its score (area resampling
  itself softens). Content matters: smooth baby skin and low-contrast photos score lower than
  wrinkled or high-contrast faces, and tight crops (UTKFace: the face fills the frame) lower
  than FFHQ-style crops with hair and shoulders.
- ``noise``: sigma of white noise per RGB channel (0-255 scale) at native resolution, by
  Immerkaer's estimator (mean absolute response of the [1 -2 1; -2 4 -2; 1 -2 1] mask x
  sqrt(pi/2) / 6, averaged over channels) in 16x16 blocks, taking the median over the
  flattest 20% of unclipped blocks (flatness: luma gradient energy after a sigma 1.5
  Gaussian, which noise barely touches). On clean faces, added Gaussian noise of sigma
  2 / 4 / 8 / 16 reads 2.0-2.6 / 3.9-4.5 / 7.7-8.1 / 15.5-16.2.
- ``chroma``: colour that lightness does not explain, in CIELAB units at the working size
  (area resampling here): the RMS distance of each pixel's (a*, b*) from the mean (a*, b*) of
  its lightness bin (16 bins). 0 for grey images *and* for single-tint ones (sepia,
  cyanotype), whose hue is a function of lightness; colour faces have 3 or more.
- ``blockiness``: mean absolute luma step across the 8x8 JPEG grid over the mean step
  elsewhere, rows and columns averaged, at native resolution. 1.0 without blocking; a detailed
  face re-encoded at JPEG quality 75 / 50 / 30 gives about 1.25 / 1.5 / 1.7 (smooth content
  reads higher). Meaningful only for JPEGs kept at their encoded size and orientation.

Default :class:`Thresholds`, set by looking at contact sheets of ``data/faces_hq`` (11,669
UTKFace 200 px JPEGs, 146 ALAE and 10 FFHQ 512 px PNGs, 56 CelebA-HQ 1024 px JPEGs):

- ``min_sharpness = 100``: UTKFace faces under ~70 look upscaled or out of focus at native
  size, 80-100 mostly soft, 100-120 mostly acceptable, above 120 mostly crisp (the boundary
  is gradual: anything from 80 to 120 is defensible); 35% of UTKFace is under 100, the other
  three sets score 255 or more. UTKFace's Indian (51% kept), Asian (60%) and "other" (58%)
  subsets are kept less often than White (69%) and Black (75%) ones, babies (62%) less than
  the over-50s (74%): partly softer source photos, partly smoother skin (the Laplacian sees
  texture as well as focus). Check the balance of what you keep.
- ``max_noise = 2.0``: none of the sets has visible sensor noise (median 0.3, the 8-bit
  quantisation floor; FFHQ 0.4-1.2). Dense wrinkles, beards and hair read 1.5-2 and are kept;
  above 2 are 10 UTKFace portraits that are HDR-processed, over-sharpened with JPEG ringing,
  or grainy.
- ``min_chroma = 3.0``: under 2.5 every image seen was grey or sepia; 2.5-3 mixes toned and
  nearly colourless photos; 3+ are colour. Rejects 196 UTKFace images (1.7%, 151 of them
  for this reason alone), none of the others (their minimum is 3.8).
- ``max_blockiness = 1.6``: rejects visible 8x8 blocking (about JPEG quality 40 and worse):
  29 of the 32 UTKFace images it catches are also soft; it also rejects 3 CelebA-HQ images
  (1.62-1.83), the two worst of which show faint blocks on the skin at native size. Clean,
  smooth baby faces reach 1.5.
- ``min_side = 128``: an image must hold one 128x128 HR training patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from facesr.io import LUMA

WORK_SIZE = 128  # short side of the working size (px)
CENTRE = 0.6  # fraction of each side used for sharpness
NOISE_BLOCK = 16  # block side for noise estimation (native px)
NOISE_FLAT_FRACTION = 0.2  # share of the flattest blocks used for noise
CHROMA_BINS = 16  # lightness bins for chroma
JPEG_GRID = 8
REASONS = ("small", "grey", "soft", "noisy", "blocky")  # keep()'s reasons, in order

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass(frozen=True)
class CurateScore:
    """The scores of one image (see the module docstring for their definitions)."""

    width: int
    height: int
    sharpness: float
    noise: float
    chroma: float
    blockiness: float


@dataclass(frozen=True)
class Thresholds:
    """Limits for :func:`keep`; ``min_chroma=None`` keeps grey and sepia images."""

    min_side: int = 128
    min_sharpness: float = 100.0
    max_noise: float = 2.0
    min_chroma: float | None = 3.0
    max_blockiness: float = 1.6


def _check(img: np.ndarray) -> None:
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB HWC image, got shape {img.shape}")
    if min(img.shape[:2]) < 3:
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} px is smaller than 3 px")


def _luma255(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img, dtype=np.float32) @ (LUMA * 255.0)


def _to_work_size(plane: np.ndarray) -> np.ndarray:
    """Resize one float plane so that its short side is WORK_SIZE (antialiased Lanczos).

    PIL's Lanczos filter widens with the factor, so the score hardly depends on the size a
    face is stored at; with cv2's INTER_AREA it varied by up to 30% with the factor.
    """
    h, w = plane.shape
    s = WORK_SIZE / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    im = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode "F"
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS))


def sharpness(img: np.ndarray) -> float:
    """Variance of the Laplacian of luma (0-255) at the working size, central 60%.

    Shape: img (H, W, 3) float in [0, 1].
    """
    _check(img)
    y = _to_work_size(_luma255(img))
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=1)
    h, w = lap.shape
    mh, mw = round(h * (1 - CENTRE) / 2), round(w * (1 - CENTRE) / 2)
    return float(lap[mh:h - mh, mw:w - mw].astype(np.float64).var())


def noise_sigma(img: np.ndarray) -> float:
    """Noise sigma per RGB channel on the 0-255 scale: Immerkaer's estimator, flattest blocks.

    Shape: img (H, W, 3) float in [0, 1], native resolution.
    """
    _check(img)
    rgb = np.ascontiguousarray(img, dtype=np.float32) * 255.0
    resid = np.abs(cv2.filter2D(rgb, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    smooth = cv2.GaussianBlur(_luma255(img), (0, 0), 1.5)
    grad = cv2.Sobel(smooth, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(smooth, cv2.CV_32F, 0, 1) ** 2
    b = min(NOISE_BLOCK, *img.shape[:2])
    h, w = img.shape[0] - img.shape[0] % b, img.shape[1] - img.shape[1] % b

    def blocks(a: np.ndarray) -> np.ndarray:  # (n_blocks, b*b)
        return a[:h, :w].reshape(h // b, b, w // b, b).swapaxes(1, 2).reshape(-1, b * b)

    r0, r1, r2 = cv2.split(resid)  # cv2's per-channel ops are far faster than axis=2 numpy
    c0, c1, c2 = cv2.split(rgb)
    sig = blocks((r0 + r1 + r2) / 3).mean(1) * math.sqrt(math.pi / 2) / 6
    flat = blocks(grad).mean(1)
    lo, hi = cv2.min(cv2.min(c0, c1), c2), cv2.max(cv2.max(c0, c1), c2)
    unclipped = (blocks(lo).min(1) > 2.0) & (blocks(hi).max(1) < 253.0)
    if unclipped.sum() >= 4:  # clipped blocks hide noise
        sig, flat = sig[unclipped], flat[unclipped]
    n = min(len(sig), max(4, round(len(sig) * NOISE_FLAT_FRACTION)))
    return float(np.median(sig[np.argsort(flat, kind="stable")[:n]]))


def chroma(img: np.ndarray) -> float:
    """RMS of (a*, b*) around its mean per lightness bin, at the working size (CIELAB units).

    Shape: img (H, W, 3) float in [0, 1].
    """
    _check(img)
    h, w = img.shape[:2]
    s = WORK_SIZE / min(h, w)  # area resampling is enough for a colour statistic
    size = (max(1, round(w * s)), max(1, round(h * s)))
    rgb = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), size,
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    lab = cv2.cvtColor(np.clip(rgb, 0, 1), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    lab = lab.astype(np.float64)
    bins = np.minimum((lab[:, 0] * (CHROMA_BINS / 100.0)).astype(np.int64), CHROMA_BINS - 1)
    count = np.maximum(np.bincount(bins, minlength=CHROMA_BINS), 1)
    resid_sq = 0.0
    for k in (1, 2):
        mean = np.bincount(bins, lab[:, k], minlength=CHROMA_BINS) / count
        resid_sq = resid_sq + (lab[:, k] - mean[bins]) ** 2
    return float(np.sqrt(np.mean(resid_sq)))


def blockiness(img: np.ndarray) -> float:
    """Mean luma step across the 8x8 JPEG grid over the mean step elsewhere (1.0 = none).

    Shape: img (H, W, 3) float in [0, 1], as decoded (native size and orientation).
    """
    _check(img)
    y = _luma255(img)
    ratios = []
    for steps in (np.abs(np.diff(y, axis=1)).mean(0), np.abs(np.diff(y, axis=0)).mean(1)):
        on_grid = np.arange(steps.size) % JPEG_GRID == JPEG_GRID - 1
        if on_grid.sum() >= 2:
            eps = 1e-3  # a flat image has no steps anywhere: ratio 1
            ratios.append((steps[on_grid].mean() + eps) / (steps[~on_grid].mean() + eps))
    return float(np.mean(ratios)) if ratios else 1.0


def score_image(img: np.ndarray) -> CurateScore:
    """All scores of one image.

    Shape: img (H, W, 3) float in [0, 1], native resolution.
    """
    _check(img)
    return CurateScore(width=int(img.shape[1]), height=int(img.shape[0]),
                       sharpness=sharpness(img), noise=noise_sigma(img), chroma=chroma(img),
                       blockiness=blockiness(img))


def keep(score: CurateScore, thresholds: Thresholds = Thresholds()) -> tuple[bool, str]:
    """Decide on one image.

    Returns:
        ``(True, "ok")``, or ``(False, reasons)`` where reasons joins every failed criterion
        of :data:`REASONS` with ``+`` (e.g. ``"soft+blocky"``).
    """
    t = thresholds
    failed = [name for name, bad in (
        ("small", min(score.width, score.height) < t.min_side),
        ("grey", t.min_chroma is not None and score.chroma < t.min_chroma),
        ("soft", score.sharpness < t.min_sharpness),
        ("noisy", score.noise > t.max_noise),
        ("blocky", score.blockiness > t.max_blockiness),
    ) if bad]
    return (not failed, "+".join(failed) or "ok")
