"""Tiled super-resolution: any image size at a memory cost bounded by the tile size.

The image is cut into a grid of near-equal *core* tiles of at most ``tile`` px. Each core is
run through the network together with ``overlap`` px of context on every side (less at the
image border, where the context is the image's own edge, as in whole-image inference), and only
the core's part of the output is kept. When ``overlap`` covers the network's receptive field the
result equals whole-image inference up to float rounding; with less, far context is cut off
and the tiles differ slightly from whole-image inference near their seams.

Receptive-field radius of an x4 RRDBNet in input pixels: ``15 * num_block + 4`` (19 for one
block, 349 for ESRGAN's 23), but the influence of far pixels decays fast: 16 to 32 px of
overlap give no visible seams in practice.

>>> import torch
>>> up = lambda x: x.repeat_interleave(4, -1).repeat_interleave(4, -2)  # nearest x4
>>> upscale_tiled(torch.rand(3, 37, 50), up, tile=16, overlap=4).shape
torch.Size([3, 148, 200])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Runner = Callable[[Tensor], Tensor]  # (1, 3, h, w) -> (1, 3, scale*h, scale*w)


def receptive_radius(num_block: int) -> int:
    """Input pixels of context on each side that an x4 RRDBNet output pixel depends on.

    conv_first, 15 convs per RRDB and conv_body at 1x (``15 * num_block + 2``), then
    conv_up1 at 2x, conv_up2, conv_hr and conv_last at 4x (each less than one input pixel,
    together at most 2).

    >>> receptive_radius(1), receptive_radius(23)
    (19, 349)
    """
    return 15 * num_block + 4


def tile_grid(size: int, tile: int) -> list[tuple[int, int]]:
    """Split ``range(size)`` into ``ceil(size / tile)`` near-equal ``(start, stop)`` parts.

    >>> tile_grid(10, 4)
    [(0, 3), (3, 7), (7, 10)]
    """
    if size < 1 or tile < 1:
        raise ValueError(f"size and tile must be >= 1, got {size} and {tile}")
    n = math.ceil(size / tile)
    cuts = [round(i * size / n) for i in range(n + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def reflect_pad(image: Tensor, min_side: int) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Mirror-pad a (C, H, W) image so both sides are at least ``min_side``.

    Returns:
        The padded image and ``(left, right, top, bottom)``; nothing is padded when the image
        is large enough. Pads larger than the image are done in steps (reflect of reflect).
    """
    h, w = image.shape[-2:]
    ph, pw = max(0, min_side - h), max(0, min_side - w)
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    x = image[None]
    todo = list(pads)
    while any(todo):
        cur_h, cur_w = x.shape[-2:]
        limits = (cur_w - 1, cur_w - 1, cur_h - 1, cur_h - 1)
        if min(lim for lim, t in zip(limits, todo, strict=True) if t) < 1:  # 1 px: replicate
            x = F.pad(x, tuple(todo), mode="replicate")
            break
        step = [min(t, lim) for t, lim in zip(todo, limits, strict=True)]
        x = F.pad(x, tuple(step), mode="reflect")
        todo = [t - s for t, s in zip(todo, step, strict=True)]
    return x[0], pads


def upscale_tiled(image: Tensor, run: Runner, *, scale: int = 4, tile: int = 256,
                  overlap: int = 16, min_side: int = 16) -> Tensor:
    """Super-resolve one image tile by tile.

    Args:
        image: float32 RGB (3, H, W); any H, W >= 1.
        run: the network on a batch of one, e.g. :func:`facesr.infer.pipeline.torch_runner`
            or :class:`facesr.infer.onnx_backend.OnnxRunner`; it may run on any device.
        scale: the network's upscaling factor.
        tile: core tile side in input pixels; 0 = the whole image at once.
        overlap: context in input pixels added around every tile (see the module docstring).
        min_side: images with a side below this are reflect-padded up to it before inference
            and the padding is cropped from the output (zero padding inside the network would
            otherwise dominate very small inputs); 0 or 1 turns this off.

    Returns:
        float32 (3, scale*H, scale*W) on ``image``'s device, not clamped.

    Shape: (3, H, W) -> (3, scale*H, scale*W).
    """
    if image.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
    if tile < 0 or overlap < 0:
        raise ValueError(f"tile and overlap must be >= 0, got {tile} and {overlap}")
    x, (left, right, top, bottom) = reflect_pad(image, min_side)
    h, w = x.shape[-2:]
    if tile == 0 or (h <= tile and w <= tile):
        out = _run(run, x, scale).to(image.device, torch.float32)
    else:
        out = x.new_empty((x.shape[0], scale * h, scale * w), dtype=torch.float32)
        for y0, y1 in tile_grid(h, tile):
            for x0, x1 in tile_grid(w, tile):
                iy0, iy1 = max(0, y0 - overlap), min(h, y1 + overlap)
                ix0, ix1 = max(0, x0 - overlap), min(w, x1 + overlap)
                y = _run(run, x[:, iy0:iy1, ix0:ix1], scale)
                core = y[:, scale * (y0 - iy0):scale * (y1 - iy0),
                         scale * (x0 - ix0):scale * (x1 - ix0)]
                out[:, scale * y0:scale * y1, scale * x0:scale * x1] = core.to(out.device)
    return out[:, scale * top:scale * (h - bottom), scale * left:scale * (w - right)]


def _run(run: Runner, x: Tensor, scale: int) -> Tensor:
    y = run(x[None].contiguous())
    want = (1, x.shape[0], scale * x.shape[-2], scale * x.shape[-1])
    if tuple(y.shape) != want:
        raise ValueError(f"the network turned {tuple(x.shape)} into {tuple(y.shape)[1:]}, "
                         f"expected {want[1:]} (is it an x{scale} model?)")
    return y[0].float()
