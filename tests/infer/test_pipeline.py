"""Face and frame pipeline: crops are 4x, unchanged crops leave the frame unchanged."""

from __future__ import annotations

import pytest
import torch

from facesr.infer.detectors import Face
from facesr.infer.pipeline import (
    feather_mask,
    paste_faces,
    resample,
    torch_runner,
    upscale_face,
    upscale_frame,
)
from facesr.models import RRDBNet

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


class FixedDetector:
    """Returns the same faces for every image."""

    name = "fixed"

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def detect(self, image):
        assert image.ndim == 3 and image.shape[2] == 3
        return list(self.faces)


@pytest.fixture(scope="module")
def net() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**TINY).eval()


def _frame(h: int = 61, w: int = 83, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


BOXES = [(10, 12, 20, 24), (0, 0, 17, 15), (60, 40, 23, 21), (25, 20, 30, 30), (3, 30, 9, 31)]


def test_pasting_unchanged_crops_leaves_the_frame_unchanged():
    img = _frame()
    frame = resample(img, 4, "bicubic")
    crops = [(b, resample(img[:, b[1]:b[1] + b[3], b[0]:b[0] + b[2]], 4, "bicubic"))
             for b in BOXES]  # inside, at a corner, at the far corner, overlapping, thin
    pasted = paste_faces(frame, crops)
    assert pasted.shape == frame.shape
    assert (pasted - frame).abs().max() < 1e-5


def test_pasting_crops_cut_from_the_frame_is_exact_for_any_resampler():
    img = _frame()
    frame = resample(img, 4, "lanczos")
    cut = [(b, frame[:, 4 * b[1]:4 * (b[1] + b[3]), 4 * b[0]:4 * (b[0] + b[2])]) for b in BOXES]
    assert (paste_faces(frame, cut) - frame).abs().max() < 1e-6


def test_feather_mask_is_zero_at_inner_edges_one_inside_and_at_frame_edges():
    m = feather_mask((10, 12, 20, 24), (83, 61))
    assert m.shape == (96, 80) and m.min() >= 0 and m.max() <= 1
    assert m[:8].max() == 0 and m[-8:].max() == 0 and m[:, :8].max() == 0
    assert m[48, 40] == 1
    corner = feather_mask((0, 0, 17, 15), (83, 61))
    assert corner[0, 0] == 1 and corner[-1, -1] == 0  # frame edges: no fade; inner edges: fade
    rows = m[48, 8:40]
    assert torch.all(rows[1:] >= rows[:-1])  # monotone ramp, no step


def test_pasted_crop_changes_only_its_box(net):
    img = _frame()
    face = Face(20.0, 18.0, 16.0, 18.0, 0.98)
    result = upscale_frame(img, net, FixedDetector([face]), margin=0.25)
    (x, y, w, h) = result.faces[0].box
    frame, plain = result.frame, resample(img)
    outside = torch.ones(frame.shape[1:], dtype=torch.bool)
    outside[4 * y:4 * (y + h), 4 * x:4 * (x + w)] = False
    assert torch.equal(frame[:, outside], plain[:, outside])
    assert not torch.equal(frame, plain)


def test_frame_result_has_4x_crops_boxes_and_scores(net):
    img = _frame(50, 70)
    faces = [Face(5.0, 6.0, 12.0, 14.0, 0.9), Face(40.0, 20.0, 15.0, 15.0, 0.8, None)]
    result = upscale_frame(img, net, FixedDetector(faces), margin=0.5)
    assert [r.face for r in result.faces] == faces
    assert result.frame is not None and result.frame.shape == (3, 200, 280)
    for r, f in zip(result.faces, faces, strict=True):
        x, y, w, h = r.box
        assert r.image.shape == (3, 4 * h, 4 * w)
        assert x <= f.x and y <= f.y and x + w >= f.x + f.w and y + h >= f.y + f.h
        assert r.image.min() >= 0 and r.image.max() <= 1
    crop_only = upscale_frame(img, net, None, faces=faces, whole_frame=False)
    assert crop_only.frame is None
    assert torch.allclose(crop_only.faces[0].image, result.faces[0].image)


def test_no_faces_gives_the_resampled_frame(net):
    img = _frame(20, 30)
    result = upscale_frame(img, net, FixedDetector([]), background="lanczos")
    assert result.faces == [] and torch.equal(result.frame, resample(img, 4, "lanczos"))


@pytest.mark.parametrize("size", [(9, 13), (31, 17), (40, 40)])
def test_upscale_face_is_exactly_4x_and_in_range(net, size):
    out = upscale_face(torch.rand(3, *size), net, tile=16, overlap=8)
    assert out.shape == (3, 4 * size[0], 4 * size[1])
    assert out.min() >= 0 and out.max() <= 1


def test_runner_takes_dtype_and_layout_as_parameters(net):
    x = torch.rand(1, 3, 12, 10)
    ref = torch_runner(net)(x)
    other = RRDBNet(**TINY).eval()  # channels_last converts the model in place: use a copy
    other.load_state_dict(net.state_dict())
    assert (torch_runner(other, channels_last=True)(x) - ref).abs().max() < 1e-5
    bf16 = torch_runner(net, dtype=torch.bfloat16)(x)  # CPU autocast
    assert bf16.dtype == torch.float32 and (bf16 - ref).abs().max() < 0.05


def test_bad_image_shapes_are_refused(net):
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        upscale_face(torch.rand(1, 3, 8, 8), net)
    with pytest.raises(ValueError, match="background"):
        resample(torch.rand(3, 8, 8), 4, "nearest")


def test_package_api_takes_a_model_file_or_a_network(net, tmp_path):
    import facesr
    from facesr.models import save_rrdb

    path = save_rrdb(tmp_path / "tiny.safetensors", net)
    img = _frame(19, 23)
    by_path = facesr.upscale_face(img, model=path)
    assert by_path.shape == (3, 76, 92)
    assert torch.allclose(by_path, facesr.upscale_face(img, model=net), atol=1e-6)
    faces = [Face(4.0, 5.0, 8.0, 9.0, 0.7)]
    result = facesr.upscale_frame(img, model=net, detector=FixedDetector(faces), margin=0.2)
    assert result.frame.shape == (3, 76, 92) and result.faces[0].face.score == 0.7


def test_package_api_default_is_the_auto_path_and_float32_is_eager(net):
    import facesr
    from facesr.infer.pipeline import auto_runner, torch_runner

    img = _frame(21, 18)
    eager = upscale_face(img, torch_runner(net))
    assert torch.equal(facesr.upscale_face(img, model=net, dtype=torch.float32), eager)
    auto = facesr.upscale_face(img, model=net)
    assert torch.equal(auto, upscale_face(img, auto_runner(net)[0]))
    assert (auto - eager).abs().max() < 0.05  # bf16 on AMX CPUs, else fp32


def test_import_facesr_stays_cheap():
    import subprocess
    import sys

    code = ("import sys, facesr; heavy = [m for m in ('torch', 'cv2', 'numpy') if m in "
            "sys.modules]; print(heavy); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_color_lock_removes_a_tint_and_keeps_detail() -> None:
    from facesr.infer.pipeline import color_lock

    g = torch.Generator().manual_seed(0)
    lr = torch.rand(3, 24, 24, generator=g) * 0.6 + 0.2
    detail = (torch.rand(3, 96, 96, generator=g) - 0.5) * 0.1
    detail -= torch.nn.functional.avg_pool2d(detail[None], 4)[0].repeat_interleave(
        4, -1).repeat_interleave(4, -2)  # no low frequencies of its own
    sr = lr.repeat_interleave(4, -1).repeat_interleave(4, -2) + detail
    tint = torch.tensor([3.0, -2.0, 4.0]).view(3, 1, 1) / 255
    fixed = color_lock(sr + tint, lr, 1.0)
    shift = (fixed.mean((1, 2)) - sr.mean((1, 2))) * 255
    assert shift.abs().max() < 0.05  # the tint is gone
    hp = fixed - torch.nn.functional.avg_pool2d(fixed[None], 4)[0].repeat_interleave(
        4, -1).repeat_interleave(4, -2)
    assert torch.allclose(hp, detail, atol=0.02)  # the detail is the model's


def test_upscale_face_locks_colors_by_default_and_not_when_asked() -> None:
    class Tinted(torch.nn.Module):
        def forward(self, x):
            up = torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")
            return up + torch.tensor([0.02, 0.0, -0.02]).view(1, 3, 1, 1)

    lr = torch.full((3, 20, 20), 0.5)
    locked = upscale_face(lr, Tinted())
    raw = upscale_face(lr, Tinted(), lock_colors=None)
    assert (locked - 0.5).abs().max() < 1e-4
    assert torch.allclose(raw.mean((1, 2)), torch.tensor([0.52, 0.5, 0.48]), atol=1e-4)


@pytest.mark.parametrize("size", [(7, 5), (1, 9), (40, 33)])
def test_bicubic_background_equals_pytorchs_bicubic(size):
    # the CPU path resamples with OpenCV (2x faster); it must be the same kernel and borders
    img = torch.rand(3, *size)
    want = torch.nn.functional.interpolate(img[None], scale_factor=4, mode="bicubic",
                                           align_corners=False)[0].clamp(0, 1)
    got = resample(img, 4, "bicubic")
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
