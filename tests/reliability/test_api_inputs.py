"""The Python API takes the image kinds people have and refuses garbage; NaN output fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import facesr
from facesr.cli import app
from facesr.infer.detectors import Face
from facesr.infer.pipeline import upscale_face as pipeline_upscale_face
from facesr.io import write_image
from facesr.models import RRDBNet, save_rrdb

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
FP32 = {"dtype": torch.float32}  # eager float32: exact comparisons


@pytest.fixture(scope="module")
def net() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**TINY).eval()


def _img(h: int = 9, w: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def _u8(t: torch.Tensor) -> torch.Tensor:
    return (t * 255).round().to(torch.uint8)


# ----------------------------------------------------------------------------- 9: kinds
def test_float_and_uint8_tensors_and_batches(net) -> None:
    img = _img()
    ref = facesr.upscale_face(img, net, **FP32)
    assert ref.dtype == torch.float32 and ref.shape == (3, 36, 44)
    assert ref.min() >= 0 and ref.max() <= 1
    u8 = _u8(img)
    out = facesr.upscale_face(u8, net, **FP32)
    assert out.dtype == torch.uint8 and out.shape == (3, 36, 44)
    assert torch.equal(out, _u8(facesr.upscale_face(u8.float() / 255, net, **FP32)))
    batch = torch.stack([img, _img(seed=1)])
    sr = facesr.upscale_face(batch, net, **FP32)
    assert sr.shape == (2, 3, 36, 44)
    assert torch.equal(sr[0], ref)
    assert torch.equal(sr[1], facesr.upscale_face(_img(seed=1), net, **FP32))
    assert facesr.upscale_face(batch.double(), net, **FP32).dtype == torch.float32


def test_numpy_arrays_and_pil_images_come_back_as_given(net) -> None:
    img = _img()
    ref = facesr.upscale_face(img, net, **FP32)
    hwc = img.permute(1, 2, 0).numpy()
    out = facesr.upscale_face(hwc, net, **FP32)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (36, 44, 3)
    assert np.array_equal(out, ref.permute(1, 2, 0).numpy())
    assert facesr.upscale_face(hwc.astype(np.float64), net, **FP32).dtype == np.float32
    u8 = _u8(img).permute(1, 2, 0).numpy()
    out8 = facesr.upscale_face(u8, net, **FP32)
    assert out8.dtype == np.uint8 and out8.shape == (36, 44, 3)
    pil = Image.fromarray(u8)
    out_pil = facesr.upscale_face(pil, net, **FP32)
    assert isinstance(out_pil, Image.Image) and out_pil.mode == "RGB"
    assert out_pil.size == (44, 36) and np.array_equal(np.asarray(out_pil), out8)
    grey = facesr.upscale_face(pil.convert("L"), net, **FP32)
    assert grey.mode == "RGB" and grey.size == (44, 36)
    assert facesr.upscale_face(pil.convert("RGBA"), net, **FP32).size == (44, 36)


def test_upscale_frame_takes_the_same_kinds(net) -> None:
    img = _img(21, 23)
    faces = [Face(4.0, 5.0, 8.0, 9.0, 0.7)]

    class Fixed:
        name = "fixed"

        def detect(self, image):
            return list(faces)

    ref = facesr.upscale_frame(img, net, detector=Fixed(), **FP32)
    from_np = facesr.upscale_frame(img.permute(1, 2, 0).numpy(), net, detector=Fixed(), **FP32)
    assert torch.equal(from_np.frame, ref.frame)
    many = facesr.upscale_frame(torch.stack([img, img]), net, detector=Fixed(), **FP32)
    assert isinstance(many, list) and len(many) == 2 and torch.equal(many[1].frame, ref.frame)
    with pytest.raises(ValueError, match="divide by 255"):
        facesr.upscale_frame(img * 255, net, detector=Fixed(), **FP32)


@pytest.mark.parametrize(("image", "message"), [
    (_img() * 255, r"values up to 2\d\d(\.\d+)? are outside \[0, 1\]: looks like 0-255: "
                   "divide by 255"),
    (_img() * 1.2, r"outside \[0, 1\]"),
    (_img() - 0.5, "negative values"),
    (torch.where(_img() > 0.5, torch.nan, _img()), "NaN or infinite"),
    (torch.where(_img() > 0.5, torch.inf, _img()), "NaN or infinite"),
    (torch.rand(9, 11, 3), r"looks like \(H, W, 3\): use image\.permute\(2, 0, 1\)"),
    (torch.rand(4, 9, 11), "3 \\(RGB\\) channels"),
    (torch.rand(1, 9, 11), "3 \\(RGB\\) channels"),
    (torch.rand(9, 11), r"\(3, H, W\) or \(N, 3, H, W\)"),
    (torch.rand(1, 1, 3, 9, 11), r"\(3, H, W\) or \(N, 3, H, W\)"),
    (torch.zeros(3, 9, 11, dtype=torch.int64), "dtype torch.int64 is not supported"),
    (torch.zeros(3, 0, 11), "empty"),
    (np.zeros((3, 9, 11), np.float32), r"looks like \(3, H, W\): use arr\.transpose"),
    (np.zeros((9, 11), np.uint8), r"RGB numpy array \(H, W, 3\)"),
    (np.zeros((9, 11, 4), np.uint8), r"RGB numpy array \(H, W, 3\)"),
    (np.zeros((9, 11, 3), np.uint16), "numpy dtype uint16 is not supported"),
    (np.full((9, 11, 3), 128.0), "divide by 255"),
    (Image.new("I;16", (11, 9)), "16/32-bit"),
    ([[0.5]], "must be a torch.Tensor .* got list"),
    ("face.png", "got str"),
])
def test_bad_images_raise_a_clear_value_error(net, image, message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        facesr.upscale_face(image, net, **FP32)
    assert "\n" not in str(e.value)


def test_values_a_rounding_error_outside_are_accepted(net) -> None:
    img = _img().clamp(0.01, 0.99)
    img[0, 0, 0], img[1, 0, 0] = 1.0005, -0.0005
    assert facesr.upscale_face(img, net, **FP32).shape == (3, 36, 44)


# ----------------------------------------------------------------------------- 7: output
def _overflowing() -> RRDBNet:
    """Finite weights whose output overflows to inf / NaN in float32."""
    net = RRDBNet(**TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1e15)
    return net


def test_a_non_finite_model_output_raises_instead_of_a_black_image() -> None:
    net = _overflowing()
    with pytest.raises(ValueError, match="NaN or infinite") as e:
        pipeline_upscale_face(_img(), net)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="NaN or infinite"):
        facesr.upscale_face(_img(), net, **FP32)


def test_the_cli_counts_a_non_finite_output_as_a_failed_file(tmp_path: Path) -> None:
    model = save_rrdb(tmp_path / "overflow.safetensors", _overflowing())
    write_image(tmp_path / "in" / "a.png", _img(16, 16))
    r = CliRunner().invoke(app, ["upscale", str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                                 "--model", str(model), "--mode", "face", "--precision", "fp32"])
    assert r.exit_code == 1, r.output
    assert "a.png" in r.output and "NaN or infinite" in r.output and "1 failed" in r.output
    assert not list((tmp_path / "o").glob("*.png"))
