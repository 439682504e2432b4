"""What each method is given: a synthetic LR made from a clean face, or a real LQ face as is.

Synthetic pairs follow the evaluation protocol of the method (``docs/method.md`` sec. 3, the
``synthetic`` degradation preset: a pool kernel, Gaussian noise sigma 8, JPEG 30). Each image's
degradation is drawn from a generator seeded by the run seed and the image's name only, so a
result never depends on which other images are in the run, their order, or ``--limit``.
"""

from __future__ import annotations

import cv2
import torch
from torch import Tensor

from facesr.degrade.degradation import DegradeConfig, DegradeParams, Pools
from facesr.degrade.pairs import hr_variant, make_pair, pair_rng


def synthetic_pair(hq: Tensor, name: str, *, seed: int, pools: Pools, cfg: DegradeConfig
                   ) -> tuple[Tensor, Tensor, DegradeParams]:
    """The HR reference (cropped bottom/right to a multiple of the scale) and its LR.

    Shape: hq (3, H, W) -> hr (3, H', W'), lr (3, H'/s, W'/s) with H' = H - H % s.

    Raises:
        ValueError: a side shorter than the scale (no LR pixel to make).
    """
    s = cfg.scale
    if min(hq.shape[-2:]) < s:
        raise ValueError(f"image {hq.shape[-1]}x{hq.shape[-2]} px is smaller than the x{s} "
                         "scale")
    hr = hr_variant(hq, 1.0, s)
    lr, params = make_pair(hr, pair_rng(seed, name), pools, cfg)
    return hr, lr, params


def shrink(img: Tensor, max_side: int | None) -> Tensor:
    """Area-downscale so the longer side is at most ``max_side`` (None or small enough: as is).

    Shape: (3, H, W) -> (3, h, w), aspect ratio kept, values rounded to 8 bits like a file.
    """
    h, w = img.shape[-2:]
    if max_side is None or max(h, w) <= max_side:
        return img
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    arr = cv2.resize(img.permute(1, 2, 0).numpy(), size, interpolation=cv2.INTER_AREA)
    out = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    return torch.round(out.clamp(0, 1) * 255.0) / 255.0
