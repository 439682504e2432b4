"""Burst fusion: super-resolve one face crop x4 with the help of the same face in neighbouring
frames (issue 17).

Every crop is registered to the reference crop on the LR grid (phase correlation for the
integer-ish start, then OpenCV's ECC, euclidean by default, on grey crops with a small Gaussian
pre-blur), frames that do not register are rejected (ECC failure, correlation under
``min_score``, or an implausible warp: large rotation, scale or shift: blinks, turns,
occlusion, another face), the others are warped onto the reference grid (bicubic) and averaged
robustly per pixel (values far from the per-pixel median, in units of the burst's robust noise
scale, are left out; pixels a warp brings in from outside the crop too), and the fused crop goes
through the single-frame pipeline (:func:`facesr.infer.pipeline.upscale_face`); its output is
then refined by a few iterations of iterative back-projection onto all the used crops
(:func:`back_project`, ``refine`` of :func:`upscale_burst`).

The average is taken as ``reference + mean(aligned - reference)``, so a burst of identical
crops fuses to exactly the reference and gives exactly the single-frame output with
``refine=0``.

Images are float32 RGB tensors (3, H, W) in [0, 1], all crops the same size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from facesr import COLOR_LOCK
from facesr.io import luma

MIN_SCORE = 0.9  # ECC correlation of the pre-blurred grey crops; see benchmarks/multiframe.py
MAX_ROTATION = 10.0  # degrees
MAX_SCALE = 0.1  # |scale - 1| (affine motion only)
MAX_SHIFT = 0.15  # fraction of the crop's shorter side
REFINE = 3  # back-projection iterations of upscale_burst; see its docstring
_MOTIONS = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
            "affine": cv2.MOTION_AFFINE}


@dataclass
class BurstResult:
    """``image``: the x4 of the reference crop (3, 4H, 4W); ``used``: indices of the crops that
    went into the fusion (the reference first); ``rejected``: (index, reason) per left-out
    crop; ``scores``: ECC correlation per crop (1.0 for the reference, None when ECC failed);
    ``fused``: the fused LR crop (3, H, W) given to the network; ``warps``: the LR-grid warp
    (:func:`register`) of every used crop, in ``used``'s order."""

    image: Tensor
    used: list[int]
    rejected: list[tuple[int, str]]
    scores: list[float | None] = field(default_factory=list)
    fused: Tensor | None = None
    warps: list[np.ndarray] = field(default_factory=list)


