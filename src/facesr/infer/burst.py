"""Burst fusion: super-resolve one face crop x4 with the help of the same face in neighbouring
frames (issue 17).

Every crop is registered to the reference crop on the LR grid (phase correlation for the
integer-ish start, then OpenCV's ECC, euclidean by default, on grey crops with a small Gaussian
pre-blur). Frames that do not register are rejected (ECC failure, correlation under
``min_score``, or an implausible warp: large rotation, scale or shift: blinks, turns,
occlusion, another face). A crop box fixed in the frame holds two motions, the face's and the
scene's (still, for a fixed camera), so each used frame offers up to three candidate warps
(:data:`CANDIDATES`): the whole-crop ECC warp, no motion (the still scene) and an ECC warp of
the crop's centre (the face). Per pixel, the candidate whose warped frame is locally closest to
the reference is used, weighted down to 0 as that local difference grows past the noise
(:func:`_robust_weights`): what no candidate aligns is left to the reference frame. The
weighted average goes through the single-frame pipeline
(:func:`facesr.infer.pipeline.upscale_face`; ``burst_model`` of :func:`upscale_burst` for a
model of its own, e.g. one trained on fused crops with ``data.burst``); its output is then
refined by a few iterations of iterative back-projection onto every used frame, with the same
candidates and weights (:func:`back_project`, ``refine`` of :func:`upscale_burst`).

The average is taken as ``reference + sum(w * (aligned - reference)) / (1 + sum(w))``, so a burst
of identical crops fuses to exactly the reference and gives exactly the single-frame output with
``refine=0``.

Measured on benchmarks/multiframe.py's bursts of the 20 first sharp-val faces (8 frames,
facesr-default, refine 3; PSNR-Y gain over single-frame): the whole-crop ECC warp alone, plain
mean, +1.18 dB without a background and +0.40 dB with a still scene behind the moving face
(``--background``); with the three candidates and robust weights +1.08 / +0.72, and +1.13 /
+0.69 with :data:`SWITCH` 2 (kept: real crops hold a scene).

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
# candidate warps of a used frame (module docstring): whole-crop ECC, no motion, centre ECC
CANDIDATES = ("global", "static", "face")
FACE_RADIUS = 0.35  # the "face" candidate registers the central disc of this radius (x side)
# robust weight 1 - (d - ROBUST_AT) / ROBUST_SPAN, clipped to [0, 1], where d is the local RMS
# luma difference from the reference in units of one frame's luma noise (_robust_weights)
ROBUST_AT, ROBUST_SPAN, ROBUST_SIGMA = 3.0, 3.0, 1.5
# another candidate replaces the whole-crop warp at a pixel only where its local squared
# difference is under 1 / SWITCH of that warp's (noise alone should not flip the choice)
SWITCH = 2.0
_MOTIONS = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
            "affine": cv2.MOTION_AFFINE}


@dataclass
class BurstResult:
    """``image``: the x4 of the reference crop (3, 4H, 4W); ``used``: indices of the crops that
    went into the fusion (the reference first); ``rejected``: (index, reason) per left-out
    crop; ``scores``: ECC correlation per crop (1.0 for the reference, None when ECC failed);
    ``fused``: the fused LR crop (3, H, W) given to the network; ``warps``: the LR-grid warp
    (:func:`register`) of every used crop, in ``used``'s order. ``image`` was made from the
    fused crop (by ``burst_model`` of :func:`upscale_burst`, when one is given) when ``used``
    holds more than the reference."""

    image: Tensor
    used: list[int]
    rejected: list[tuple[int, str]]
    scores: list[float | None] = field(default_factory=list)
    fused: Tensor | None = None
    warps: list[np.ndarray] = field(default_factory=list)
    # (crop index, LR warp, LR weight map on the reference grid): the candidate views that
    # went into the fusion and back-projection (module docstring), the reference first
    views: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)


def _grey(img: Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) tensor or (H, W) / (H, W, 3) array -> float32 (H, W) luma."""
    if isinstance(img, Tensor):
        img = img.detach().float().cpu().permute(1, 2, 0).numpy() if img.ndim == 3 \
            else img.detach().float().cpu().numpy()
    return luma(img) if np.ndim(img) == 3 else np.ascontiguousarray(img, np.float32)


