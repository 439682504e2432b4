"""An identity loss: dlib's face recognition network rebuilt in torch, with gradients.

dlib's face-ID ResNet (``dlib_face_recognition_resnet_model_v1.dat``, CC0; the model of
:mod:`facesr.metrics.identity`) maps an aligned 150x150 RGB face chip to 128 numbers; two faces
closer than 0.6 are the same person. dlib computes it in C++, without gradients. Here its file
is read directly (dlib's serialisation: packed integers, strings, tensors of little-endian
float32) into torch layers, so a super-resolved face can be pulled towards its clean face's
descriptor during training. On dlib's own chips the descriptors agree with
``compute_face_descriptor`` to about 1e-6 (``tests/losses/test_identity_loss.py``).

The architecture is the one of dlib's ``dnn_face_recognition_ex.cpp``: a 7x7/2 convolution,
a 3x3/2 max pool, 14 residual blocks of two 3x3 convolutions (32, 64, 128, 256 channels; the
first block of each width strides 2 and adds the 2x2-average-pooled input, zero-padded to the
wider tensor as dlib's ``add_prev`` does), global average pooling and a 256x128 linear map.
Batch norm is stored folded into per-channel affine layers; they are folded on into the
convolutions' weights and biases here. Input: RGB 0-255 minus dlib's
means (122.782, 117.001, 104.298), divided by 256.

Alignment (:func:`face_chip_map`, :func:`chip_affine`): the face the identity metric scores
(its face box and 5-point landmarks, from :class:`~facesr.metrics.identity.IdentityModel`) on
the *clean* face gives the similarity transform of ``dlib.get_face_chip_details(shape, 150,
0.25)``; the output and the clean face are both cut with it (bilinear ``grid_sample``,
differentiable), so the loss compares the same region of both, the region the metric judges.

Measuring identity with the network a model was trained against favours that model: read an
identity figure of a model trained with this loss beside the pictures and the other metrics.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from facesr.metrics.identity import IdentityModel

CHIP = 150
PADDING = 0.25
MEAN = (122.782, 117.001, 104.298)
_LAYER = re.compile(rb"(con_4|affine_|relu_110|add_prev_111|avg_pool_2|max_pool_2|fc_2)")


class DlibModelError(ValueError):
    """A file that is not dlib's face recognition network."""


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def int(self) -> int:
        control = self.data[self.pos]
        n = control & 0x0F
        if n > 8 or self.pos + 1 + n > len(self.data):
            raise DlibModelError("corrupt integer")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if control & 0x80 else value

    def dims(self) -> list[int]:
        self.int()  # version
        dims = [self.int() for _ in range(4)]
        if any(d < 0 or d > 1 << 20 for d in dims):
            raise DlibModelError(f"implausible tensor shape {dims}")
        return dims

    def tensor(self) -> np.ndarray:
        n = math.prod(self.dims())
        if self.pos + 4 * n > len(self.data):
            raise DlibModelError("truncated tensor")
        out = np.frombuffer(self.data, "<f4", n, self.pos).astype(np.float32)
        self.pos += 4 * n
        return out


def read_dlib_layers(path: str | os.PathLike) -> list[dict]:
    """The layers of dlib's face recognition network file, input side first.

    Raises:
        DlibModelError: not that network (the message names the file).
    """
    data = Path(path).read_bytes()
    if b"loss_metric_2" not in data[:64] or b"input_rgb_image_sized" not in data[:512]:
        raise DlibModelError(f"{path}: not dlib's face recognition network (no loss_metric "
                             "header)")
    layers: list[dict] = []
    try:
        for m in _LAYER.finditer(data):
            name, r = m.group().decode(), _Reader(data, m.end())
            if name == "con_4":
                params = r.tensor()
                _filters, _rows, _cols, sy, sx, py, px = (r.int() for _ in range(7))
                shape = r.dims()
                layers.append({"t": "con", "params": params, "shape": shape,
                               "stride": (sy, sx), "pad": (py, px)})
            elif name == "affine_":
                layers.append({"t": "affine", "params": r.tensor()})
            elif name == "fc_2":
                n_out, n_in = r.int(), r.int()
                layers.append({"t": "fc", "params": r.tensor(), "shape": (n_in, n_out)})
            else:
                layers.append({"t": name.split("_")[0]})
    except (DlibModelError, IndexError) as e:
        raise DlibModelError(f"{path}: {e}") from None
    kinds = [layer["t"] for layer in layers]
    if kinds.count("con") != 29 or kinds.count("fc") != 1:
        raise DlibModelError(f"{path}: {kinds.count('con')} convolutions and "
                             f"{kinds.count('fc')} linear layers, not dlib's ResNet-29")
    return layers


def _add(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: the sum over the larger of each dimension, the smaller zero-padded."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(x: Tensor) -> Tensor:
        return F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))

    return pad(a) + pad(b)


