"""JPEG compression artefacts (the ``c`` of the degradation model), through OpenCV's libjpeg."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor


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
