"""Which stills of a camera's footage the profile is estimated from.

``facesr adapt`` reads videos, frames and folders from one camera. It does not need every
frame: consecutive frames carry the same blur and noise. :func:`plan` spreads a number of
candidate stills over the footage (each file gets a share proportional to its frame count;
an image is one frame; a video's share is spaced evenly from its first to its last frame),
and :func:`sample` decodes them and sorts them out:

- unreadable files are reported (one line naming the file) and the rest goes on;
- a still *too flat* to estimate a kernel from (a dark, blank or out-of-focus frame: the mean
  luma gradient after a light Gaussian smoothing, which keeps noise from counting as detail,
  under ``FLAT_GRADIENT`` levels per pixel) is skipped for kernels, not for noise (flat
  regions are where noise is measured);
- a near-duplicate of a still already kept (``facesr.data.dedup``'s signature distance under
  its threshold: a camera that saw nothing move) is skipped for kernels.

Every candidate's fate is returned (``Sampled.log``) so the report can list what was used and
what was skipped, and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facesr.data.dedup import DUPLICATE_DISTANCE, signature
from facesr.io import (
    InputError,
    expand_inputs,
    iter_video_frames_timed,
    kind_of,
    luma,
    read_image_rgba,
    video_info,
)

FLAT_GRADIENT = 1.5  # mean |grad| of the smoothed luma (0-255 levels) below this: too flat
SMOOTH_SIGMA = 1.0  # px; the smoothing before the gradient


@dataclass
class Still:
    path: Path
    frame: int | None  # None: an image file
    image: np.ndarray  # float RGB HWC in [0, 1]
    detail: float  # mean smoothed-luma gradient, 0-255 levels per pixel

    @property
    def key(self) -> str:
        return str(self.path) if self.frame is None else f"{self.path}#{self.frame}"


@dataclass
class Sampled:
    kernel_stills: list[Still] = field(default_factory=list)  # for KernelGAN
    noise_stills: list[Still] = field(default_factory=list)  # every readable candidate
    log: list[dict] = field(default_factory=list)  # one per candidate: key, use, reason
    errors: list[str] = field(default_factory=list)  # one line per unreadable file


def detail(img: np.ndarray) -> float:
    """Mean gradient magnitude of the lightly smoothed luma, in 0-255 levels per pixel."""
    y = cv2.GaussianBlur(luma(img).astype(np.float32) * 255.0, (0, 0), SMOOTH_SIGMA)
    gy, gx = np.gradient(y)
    return float(np.mean(np.hypot(gx, gy)))


def plan(files: Sequence[Path], candidates: int) -> tuple[dict[Path, list[int | None]],
                                                          list[str]]:
    """Up to ``candidates`` stills spread over ``files``: path -> frame indices (``[None]`` for
    an image). Files whose length cannot be read are left out, with an error line."""
    lengths: dict[Path, int] = {}
    errors: list[str] = []
    for f in files:
        if kind_of(f) == "video":
            try:
                lengths[f] = max(video_info(f).frames, 1)
            except InputError as e:
                errors.append(str(e))
        else:
            lengths[f] = 1
    total = sum(lengths.values())
    chosen: dict[Path, list[int | None]] = {}
    for f, n in lengths.items():
        if kind_of(f) != "video":
            chosen[f] = [None]
            continue
        k = max(1, min(n, round(candidates * n / max(total, 1))))
        chosen[f] = sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)})
    return chosen, errors


def _read(path: Path, frames: list[int | None]) -> list[tuple[int | None, np.ndarray]]:
    if frames == [None]:
        if kind_of(path) != "image":
            raise InputError(path, f"not an image or video file (suffix {path.suffix or 'none'})")
        return [(None, np.ascontiguousarray(read_image_rgba(path)[..., :3]))]
    wanted = set(frames)
    got = []
    for idx, _, frame in iter_video_frames_timed(path, want=lambda i: i in wanted):
        if frame is not None and idx in wanted:
            got.append((idx, frame))
        if len(got) == len(wanted):
            break
    if not got:
        raise InputError(path, "no frame could be decoded")
    return got


def sample(sources: Sequence[str | Path], *, kernel_stills: int = 8, candidates: int = 48,
           min_side: int = 64) -> Sampled:
    """Decode ``candidates`` stills spread over the footage; keep up to ``kernel_stills`` of
    them, spread over the footage, that are detailed enough and not near-duplicates of one
    another for kernel estimation; every readable still serves the noise pool.

    Raises:
        InputError: a source path that does not exist (nothing else: bad files are logged).
    """
    files = expand_inputs(sources)
    chosen, errors = plan(files, candidates)
    out = Sampled(errors=list(errors))
    stills: list[Still] = []
    for path, frames in chosen.items():
        try:
            read = _read(path, frames)
        except InputError as e:
            out.errors.append(str(e))
            continue
        for frame, img in read:
            s = Still(path, frame, img, detail(img))
            if min(img.shape[:2]) < min_side:
                out.log.append({"still": s.key, "use": "skipped",
                                "reason": f"smaller than {min_side} px"})
                continue
            stills.append(s)
    out.noise_stills = stills
    # kernels: visit the stills in an order that spreads over the footage (every k-th first)
    order = _spread(len(stills))
    sigs: list[np.ndarray] = []
    fate: dict[int, dict] = {}
    for i in order:
        s = stills[i]
        if s.detail < FLAT_GRADIENT:
            fate[i] = {"use": "noise only", "reason": f"too flat for a kernel (detail "
                                                      f"{s.detail:.2f} < {FLAT_GRADIENT})"}
            continue
        sig = signature(s.image)
        near = [j for j, t in enumerate(sigs)
                if math.sqrt(max(2.0 - 2.0 * float(sig @ t), 0.0)) < DUPLICATE_DISTANCE]
        if near:
            fate[i] = {"use": "noise only", "reason": "near-duplicate of a still already "
                                                      "used for a kernel"}
            continue
        if len(out.kernel_stills) >= kernel_stills:
            fate[i] = {"use": "noise only", "reason": f"kernel stills already {kernel_stills}"}
            continue
        sigs.append(sig)
        out.kernel_stills.append(s)
        fate[i] = {"use": "kernel + noise", "reason": f"detail {s.detail:.2f}"}
    out.kernel_stills.sort(key=lambda s: stills.index(s))
    out.log.extend({"still": stills[i].key, **fate[i]} for i in range(len(stills)))
    return out


def _spread(n: int) -> list[int]:
    """0..n-1 in an order whose every prefix is spread over the range (bit-reversal-like:
    first, last, middle, quarters...)."""
    if n <= 0:
        return []
    seen: list[int] = []
    step = n
    while step >= 1:
        for i in range(0, n, step):
            if i not in seen:
                seen.append(i)
        if n - 1 not in seen:
            seen.append(n - 1)
        step //= 2
    return seen