class DlibFaceID(nn.Module):
    """dlib's face recognition ResNet: (N, 3, 150, 150) RGB chips in [0, 1] -> (N, 128).

    ``chip`` (its chips' size) and :meth:`chip_map` (landmarks -> chip map) say how to cut its
    chips; :class:`~facesr.losses.mobilefacenet.MobileFaceNetID` has the same two.
    ``different``: its mean distance between different people (0.85 on the sharp-train
    portraits; for scaling a loss)."""

    chip = CHIP
    different = 0.846

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        layers = read_dlib_layers(path)
        self.convs = nn.ModuleList()
        self.pooled: list[bool] = []  # per conv: its block adds an average-pooled shortcut
        for layer in layers:
            if layer["t"] == "con":
                out_c, in_c, kh, kw = layer["shape"]
                conv = nn.Conv2d(in_c, out_c, (kh, kw), layer["stride"], layer["pad"])
                n = out_c * in_c * kh * kw
                conv.weight.data = torch.from_numpy(layer["params"][:n].reshape(layer["shape"]))
                conv.bias.data = torch.from_numpy(layer["params"][n:].copy())
                self.convs.append(conv)
                self.pooled.append(False)
            elif layer["t"] == "affine":  # the folded batch norm after the last conv: into it
                gamma, beta = torch.from_numpy(layer["params"].copy()).view(2, -1)
                conv = self.convs[-1]
                conv.weight.data *= gamma.view(-1, 1, 1, 1)
                conv.bias.data = conv.bias.data * gamma + beta
            elif layer["t"] == "avg" and len(self.convs) > 1:  # a down block's shortcut
                self.pooled[-1] = True
            elif layer["t"] == "fc":
                self.register_buffer("fc", torch.from_numpy(
                    layer["params"].reshape(layer["shape"]).copy()))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) / 255.0)
        self.requires_grad_(False)

    def forward(self, chips: Tensor) -> Tensor:
        x = (chips - self.mean) * (255.0 / 256.0)
        x = F.max_pool2d(F.relu(self.convs[0](x)), 3, 2)
        for i in range(1, len(self.convs), 2):
            y = self.convs[i + 1](F.relu(self.convs[i](x)))
            shortcut = F.avg_pool2d(x, 2, 2) if self.pooled[i + 1] else x
            x = F.relu(_add(y, shortcut))
        return x.mean((2, 3)) @ self.fc

    @staticmethod
    def chip_map(points: np.ndarray | list) -> np.ndarray:
        return chip_affine(points)


def chip_affine(points: np.ndarray | list, size: int = CHIP, padding: float = PADDING
                ) -> np.ndarray:
    """The 2x3 map from chip pixels (x, y) to image pixels of dlib's face chip for five dlib
    landmarks (``get_face_chip_details(shape, size, padding)``: the chip's corners are the
    rotated corners of its rectangle)."""
    import dlib

    shape = dlib.full_object_detection(
        dlib.rectangle(0, 0, 1, 1), [dlib.point(round(x), round(y)) for x, y in points])
    d = dlib.get_face_chip_details(shape, size, padding)
    r = d.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    cos, sin = math.cos(d.angle), math.sin(d.angle)

    def rot(x: float, y: float) -> tuple[float, float]:
        return (cx + cos * (x - cx) - sin * (y - cy), cy + sin * (x - cx) + cos * (y - cy))

    src = np.array([rot(r.left(), r.top()), rot(r.right(), r.top()),
                    rot(r.right(), r.bottom())])
    dst = np.array([[0, 0], [d.cols - 1, 0], [d.cols - 1, d.rows - 1]], float)
    # image = A @ [chip_x, chip_y, 1]: solve from the three corner pairs
    a = np.linalg.solve(np.c_[dst, np.ones(3)], src)
    return a.T  # (2, 3)


def face_chip_map(image: np.ndarray, model: IdentityModel | None = None,
                  chip_map: Callable[[list], np.ndarray] = chip_affine) -> np.ndarray:
    """:func:`chip_affine` (or another network's ``chip_map``) of the face the identity metric
    scores in an 8-bit RGB HWC image: ``model.face_box`` (the largest face facesr's default
    detector finds, else the metric's fallback box) and the five landmarks ``model.points``
    finds in it. ``model``: the metric's :class:`~facesr.metrics.identity.IdentityModel`
    (default: ``load_identity()``), so the loss aligns the very face the metric judges."""
    if model is None:
        from facesr.metrics import shared_identity

        model = shared_identity()
    rgb = image.astype(np.float32) / 255.0
    return chip_map(model.points(rgb, model.face_box(rgb)))


def extract_chips(images: Tensor, maps: Tensor, size: int = CHIP) -> Tensor:
    """Bilinear face chips: ``maps`` (N, 2, 3) from :func:`chip_affine` (scaled to the
    images' pixel grid), images (N, 3, H, W) -> (N, 3, size, size); differentiable."""
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(size, dtype=images.dtype, device=images.device),
                            torch.arange(size, dtype=images.dtype, device=images.device),
                            indexing="ij")
    chip = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    pix = chip @ maps.to(images.dtype).transpose(1, 2)  # (N, size*size, 2) image x, y
    grid = torch.stack([pix[..., 0] / (w - 1) * 2 - 1, pix[..., 1] / (h - 1) * 2 - 1], -1)
    return F.grid_sample(images, grid.view(n, size, size, 2), mode="bilinear",
                         padding_mode="border", align_corners=True)


def identity_loss(net: nn.Module, sr: Tensor, hr: Tensor, maps: Tensor) -> Tensor:
    """Mean descriptor distance of ``sr`` to ``hr`` (the clean faces, no gradient), both cut
    into ``net.chip``-px chips with ``maps`` (from ``net.chip_map``; :class:`DlibFaceID` or
    :class:`~facesr.losses.mobilefacenet.MobileFaceNetID`). Shape: (N, 3, H, W) twice,
    (N, 2, 3) -> scalar."""
    size = net.chip
    with torch.no_grad():
        ref = net(extract_chips(hr.float(), maps, size))
    out = net(extract_chips(sr.float(), maps, size))
    return (out - ref).pow(2).sum(1).add(1e-12).sqrt().mean()
