"""Inputs stored larger than their true resolution.

``upsampled_factor``: the luma of an input whose longer side is above 128 px is area-downscaled
by k = 2, 3, 4, 6, 8, 12 and cubic-upscaled back; when the x2 round trip changes it by less than
``UPSAMPLED_DB`` (45 dB PSNR), the input carries no detail at its stored size: one warning line
(``_looks_upsampled``) names the file, the likely upsampling factor (the k after which the round
trips' PSNR falls fastest) and the ``--max-side`` that would undo it, and the record holds
``input.looks_upsampled``. Videos are measured on their first frame.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from facesr.cli._common import err
from facesr.io import luma

UPSAMPLED_DB = 45.0  # a x2 down-and-up round trip changes an upsampled input by less than this
UPSAMPLED_MIN_SIDE = 128  # inputs whose longer side is at most this are not measured
_FACTORS = (2, 3, 4, 6, 8, 12)  # the round trips measured, in order


def upsampled_factor(arr: np.ndarray) -> tuple[int, dict[int, float]]:
    """How much an image looks upsampled: (k, {k: dB}).

    The luma is area-downscaled by each k of ``_FACTORS`` (while 16 px or more remain) and
    cubic-upscaled back; {k: dB} is the PSNR of each round trip. When the x2 one stays within
    ``UPSAMPLED_DB`` the image carries no detail at its stored size, and k is its likely
    upsampling factor: the k after which the PSNR falls fastest (per octave of k), since round
    trips up to the true factor lose little and the next one loses real detail. Else k = 1.
    Images whose longer side is at most ``UPSAMPLED_MIN_SIDE`` are not measured (1, {}); of
    larger ones the central 1024 px at most. ``arr``: float RGB HWC in [0, 1]."""
    h, w = arr.shape[:2]
    if max(h, w) <= UPSAMPLED_MIN_SIDE:
        return 1, {}
    top, left = max(0, (h - 1024) // 2), max(0, (w - 1024) // 2)
    rgb = arr[top:top + 1024, left:left + 1024]
    y = luma(rgb)
    h, w = y.shape
    measured: dict[int, float] = {}
    for k in _FACTORS:
        if min(h, w) / k < 16:  # too few pixels left to tell
            break
        down = cv2.resize(y, (max(1, round(w / k)), max(1, round(h / k))),
                          interpolation=cv2.INTER_AREA)
        back = cv2.resize(down, (w, h), interpolation=cv2.INTER_CUBIC)
        mse = float(np.mean((y - back) ** 2))
        measured[k] = round(10 * math.log10(1 / max(mse, 1e-10)), 1)
    if measured.get(2, 0.0) < UPSAMPLED_DB:
        return 1, measured
    ks = sorted(measured)
    if len(ks) < 2:
        return 2, measured
    steps = [(measured[a] - measured[b]) / math.log2(b / a)
             for a, b in zip(ks, ks[1:], strict=False)]
    return ks[int(np.argmax(steps))], measured


def _looks_upsampled(path: Path, arr: np.ndarray, max_side: int | None) -> dict | None:
    """Measure an input (``upsampled_factor``); when it looks upsampled, print one warning
    line naming it and return what the record holds, else None."""
    factor, measured = upsampled_factor(arr)
    if factor < 2:
        return None
    h, w = arr.shape[:2]
    side = max(1, round(max(h, w) / factor))
    err.print(f"warning: {path}: looks upsampled about x{factor}: its detail would fit in "
              f"about {max(1, round(w / factor))}x{max(1, round(h / factor))} px of its {w}x{h} "
              f"(halving and restoring it changes it by only {measured[2]:g} dB PSNR; sharp "
              f"photos: about 41 dB or less), and x4 of it costs about {factor * factor}x what "
              f"x4 of that would; try --max-side {side}"
              + ("" if max_side is None else f" (now {max_side})"),
              soft_wrap=True, markup=False)
    return {"factor": factor, "roundtrip_psnr_db": {str(k): v for k, v in measured.items()},
            "suggested_max_side": side}