def _grey(img: Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) tensor or (H, W) / (H, W, 3) array -> float32 (H, W) luma."""
    if isinstance(img, Tensor):
        img = img.detach().float().cpu().permute(1, 2, 0).numpy() if img.ndim == 3 \
            else img.detach().float().cpu().numpy()
    return luma(img) if np.ndim(img) == 3 else np.ascontiguousarray(img, np.float32)


def register(ref: Tensor | np.ndarray, img: Tensor | np.ndarray, *, motion: str = "euclidean",
             blur: int = 5, iterations: int = 100, eps: float = 1e-6
             ) -> tuple[np.ndarray | None, float | None]:
    """Sub-pixel registration of ``img`` to ``ref`` by ECC.

    Args:
        ref, img: crops of the same size: (3, H, W) tensors, or grey / RGB numpy arrays.
        motion: ``translation``, ``euclidean`` or ``affine``.
        blur: Gaussian pre-blur window of ECC (odd px; 1 = none).
        iterations, eps: ECC stopping criteria.

    Returns:
        (warp, score): ``warp`` float32 (2, 3) maps reference pixel coordinates to ``img``'s
        (``img(warp @ [x, y, 1]) ~ ref(x, y)``: warp with ``cv2.WARP_INVERSE_MAP``), ``score``
        the ECC correlation coefficient; (None, None) when ECC fails (no convergence, a
        singular system: flat or unrelated crops).
    """
    a, b = _grey(ref), _grey(img)
    if a.shape != b.shape:
        raise ValueError(f"crops differ in size: {a.shape} and {b.shape}")
    warp = np.eye(2, 3, dtype=np.float32)
    # start from phase correlation: ECC alone does not reach shifts of several px
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float64), b.astype(np.float64))
    if abs(dx) < a.shape[1] / 2 and abs(dy) < a.shape[0] / 2:
        warp[:, 2] = (dx, dy)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, eps)
    try:
        score, warp = cv2.findTransformECC(a, b, warp, _MOTIONS[motion], criteria, None, blur)
    except cv2.error:
        return None, None
    if not (np.isfinite(score) and np.isfinite(warp).all()):
        return None, None
    return warp.astype(np.float32), float(score)


def implausible(warp: np.ndarray, size: tuple[int, int]) -> str | None:
    """Why a warp is not a neighbouring frame of the same face (None when it is plausible).
    ``size``: (H, W) of the crops."""
    rot = math.degrees(math.atan2(float(warp[1, 0]), float(warp[0, 0])))
    scale = math.sqrt(abs(float(np.linalg.det(warp[:, :2]))))
    shift = math.hypot(float(warp[0, 2]), float(warp[1, 2]))
    if abs(rot) > MAX_ROTATION:
        return f"rotation {rot:.1f} deg"
    if abs(scale - 1) > MAX_SCALE:
        return f"scale {scale:.2f}"
    if shift > MAX_SHIFT * min(size):
        return f"shift {shift:.1f} px"
    return None


def _warp(img: Tensor, warp: np.ndarray) -> Tensor:
    """``img`` (3, H, W) resampled onto the reference grid; NaN where the warp reads outside."""
    h, w = img.shape[-2:]
    arr = img.detach().float().cpu().permute(1, 2, 0).numpy()
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(arr, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT101)
    inside = cv2.warpAffine(np.ones((h, w), np.float32), warp, (w, h),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out[inside < 0.999] = np.nan
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)


def fuse(crops: Sequence[Tensor] | Tensor, reference: int = 0, *, min_score: float = MIN_SCORE,
         motion: str = "euclidean", clip: float = 6.0
         ) -> tuple[Tensor, list[int], list[tuple[int, str]], list[float | None]]:
    """Register every crop to ``crops[reference]`` and average them robustly on its grid.

    Args:
        crops: N crops (3, H, W) of one face, float in [0, 1], all the same size.
        reference: index of the crop whose face is returned.
        min_score: crops whose ECC correlation is below this are rejected.
        motion: see :func:`register`.
        clip: per pixel, values further than ``clip`` robust noise scales (1.4826 x the median
            absolute deviation from the per-pixel median, over the whole burst) from the
            per-pixel median are left out (a local occlusion); on the synthetic bursts of
            benchmarks/multiframe.py (no outliers) 2.5 / 3 / 4 / 6 / none gave PSNR-Y
            28.72 / 28.74 / 28.76 / 28.77 / 28.78 dB.

    Returns:
        (fused crop (3, H, W) float32 in [0, 1], used indices (reference first), rejected
        (index, reason) pairs, ECC score per crop).
    """
    fused, used, rejected, scores, _ = _fuse(crops, reference, min_score=min_score,
                                             motion=motion, clip=clip)
    return fused, used, rejected, scores


def _fuse(crops: Sequence[Tensor] | Tensor, reference: int = 0, *, min_score: float = MIN_SCORE,
          motion: str = "euclidean", clip: float = 6.0
          ) -> tuple[Tensor, list[int], list[tuple[int, str]], list[float | None],
                     list[np.ndarray]]:
    """:func:`fuse`, plus the warp of every used crop (same order as ``used``)."""
    crops = list(crops)
    if not crops:
        raise ValueError("an empty burst")
    if not -len(crops) <= reference < len(crops):
        raise IndexError(f"reference {reference} out of a burst of {len(crops)}")
    reference %= len(crops)
    ref = crops[reference].detach().float().cpu()
    if ref.ndim != 3 or ref.shape[0] != 3:
        raise ValueError(f"expected crops (3, H, W), got {tuple(ref.shape)}")
    size = tuple(ref.shape[-2:])
    used, rejected, scores = [reference], [], [None] * len(crops)
    scores[reference] = 1.0
    stack = [ref]
    warps = [np.eye(2, 3, dtype=np.float32)]
    for i, crop in enumerate(crops):
        if i == reference:
            continue
        if tuple(crop.shape) != tuple(ref.shape):
            raise ValueError(f"crop {i} is {tuple(crop.shape)}, the reference {tuple(ref.shape)}")
        crop = crop.detach().float().cpu()
        warp, score = register(ref, crop, motion=motion)
        scores[i] = score
        if warp is None or score is None:
            rejected.append((i, "registration failed"))
            continue
        if score < min_score:
            rejected.append((i, f"ECC score {score:.3f} < {min_score}"))
            continue
        why = implausible(warp, size)
        if why:
            rejected.append((i, f"implausible warp: {why}"))
            continue
        used.append(i)
        warps.append(warp)
        stack.append(_warp(crop, warp))
    if len(stack) == 1:
        return ref.clamp(0, 1), used, rejected, scores, warps
    x = torch.stack(stack)  # (n, 3, H, W), NaN outside the warped crops
    med = x.nanmedian(dim=0).values
    dev = (x - med).abs()
    scale = 1.4826 * float(dev[torch.isfinite(dev)].median())
    keep = torch.isfinite(x) & (dev <= clip * scale + 1e-6)
    diff = torch.where(keep, x - ref, torch.zeros(()))
    fused = ref + diff.sum(0) / keep.sum(0).clamp_min(1)
    return fused.clamp(0, 1), used, rejected, scores, warps


def _hr_warp(warp: np.ndarray, scale: int) -> np.ndarray:
    """An LR-grid warp (:func:`register`) on the x``scale`` grid (pixel centres: X = s u +
    (s - 1) / 2)."""
    a, t = warp[:, :2].astype(np.float64), warp[:, 2].astype(np.float64)
    c = (scale - 1) / 2
    return np.concatenate([a, (scale * t + c - a @ [c, c])[:, None]], 1).astype(np.float32)


def back_project(image: Tensor, crops: Sequence[Tensor], warps: Sequence[np.ndarray], *,
                 iterations: int = 3, step: float = 0.5, sigma: float = 1.5,
                 down: str = "area", scale: int = 4) -> list[Tensor]:
    """Iterative back-projection (Irani & Peleg) of an x``scale`` estimate onto its LR frames.

    Every iteration simulates each LR crop from the estimate (warp by the crop's HR warp,
    Gaussian blur ``sigma`` HR px, downscale: ``cubic`` or ``area``), takes the residual
    observed - simulated, upsamples it bicubic, blurs it by ``sigma``, warps it back onto the
    reference grid and adds ``step`` x the mean over the crops (only where a crop covers).

    Returns the estimate after each iteration (``iterations`` tensors (3, sH, sW) in [0, 1]).
    """
    x = image.detach().float().cpu().permute(1, 2, 0).numpy().copy()
    hh, ww = x.shape[:2]
    obs = [c.detach().float().cpu().permute(1, 2, 0).numpy() for c in crops]
    hws = [_hr_warp(w, scale) for w in warps]
    interp = cv2.INTER_CUBIC if down == "cubic" else cv2.INTER_AREA
    h, w = obs[0].shape[:2]
    ones = np.ones((hh, ww), np.float32)
    out = []
    for _ in range(iterations):
        acc = np.zeros_like(x)
        wsum = np.zeros((hh, ww), np.float32)
        for o, m in zip(obs, hws, strict=True):
            sim = cv2.warpAffine(x, m, (ww, hh), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REFLECT101)
            sim = cv2.GaussianBlur(sim, (0, 0), sigma)
            sim = cv2.resize(sim, (w, h), interpolation=interp)
            r = cv2.resize(o - sim, (ww, hh), interpolation=cv2.INTER_CUBIC)
            r = cv2.GaussianBlur(r, (0, 0), sigma)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            acc += cv2.warpAffine(r, m, (ww, hh), flags=flags, borderMode=cv2.BORDER_CONSTANT)
            wsum += cv2.warpAffine(ones, m, (ww, hh), flags=flags,
                                   borderMode=cv2.BORDER_CONSTANT)
        x = np.clip(x + step * acc / np.maximum(wsum, 1e-3)[..., None], 0, 1)
        out.append(torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1))
    return out


def upscale_burst(crops: Sequence[Tensor] | Tensor, *, reference: int = 0, model: Any = None,
                  min_score: float = MIN_SCORE, motion: str = "euclidean",
                  lock_colors: float | None = COLOR_LOCK, tile: int = 256, overlap: int = 16,
                  device: Any = "cpu", dtype: Any = None, refine: int = REFINE) -> BurstResult:
    """x4 of ``crops[reference]`` using all the crops: :func:`fuse`, then the SR model.

    Args:
        crops: N crops (3, H, W) of one face from neighbouring frames (a list, or a
            (N, 3, H, W) tensor), float in [0, 1], all the same size.
        reference: index of the crop to super-resolve.
        model: as in :func:`facesr.upscale_face` (None: ``facesr-default`` when shipped).
        min_score, motion: see :func:`fuse`.
        lock_colors, tile, overlap, device, dtype: as in :func:`facesr.upscale_face`; the
            colour lock takes the fused crop's low frequencies.
        refine: iterations of :func:`back_project` (step 0.5, Gaussian sigma 1.5 HR px, area
            downscale) of the model's output onto the used crops; 0: none. Skipped when only
            the reference is used (one frame: back-projection puts its noise and JPEG back,
            -0.09 / -0.24 dB after 2 / 3 iterations). With refine on, N identical copies no
            longer give the single-frame output (they back-project like one frame); with
            ``refine=0`` they do exactly. On benchmarks/multiframe.py (10 faces, PSNR-Y vs
            refine=0) 1 / 2 / 3 / 4 / 5 iterations gave +0.29 / +0.42 / +0.47 / +0.48 /
            +0.48 dB with 8 frames (better on 10/10 faces), +0.68 dB at 3 with 2 frames and
            +0.38 dB with 4; ~0.03 s per iteration for 8 crops of 64 px.

    Returns:
        :class:`BurstResult`; ``.image`` float32 (3, 4H, 4W) in [0, 1].
    """
    from facesr import _model
    from facesr.infer.pipeline import upscale_face

    crops = list(crops)
    fused, used, rejected, scores, warps = _fuse(crops, reference, min_score=min_score,
                                                 motion=motion)
    net, dtype = _model(model, device, dtype)
    image = upscale_face(fused.to(device), net, tile=tile, overlap=overlap, device=device,
                         dtype=dtype, lock_colors=lock_colors)
    if refine and len(used) > 1:
        image = back_project(image, [crops[i] for i in used], warps,
                             iterations=refine)[-1].to(image)
    return BurstResult(image, used, rejected, scores, fused, warps)
