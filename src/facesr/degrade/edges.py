"""The direction of a camera's blur, read from the step edges in its pictures.

An edge between two flat regions, blurred by a kernel, is as wide as the kernel is long across
the edge: the width of each step edge is the kernel's spread along the edge's normal. With
step edges in many directions, the squared widths follow ``a + b cos 2t + c sin 2t`` over the
normal's direction ``t``; the widest direction, ``atan2(c, b) / 2``, is the kernel's major
axis (the ``angle`` of :func:`facesr.degrade.kernels.principal_widths`).

Per picture (:func:`edge_blur`): the luma's Sobel gradient; edge pixels are local maxima of
its magnitude along the gradient (above the ``PERCENTILE`` of all magnitudes) with flat ground
on both sides (the values ``STEP_SPAN`` and ``STEP_SPAN + 1`` pixels out along the normal differ
by less than ``FLAT`` of the step); each gives a width ``step / (sqrt(2 pi) max gradient)``
(a Gaussian-blurred step's); the fit drops the worst fifth of the residuals twice.

What it is good for (measured, README "Adapt facesr to your camera"): on the simulated camera
of ``benchmarks/adapt.py`` (sigma 4.0 x 1.0 HR px at 60 degrees, noise 5, JPEG 40) every one of
its 8 stills reads 57-62 degrees, where KernelGAN's estimates spread over 60-84 degrees from
seed to seed. It needs real step edges: on textured photographs (scikit-image's coffee, rocket,
chelsea) it reads the texture's direction instead, and a static camera shows every still the
same scene, so stills agreeing is no proof. Widths are in LR pixels and include the Sobel
filter's own spread: only the direction is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facesr.io import luma

PERCENTILE = 90  # edge pixels: gradient magnitude above this percentile of the picture's
STEP_SPAN = 3  # pixels out along the normal where the flat ground on each side is read
FLAT = 0.15  # the ground is flat when it changes by less than this share of the step
MIN_STEP = 0.08  # smallest step (0-1 luma) used
MIN_EDGES = 200  # fewer clean edge pixels: no reading


@dataclass(frozen=True)
class EdgeBlur:
    """One picture's reading: ``angle`` in degrees [0, 180) (the blur's major axis, the
    convention of ``principal_widths``), ``anisotropy`` = sqrt(b^2 + c^2) / a of the fit (0
    round, towards 1 a line), ``width`` the root mean square edge width (LR px, the Sobel
    filter included) and ``edges`` the edge pixels it rests on."""

    angle: float
    anisotropy: float
    width: float
    edges: int

    def record(self) -> dict:
        return {"angle": round(self.angle, 1), "anisotropy": round(self.anisotropy, 3),
                "width": round(self.width, 3), "edges": self.edges}


def edge_blur(image: np.ndarray) -> EdgeBlur | None:
    """The blur direction of one picture (module docs); None with fewer than ``MIN_EDGES``
    clean step edges.

    Shape: (H, W, 3) RGB or (H, W) luma, float in [0, 1].
    """
    img = np.asarray(image, np.float32)
    y = luma(img) if img.ndim == 3 else img
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3) / 8
    mag = np.hypot(gx, gy)
    h, w = y.shape
    d = STEP_SPAN
    ys, xs = np.nonzero(mag > np.percentile(mag, PERCENTILE))
    m = d + 2  # the farthest sample, d + 1 out, and its bilinear neighbour stay inside
    inside = (ys >= m) & (ys < h - m) & (xs >= m) & (xs < w - m)
    ys, xs = ys[inside], xs[inside]
    if len(ys) < MIN_EDGES:
        return None
    m0 = mag[ys, xs]
    nx, ny = gx[ys, xs] / m0, gy[ys, xs] / m0

    def at(src: np.ndarray, r: float) -> np.ndarray:  # src at r pixels along the normal
        return _bilinear(src, xs + r * nx, ys + r * ny)

    peak = (m0 >= at(mag, 1.0)) & (m0 >= at(mag, -1.0))
    ahead, behind = at(y, d), at(y, -d)
    step = np.abs(ahead - behind)
    flat = (np.abs(at(y, d + 1) - ahead) < FLAT * step) & \
        (np.abs(at(y, -d - 1) - behind) < FLAT * step)
    ok = peak & flat & (step > MIN_STEP)
    if int(ok.sum()) < MIN_EDGES:
        return None
    width2 = (step[ok] / (math.sqrt(2 * math.pi) * m0[ok])) ** 2
    t = np.arctan2(ny[ok], nx[ok])
    design = np.stack([np.ones_like(t), np.cos(2 * t), np.sin(2 * t)], 1)
    keep = np.ones(len(t), bool)
    for _ in range(3):
        (a, b, c), *_ = np.linalg.lstsq(design[keep], width2[keep], rcond=None)
        resid = np.abs(design @ np.array([a, b, c]) - width2)
        keep = resid <= np.percentile(resid, 80)
    angle = (0.5 * math.degrees(math.atan2(c, b))) % 180.0
    return EdgeBlur(angle, float(math.hypot(b, c) / max(a, 1e-12)),
                    float(math.sqrt(max(a, 0.0))), int(ok.sum()))


def _bilinear(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``src`` at the points (x, y), bilinear, the points at least a pixel inside (not
    ``cv2.remap``: it takes at most 32767 points a row, fewer than a frame's edge pixels)."""
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    top = src[y0, x0] * (1 - fx) + src[y0, x0 + 1] * fx
    bottom = src[y0 + 1, x0] * (1 - fx) + src[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def combine(readings: Sequence[EdgeBlur]) -> dict | None:
    """Several pictures' readings as one: the mean direction (of the doubled angles, so 1 and
    179 degrees average to 0), the circular spread (degrees) and the count; None for none."""
    if not readings:
        return None
    z = np.mean([np.exp(2j * math.radians(r.angle)) for r in readings])
    spread = math.degrees(math.sqrt(max(-2 * math.log(max(abs(z), 1e-12)), 0.0))) / 2
    return {"angle": round(math.degrees(np.angle(z)) / 2 % 180.0, 1),
            "spread": round(spread, 1), "stills": len(readings),
            "anisotropy": round(float(np.median([r.anisotropy for r in readings])), 3)}


def angle_difference(a: float, b: float) -> float:
    """Signed smallest turn from direction ``b`` to ``a`` in degrees, in (-90, 90]."""
    d = (a - b) % 180.0
    return d - 180.0 if d > 90.0 else d