def register(ref: Tensor | np.ndarray, img: Tensor | np.ndarray, *, motion: str = "euclidean",
             blur: int = 5, iterations: int = 100, eps: float = 1e-6,
             radius: float | None = None) -> tuple[np.ndarray | None, float | None]:
    """Sub-pixel registration of ``img`` to ``ref`` by ECC.

    Args:
        ref, img: crops of the same size: (3, H, W) tensors, or grey / RGB numpy arrays.
        motion: ``translation``, ``euclidean`` or ``affine``.
        blur: Gaussian pre-blur window of ECC (odd px; 1 = none).
        iterations, eps: ECC stopping criteria.
        radius: register only the central disc of this radius (a fraction of each side) of
            ``ref``; None: the whole crop.

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
    mask = None
    if radius is not None:
        h, w = a.shape
        y, x = np.mgrid[0:h, 0:w]
        mask = ((((x - (w - 1) / 2) / (radius * w)) ** 2
                 + ((y - (h - 1) / 2) / (radius * h)) ** 2) <= 1).astype(np.uint8)
    try:
        score, warp = cv2.findTransformECC(a, b, warp, _MOTIONS[motion], criteria, mask, blur)
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
         motion: str = "euclidean", robust: bool = True
         ) -> tuple[Tensor, list[int], list[tuple[int, str]], list[float | None]]:
    """Register every crop to ``crops[reference]`` and average them robustly on its grid.

    Args:
        crops: N crops (3, H, W) of one face, float in [0, 1], all the same size.
        reference: index of the crop whose face is returned.
        min_score: crops whose ECC correlation is below this are rejected.
        motion: see :func:`register`.
        robust: per pixel, the best of the candidate warps, weighted by how well it aligns
            (module docstring); False: the plain mean of the whole-crop ECC alignments.

    Returns:
        (fused crop (3, H, W) float32 in [0, 1], used indices (reference first), rejected
        (index, reason) pairs, ECC score per crop).
    """
    f = _fuse(crops, reference, min_score=min_score, motion=motion, robust=robust)
    return f.fused, f.used, f.rejected, f.scores


@dataclass
class _Fusion:
    fused: Tensor
    used: list[int]
    rejected: list[tuple[int, str]]
    scores: list[float | None]
    warps: list[np.ndarray]  # the whole-crop ECC warp of every used crop (``used`` order)
    # (crop index, warp, LR weight map (H, W) on the reference grid): every candidate warp
    # that carries weight somewhere, the reference first (weight 1): back_project's input
    views: list[tuple[int, np.ndarray, np.ndarray]]


def _robust_weights(errors: np.ndarray, scale: float) -> np.ndarray:
    """Per pixel, weight of each candidate (C, H, W) from its local squared luma difference
    to the reference (``errors``, inf where it has no data; the whole-crop warp first): only
    the smallest candidate counts (the others' errors scaled by :data:`SWITCH`), with weight
    1 - (d - ROBUST_AT) / ROBUST_SPAN clipped to [0, 1], d = sqrt(error) / ``scale`` (one
    frame's luma noise)."""
    best = (errors * np.r_[1.0, [SWITCH] * (len(errors) - 1)][:, None, None]).argmin(0)
    d = np.sqrt(np.where(np.isfinite(errors), errors, 1e12)) / max(scale, 1e-4)
    w = np.clip(1 - (d - ROBUST_AT) / ROBUST_SPAN, 0, 1).astype(np.float32)
    return w * (best[None] == np.arange(len(errors))[:, None, None])


def _fuse(crops: Sequence[Tensor] | Tensor, reference: int = 0, *, min_score: float = MIN_SCORE,
          motion: str = "euclidean", robust: bool = True) -> _Fusion:
    """:func:`fuse`, with the warps and weighted views :func:`back_project` needs."""
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
    warps = [np.eye(2, 3, dtype=np.float32)]
    cands: list[list[tuple[np.ndarray, Tensor]]] = []  # per used crop: (warp, aligned)
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
        options = [warp]
        if robust:
            options.append(np.eye(2, 3, dtype=np.float32))  # the still scene
            face_warp, _ = register(ref, crop, motion=motion, radius=FACE_RADIUS)
            if face_warp is not None and implausible(face_warp, size) is None:
                options.append(face_warp)
        cands.append([(w, _warp(crop, w)) for w in options])
    ones = np.ones(size, np.float32)
    views = [(reference, warps[0], ones)]
    if not cands:
        return _Fusion(ref.clamp(0, 1), used, rejected, scores, warps, views)
    if not robust:
        x = torch.stack([ref] + [c[0][1] for c in cands])  # NaN outside the warped crops
        keep = torch.isfinite(x)
        diff = torch.where(keep, x - ref, torch.zeros(()))
        fused = ref + diff.sum(0) / keep.sum(0).clamp_min(1)
        views += [(i, w, ones) for i, w in zip(used[1:], warps[1:], strict=True)]
        return _Fusion(fused.clamp(0, 1), used, rejected, scores, warps, views)
    ref_y = _grey(ref)
    errs, diffs = [], []
    for options in cands:
        e = []
        for k, (_, a) in enumerate(options):
            inside = torch.isfinite(a).all(0).numpy()
            dy = _grey(torch.nan_to_num(a)) - ref_y
            if k == 0:  # the whole-crop alignment
                diffs.append(np.abs(dy[inside]))
            e.append(np.where(inside, cv2.GaussianBlur(dy ** 2, (0, 0), ROBUST_SIGMA), np.inf))
        errs.append(np.stack(e))
    # one frame's luma noise: the robust spread of the whole-crop alignments' differences
    # (a difference of two frames carries sqrt(2) times one frame's noise)
    diffs = np.concatenate(diffs)
    scale = 1.4826 * float(np.median(diffs)) / math.sqrt(2) if diffs.size else 1.0
    acc, wsum = torch.zeros_like(ref), torch.ones(size)
    for i, options, e in zip(used[1:], cands, errs, strict=True):
        for (w, a), wt in zip(options, _robust_weights(e, scale), strict=True):
            if not wt.any():
                continue
            t = torch.from_numpy(wt)
            acc += torch.nan_to_num(a - ref) * t
            wsum += t
            views.append((i, w, wt))
    fused = ref + acc / wsum
    return _Fusion(fused.clamp(0, 1), used, rejected, scores, warps, views)


def _hr_warp(warp: np.ndarray, scale: int) -> np.ndarray:
    """An LR-grid warp (:func:`register`) on the x``scale`` grid (pixel centres: X = s u +
    (s - 1) / 2)."""
    a, t = warp[:, :2].astype(np.float64), warp[:, 2].astype(np.float64)
    c = (scale - 1) / 2
    return np.concatenate([a, (scale * t + c - a @ [c, c])[:, None]], 1).astype(np.float32)


def back_project(image: Tensor, crops: Sequence[Tensor], warps: Sequence[np.ndarray], *,
                 iterations: int = 3, step: float = 0.5, sigma: float = 1.5,
                 down: str = "area", scale: int = 4,
                 weights: Sequence[np.ndarray | None] | None = None) -> list[Tensor]:
    """Iterative back-projection (Irani & Peleg) of an x``scale`` estimate onto its LR frames.

    Every iteration simulates each LR crop from the estimate (warp by the crop's HR warp,
    Gaussian blur ``sigma`` HR px, downscale: ``cubic`` or ``area``), takes the residual
    observed - simulated, upsamples it bicubic, blurs it by ``sigma``, warps it back onto the
    reference grid and adds ``step`` x the mean over the crops (only where a crop covers).
    ``weights``: per crop, None or an LR weight map (H, W) on the reference grid (upsampled
    bilinearly): the crop's residual counts that much there (a crop may appear more than once,
    with different warps and weights: :func:`upscale_burst`'s candidate views).

    Returns the estimate after each iteration (``iterations`` tensors (3, sH, sW) in [0, 1]).
    """
    x = image.detach().float().cpu().permute(1, 2, 0).numpy().copy()
    hh, ww = x.shape[:2]
    obs = [c.detach().float().cpu().permute(1, 2, 0).numpy() for c in crops]
    hws = [_hr_warp(w, scale) for w in warps]
    interp = cv2.INTER_CUBIC if down == "cubic" else cv2.INTER_AREA
    h, w = obs[0].shape[:2]
    ones = np.ones((hh, ww), np.float32)
    whr = [None if wt is None else cv2.resize(np.asarray(wt, np.float32), (ww, hh),
                                              interpolation=cv2.INTER_LINEAR)
           for wt in (weights if weights is not None else [None] * len(obs))]
    if len(whr) != len(obs):
        raise ValueError(f"{len(whr)} weight maps for {len(obs)} crops")
    out = []
    for _ in range(iterations):
        acc = np.zeros_like(x)
        wsum = np.zeros((hh, ww), np.float32)
        for o, m, wt in zip(obs, hws, whr, strict=True):
            sim = cv2.warpAffine(x, m, (ww, hh), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REFLECT101)
            sim = cv2.GaussianBlur(sim, (0, 0), sigma)
            sim = cv2.resize(sim, (w, h), interpolation=interp)
            r = cv2.resize(o - sim, (ww, hh), interpolation=cv2.INTER_CUBIC)
            r = cv2.GaussianBlur(r, (0, 0), sigma)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            back = cv2.warpAffine(r, m, (ww, hh), flags=flags, borderMode=cv2.BORDER_CONSTANT)
            cover = cv2.warpAffine(ones, m, (ww, hh), flags=flags,
                                   borderMode=cv2.BORDER_CONSTANT)
            if wt is not None:
                back, cover = back * wt[..., None], cover * wt
            acc += back
            wsum += cover
        x = np.clip(x + step * acc / np.maximum(wsum, 1e-3)[..., None], 0, 1)
        out.append(torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1))
    return out


def upscale_burst(crops: Sequence[Tensor] | Tensor, *, reference: int = 0, model: Any = None,
                  burst_model: Any = None, min_score: float = MIN_SCORE, motion: str = "euclidean",
                  lock_colors: float | None = COLOR_LOCK, tile: int = 256, overlap: int = 16,
                  device: Any = "cpu", dtype: Any = None, refine: int = REFINE,
                  robust: bool = True) -> BurstResult:
    """x4 of ``crops[reference]`` using all the crops: :func:`fuse`, then the SR model.

    Args:
        crops: N crops (3, H, W) of one face from neighbouring frames (a list, or a
            (N, 3, H, W) tensor), float in [0, 1], all the same size.
        reference: index of the crop to super-resolve.
        model: as in :func:`facesr.upscale_face` (None: ``facesr-default`` when shipped): the
            model for the reference crop alone (when no other crop is used).
        burst_model: the model for a fused crop (two or more crops used), as ``model``; None:
            ``model``. For a model trained on fused crops (``data.burst``,
            configs/cpu-burst.yaml): on the sharp-val bursts of benchmarks/multiframe.py one
            such fine-tune of facesr-default gained +0.41 dB over facesr-default before
            back-projection but only +0.06 after it (and -0.01 over a still scene), so none
            is shipped.
        min_score, motion, robust: see :func:`fuse`.
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
        :class:`BurstResult`; ``.image`` float32 (3, 4H, 4W) in [0, 1], made from a fused
        crop when ``.used`` holds more than the reference.
    """
    from facesr import _model
    from facesr.infer.pipeline import upscale_face

    crops = list(crops)
    f = _fuse(crops, reference, min_score=min_score, motion=motion, robust=robust)
    fused, used, rejected, scores, warps = f.fused, f.used, f.rejected, f.scores, f.warps
    if len(used) > 1 and burst_model is not None:
        model = burst_model
    net, dtype = _model(model, device, dtype)
    image = upscale_face(fused.to(device), net, tile=tile, overlap=overlap, device=device,
                         dtype=dtype, lock_colors=lock_colors)
    if refine and len(used) > 1:
        image = back_project(image, [crops[i] for i, _, _ in f.views],
                             [w for _, w, _ in f.views], weights=[wt for _, _, wt in f.views],
                             iterations=refine)[-1].to(image)
    return BurstResult(image, used, rejected, scores, fused, warps, f.views)
