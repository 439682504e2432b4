"""Colour handling and border crops shared by the full-reference metrics (torch, float64).

Every metric states its colour space with a ``color`` argument:

- ``"y"``: Y of YCbCr, ITU-R BT.601 studio range as MATLAB's ``rgb2ycbcr`` (16 + 65.481 R +
  128.553 G + 24.966 B on [0, 1] input), not rounded: the usual choice of SR papers
  (BasicSR's ``test_y_channel``);
- ``"gray"``: MATLAB's ``rgb2gray`` of the 8-bit image (inputs quantised to 8 bits, then
  round(0.298936 R + 0.587043 G + 0.114021 B)): what the published MATLAB reference values
  used (IQA-PyTorch's calibration notes: "we use rgb2gray as input of the MATLAB script");
- ``"rgb"``: the three channels as they are.

Values are returned on the 0-255 scale.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from facesr.metrics._matlab import GRAY_COEFFS

Color = Literal["y", "gray", "rgb"]
COLORS: tuple[str, ...] = ("y", "gray", "rgb")


def check_images(pred: Tensor, ref: Tensor | None = None, *, min_side: int = 1) -> None:
    """Validate (N, 3, H, W) inputs (and a same-shape reference)."""
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected an (N, 3, H, W) RGB batch, got shape {tuple(pred.shape)}")
    if ref is not None and ref.shape != pred.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and reference {tuple(ref.shape)} "
                         "differ in shape")
    if min(pred.shape[-2:]) < min_side:
        raise ValueError(f"image {pred.shape[-1]}x{pred.shape[-2]} px is smaller than the "
                         f"{min_side} px minimum of this metric")


def to_channels(x: Tensor, color: Color) -> Tensor:
    """RGB in [0, 1] -> the metric's channels on the 0-255 scale, float64.

    Shape: (N, 3, H, W) -> (N, 1, H, W) for ``"y"`` / ``"gray"``, (N, 3, H, W) for ``"rgb"``.
    """
    x = x.double()
    if color == "rgb":
        return x * 255.0
    if color == "y":
        return 16.0 + (65.481 * x[:, 0:1] + 128.553 * x[:, 1:2] + 24.966 * x[:, 2:3])
    if color == "gray":
        q = torch.floor(x.clamp(0, 1) * 255.0 + 0.5)
        w = torch.as_tensor(GRAY_COEFFS, dtype=q.dtype, device=q.device).view(1, 3, 1, 1)
        return torch.floor((q * w).sum(dim=1, keepdim=True) + 0.5).clamp(0, 255)
    raise ValueError(f"color must be one of {COLORS}, got {color!r}")


def crop(x: Tensor, border: int) -> Tensor:
    """Remove ``border`` pixels from each side.

    Shape: (..., H, W) -> (..., H - 2 border, W - 2 border).
    """
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return x
    if min(x.shape[-2:]) <= 2 * border:
        raise ValueError(f"image {x.shape[-1]}x{x.shape[-2]} px is too small to crop "
                         f"{border} px from each side")
    return x[..., border:-border, border:-border]


def color_shift(pred: Tensor, ref: Tensor, *, crop_border: int = 0) -> Tensor:
    """Per-channel mean colour difference ``mean(pred) - mean(ref)`` in 8-bit levels (signed):
    a tint or brightness change of the whole image, blind to detail.

    Shape: (N, 3, H, W) twice -> (N, 3), channels R, G, B.
    """
    check_images(pred, ref)
    p, r = crop(to_channels(pred, "rgb"), crop_border), crop(to_channels(ref, "rgb"), crop_border)
    return p.mean(dim=(-1, -2)) - r.mean(dim=(-1, -2))


def color_abs(pred: Tensor, ref: Tensor, *, crop_border: int = 0) -> Tensor:
    """The mean over R, G, B of ``|color_shift|`` (8-bit levels): how far the colour moved.

    Shape: (N, 3, H, W) twice -> (N,).
    """
    return color_shift(pred, ref, crop_border=crop_border).abs().mean(dim=1)
