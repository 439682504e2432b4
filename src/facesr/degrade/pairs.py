"""LR/HR training pairs: target augmentation, per-pair seeding, and one pair from one HR image."""

from __future__ import annotations

import zlib

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from facesr.degrade.degradation import (
    DegradeConfig,
    DegradeParams,
    Pools,
    degrade,
    sample_degradation,
)

# every HR image is used as it is and bicubic-downscaled by 25%, 50% and 75% (method, sec. 1)
HR_FACTORS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)


def bicubic_resize(img: Tensor, size: tuple[int, int]) -> Tensor:
    """Antialiased bicubic resize (the same kernel as ``kernels.bicubic_kernel``).

    Shape: (3, H, W) -> (3, *size), clamped to [0, 1].
    """
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    out = F.interpolate(img.unsqueeze(0), size=size, mode="bicubic", antialias=True,
                        align_corners=False)
    return out[0].clamp(0, 1)


def variant_size(h: int, w: int, factor: float, scale: int = 4) -> tuple[int, int]:
    """Size of the HR image scaled by ``factor`` and cropped to a multiple of ``scale``."""
    sh, sw = round(h * factor), round(w * factor)
    return sh - sh % scale, sw - sw % scale


def hr_variant(img: Tensor, factor: float, scale: int = 4) -> Tensor:
    """The HR image bicubic-downscaled by ``factor``, cropped (bottom/right) to a multiple of s.

    Shape: (3, H, W) -> (3, H', W') with H', W' divisible by ``scale``.
    """
    h, w = img.shape[-2:]
    sh, sw = round(h * factor), round(w * factor)
    out = bicubic_resize(img, (sh, sw)) if factor != 1.0 else img
    return out[:, : sh - sh % scale, : sw - sw % scale]


def pair_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the run seed and the pair's name.

    Adding or removing other images never changes this pair, and a resumed run draws the same.
    """
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def make_pair(hr: Tensor, rng: np.random.Generator, pools: Pools, cfg: DegradeConfig
              ) -> tuple[Tensor, DegradeParams]:
    """Degrade one HR image (sides divisible by the scale) with freshly drawn parameters.

    Shape: hr (3, H, W) -> lr (3, H/s, W/s).
    """
    s = cfg.scale
    if hr.shape[-1] % s or hr.shape[-2] % s:
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not divisible by {s}")
    params = sample_degradation(rng, pools, cfg, (hr.shape[-2] // s, hr.shape[-1] // s))
    return degrade(hr, params), params

