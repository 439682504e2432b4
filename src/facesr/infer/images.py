"""The image kinds the Python API takes, checked and turned into the tensor contract and back.

``facesr.upscale_face`` / ``upscale_frame`` accept:

- torch tensors (3, H, W) or (N, 3, H, W): float in [0, 1], or uint8 in 0-255;
- numpy arrays (H, W, 3), RGB: float in [0, 1], or uint8;
- PIL images (any 8-bit mode, converted to RGB; alpha is dropped).

Anything else (another type, dtype, shape or channel count, NaN or infinite values, floats
outside [0, 1] beyond :data:`TOLERANCE`) is a ``ValueError`` whose one-line message says
what to do; nothing is fixed silently but the clamping of rounding-sized excursions.

>>> import numpy as np
>>> batch, kind = to_batch(np.zeros((5, 7, 3), np.uint8))
>>> tuple(batch.shape), kind.kind, kind.uint8
((1, 3, 5, 7), 'numpy', True)
>>> from_batch(batch, kind).shape
(5, 7, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

TOLERANCE = 1e-3  # float values this far outside [0, 1] are clamped (resampling overshoot)
_PIL_REFUSED = ("I", "F")  # 32-bit int / float modes (and I;16*): no faithful 8-bit RGB


@dataclass(frozen=True)
class ImageKind:
    """What the caller gave, so that the result comes back as the same kind."""

    kind: Literal["tensor", "numpy", "pil"]
    batched: bool  # a (N, 3, H, W) tensor
    uint8: bool  # 0-255 integers in, 0-255 integers out


def to_batch(image: Any, name: str = "image") -> tuple[Tensor, ImageKind]:
    """Check an API image and turn it into float32 (N, 3, H, W) in [0, 1].

    Args:
        image: a tensor, numpy array or PIL image (see the module docstring).
        name: the argument's name, for messages.

    Returns:
        ``(batch, kind)``; a tensor stays on its device, others are on the CPU.

    Raises:
        ValueError: an unsupported type, dtype, shape or range; the message says what to do.
    """
    if isinstance(image, Tensor):
        return _tensor(image, name)
    if isinstance(image, np.ndarray):
        return _numpy(image, name)
    if isinstance(image, Image.Image):
        return _pil(image, name)
    raise ValueError(f"{name} must be a torch.Tensor (3, H, W) / (N, 3, H, W), a numpy array "
                     f"(H, W, 3) or a PIL image, got {type(image).__name__}")


def from_batch(batch: Tensor, kind: ImageKind) -> Any:
    """The result as the kind the caller gave: the inverse of :func:`to_batch`.

    Tensors: float32 (or uint8 for uint8 input), (3, H, W) or (N, 3, H, W); numpy: (H, W, 3)
    float32 in [0, 1] or uint8; PIL: an RGB image.
    """
    out = batch if kind.batched else batch[0]
    if kind.kind == "tensor":
        return _quantize(out) if kind.uint8 else out
    arr = out.detach().cpu().permute(1, 2, 0)
    if kind.kind == "numpy" and not kind.uint8:
        return arr.float().numpy().copy()
    arr = _quantize(arr).numpy()
    return arr if kind.kind == "numpy" else Image.fromarray(arr)


def _quantize(t: Tensor) -> Tensor:
    return (t.clamp(0, 1) * 255.0).round().to(torch.uint8)


def _tensor(t: Tensor, name: str) -> tuple[Tensor, ImageKind]:
    if t.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a (3, H, W) or (N, 3, H, W) tensor, got shape "
                         f"{tuple(t.shape)}")
    if t.shape[-3] != 3:
        hint = ("; it looks like (H, W, 3): use image.permute(2, 0, 1)"
                if t.ndim == 3 and t.shape[-1] == 3 else "")
        raise ValueError(f"{name}: expected 3 (RGB) channels in dimension -3, got shape "
                         f"{tuple(t.shape)}{hint}")
    batch = t if t.ndim == 4 else t[None]
    uint8 = t.dtype == torch.uint8
    return _finish(batch, uint8, name), ImageKind("tensor", t.ndim == 4, uint8)


def _numpy(a: np.ndarray, name: str) -> tuple[Tensor, ImageKind]:
    if a.ndim != 3 or a.shape[2] != 3:
        hint = ("; it looks like (3, H, W): use arr.transpose(1, 2, 0)"
                if a.ndim == 3 and a.shape[0] == 3 else "")
        raise ValueError(f"{name}: expected an RGB numpy array (H, W, 3), got shape "
                         f"{a.shape}{hint}")
    uint8 = a.dtype == np.uint8
    if not uint8 and not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: numpy dtype {a.dtype} is not supported; give uint8 (0-255) "
                         "or float in [0, 1]")
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
    return _finish(t, uint8, name), ImageKind("numpy", False, uint8)


def _pil(im: Image.Image, name: str) -> tuple[Tensor, ImageKind]:
    if im.mode in _PIL_REFUSED or im.mode.startswith("I;16"):
        raise ValueError(f"{name}: PIL mode {im.mode!r} (16/32-bit) has no faithful 8-bit RGB; "
                         "read the file with facesr.io.read_image")
    arr = np.asarray(im.convert("RGB"))
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]
    return _finish(t, True, name), ImageKind("pil", False, True)


def _finish(batch: Tensor, uint8: bool, name: str) -> Tensor:
    """Check dtype, size and range; return float32 in [0, 1]."""
    if min(batch.shape) < 1:
        raise ValueError(f"{name} is empty (shape {tuple(batch.shape)})")
    if uint8:
        return batch.float() / 255.0
    if not batch.is_floating_point():
        raise ValueError(f"{name}: dtype {batch.dtype} is not supported; give float values in "
                         "[0, 1] or uint8 (0-255)")
    x = batch.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    lo, hi = (float(v) for v in torch.aminmax(x))
    if hi > 1 + TOLERANCE:
        why = ": looks like 0-255: divide by 255" if hi > 2 else ""
        raise ValueError(f"{name}: values up to {hi:.4g} are outside [0, 1]{why}")
    if lo < -TOLERANCE:
        raise ValueError(f"{name}: negative values (down to {lo:.4g}); images are in [0, 1] "
                         "(from [-1, 1] use (x + 1) / 2)")
    return x.clamp(0, 1)

