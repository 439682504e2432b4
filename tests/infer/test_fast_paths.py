"""The fused CPU path (``fused_cpu_runner``, what ``facesr upscale`` runs on the CPU) matches
PyTorch eager float32: to float rounding in fp32, within 8-bit PSNR 45 dB in bf16."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from facesr.cli import app
from facesr.infer.pipeline import (
    cpu_has_amx_bf16,
    fused_cpu_available,
    fused_cpu_runner,
    torch_runner,
    upscale_face,
)
from facesr.io import read_image, write_image
from facesr.models import RRDBNet, save_rrdb

pytestmark = pytest.mark.skipif(not fused_cpu_available(),
                                reason="the fused path needs an x86-64 CPU and oneDNN")
TINY = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}


@pytest.fixture(scope="module")
def net() -> RRDBNet:
    """A tiny RRDBNet whose outputs span most of [0, 1] (random weights x6, bias + 0.5)."""
    torch.manual_seed(0)
    net = RRDBNet(**TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(6.0)
        net.conv_last.bias.add_(0.5)
    return net


def psnr8(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(PSNR in dB, max abs difference in 1/255) of two images rounded to 8 bits."""
    a, b = ((t.clamp(0, 1) * 255).round() for t in (a, b))
    mse = ((a - b) ** 2).mean().item()
    return (10 * math.log10(255**2 / mse) if mse else math.inf), (a - b).abs().max().item()


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 3, 9, 23), (2, 3, 12, 16), (1, 3, 1, 1)])
def test_fp32_fused_equals_eager_for_any_size(net, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    ref = torch_runner(net)(x)
    y = fused_cpu_runner(net, dtype=torch.float32)(x)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    assert (y - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max().item())


BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # AVX2-only CPUs have no bf16 kernels


@pytest.mark.skipif(not BF16, reason="oneDNN has no bf16 kernels on this CPU (AVX2 only)")
def test_bf16_fused_is_within_45_db_of_eager_fp32(net):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = torch_runner(net)(x)
    assert ref.std() > 0.07 and ((ref < 0) | (ref > 1)).float().mean() < 0.1  # outputs spread
    y = fused_cpu_runner(net, dtype=torch.bfloat16)(x)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    psnr, worst = psnr8(y, ref)
    assert psnr >= 45 and worst <= 6, (psnr, worst)


def test_runner_leaves_the_model_unchanged_and_tiles_like_eager(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    run = fused_cpu_runner(net, dtype=torch.float32)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.is_contiguous() for p in net.parameters())
    img = torch.rand(3, 40, 30, generator=torch.Generator().manual_seed(2))
    a = upscale_face(img, run, tile=16, overlap=8)
    b = upscale_face(img, net, tile=16, overlap=8)
    assert (a - b).abs().max() < 1e-5


def test_bad_models_dtypes_and_inputs_are_refused(net):
    with pytest.raises(ValueError, match="x4 RRDBNets"):
        fused_cpu_runner(RRDBNet(**TINY, scale=2))
    with pytest.raises(ValueError, match="dtype"):
        fused_cpu_runner(net, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fused_cpu_runner(net, dtype=torch.float32)(torch.rand(1, 4, 8, 8))
    if not BF16:
        with pytest.raises(ValueError, match="no bf16 kernels"):
            fused_cpu_runner(net)


def test_upscale_cli_runs_the_fused_path_and_records_its_precision(net, tmp_path):
    weights = save_rrdb(tmp_path / "tiny.safetensors", net)
    img = torch.rand(3, 21, 27, generator=torch.Generator().manual_seed(3))
    write_image(tmp_path / "in" / "face.png", img)
    expect = {"auto": "bf16 fused" if cpu_has_amx_bf16() else "fp32 fused", "fp32": "fp32 fused"}
    if BF16:
        expect["bf16"] = "bf16 fused"
    ref = upscale_face(read_image(tmp_path / "in" / "face.png"), net)
    for precision, recorded in expect.items():
        out = tmp_path / precision
        r = CliRunner().invoke(app, ["upscale", str(tmp_path / "in"), "--out", str(out),
                                     "--model", str(weights), "--mode", "face",
                                     "--precision", precision])
        assert r.exit_code == 0, r.output
        rec = json.loads(next(out.glob("*.json")).read_text())
        assert rec["settings"]["precision"] == recorded
        y = read_image(next(out.glob("*_x4.png")))
        psnr, worst = psnr8(y, ref)
        assert (worst <= 1) if precision == "fp32" else (psnr >= 45 and worst <= 6), (psnr, worst)
