"""Burst fusion (facesr.infer.burst): registration, fusion, rejection, noise averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import facesr
from facesr.infer.burst import fuse, register, upscale_burst


def face(dx: float = 0.0, dy: float = 0.0, *, size: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth face-like RGB image (3, size, size), sampled at (x - dx, y - dy): the content
    moves by exactly (dx, dy) px. Skin ellipse, eyes, mouth and a random smooth texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    x, y = (x - dx) / size, (y - dy) / size
    g = 0.15 + 0.55 * np.exp(-(((x - .5) / .3) ** 2 + ((y - .5) / .38) ** 2) ** 2)
    for cx, cy, s, a in ((.36, .42, .05, -.35), (.64, .42, .05, -.35), (.5, .72, .08, -.2),
                         (.5, .56, .04, .1)):
        g = g + a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    for _ in range(6):  # smooth random texture
        fx, fy, ph = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
        g = g + 0.04 * np.sin(2 * np.pi * (fx * x + fy * y) + ph)
    img = np.stack([g * 1.1, g, g * 0.85]).clip(0, 1)
    return torch.from_numpy(img).float()


@pytest.mark.parametrize("shift", [(0.3, -0.6), (-1.7, 0.45), (0.0, 0.0)])
def test_register_recovers_subpixel_shift(shift):
    dx, dy = shift
    warp, score = register(face(), face(dx, dy))
    assert score is not None and score > 0.99
    np.testing.assert_allclose(warp[:, 2], [dx, dy], atol=0.05)
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)


def test_identical_copies_give_single_frame_output(nearest):
    ref = face()
    fused, used, rejected, _ = fuse([ref] * 5, 2)
    assert torch.equal(fused, ref) and used[0] == 2 and sorted(used) == [0, 1, 2, 3, 4]
    assert rejected == []
    out = upscale_burst([ref] * 5, reference=2, model=nearest, refine=0)
    assert out.image.shape == (3, 256, 256)
    assert torch.equal(out.image, facesr.upscale_face(ref, nearest))
    assert torch.equal(facesr.upscale_burst(torch.stack([ref] * 3), model=nearest,
                                            refine=0).image, out.image)


def test_other_face_is_rejected(nearest):
    burst = [face(0.2 * i, -0.1 * i) for i in range(4)]
    burst.insert(2, face(seed=1) * 0.0 + torch.rand(1, 64, 64) * 0.5
                 + face(seed=7).flip(-1).flip(-2) * 0.5)
    out = upscale_burst(burst, reference=0, model=nearest)
    assert out.used == [0, 1, 3, 4]
    assert [i for i, _ in out.rejected] == [2]
    reason = out.rejected[0][1]
    assert "ECC score" in reason or "failed" in reason or "implausible" in reason, reason


def test_rotated_frame_is_rejected_as_implausible():
    import cv2

    arr = face().permute(1, 2, 0).numpy()
    rot = cv2.warpAffine(arr, cv2.getRotationMatrix2D((31.5, 31.5), 15, 1.0), (64, 64),
                         flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    _, used, rejected, _ = fuse([face(), torch.from_numpy(rot).permute(2, 0, 1)], 0)
    assert used == [0] and len(rejected) == 1
    assert "rotation" in rejected[0][1], rejected  # ECC finds the 15 deg, over MAX_ROTATION


def test_noise_averaging_beats_every_single_frame():
    gen = torch.Generator().manual_seed(0)
    shifts = [(0, 0), (0.4, -0.3), (-0.6, 0.2), (0.25, 0.7), (-0.3, -0.5), (0.8, 0.1),
              (-0.1, 0.9), (0.55, 0.55)]
    clean = face()
    burst = [(face(dx, dy) + torch.randn(3, 64, 64, generator=gen) * 8 / 255).clamp(0, 1)
             for dx, dy in shifts]
    fused, used, rejected, _ = fuse(burst, 0)
    assert len(used) == 8 and rejected == []

    def psnr(a):  # away from the borders, where warps reflect
        mse = float(((a - clean)[:, 4:-4, 4:-4] ** 2).mean())
        return 10 * np.log10(1 / mse)

    best_single = psnr(burst[0])
    assert psnr(fused) > best_single + 3, (psnr(fused), best_single)


def test_back_projection_refine_adds_detail_from_the_burst(nearest):
    """Frames degraded as in benchmarks/multiframe.py (sub-pixel shifts, Gaussian blur 1.5 HR
    px, x4 area down, noise): back-projecting onto them brings the x4 closer to the HR face
    (+0.28 dB here: a smooth face); a one-frame burst is left as it is."""
    import cv2

    gen = torch.Generator().manual_seed(0)
    shifts = [(0, 0), (1.6, -1.2), (-2.4, 0.8), (1.0, 2.8), (-1.2, -2.0), (3.2, 0.4)]  # HR px
    hr = face(size=256)

    def lr(dx, dy):
        img = cv2.GaussianBlur(face(dx, dy, size=256).permute(1, 2, 0).numpy(), (0, 0), 1.5)
        img = torch.from_numpy(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA))
        return (img.permute(2, 0, 1) + torch.randn(3, 64, 64, generator=gen) * 4 / 255
                ).clamp(0, 1)

    def psnr(a):
        return 10 * np.log10(1 / float(((a - hr)[:, 16:-16, 16:-16] ** 2).mean()))

    burst = [lr(dx, dy) for dx, dy in shifts]
    plain = upscale_burst(burst, model=nearest, refine=0)
    refined = upscale_burst(burst, model=nearest, refine=3)
    assert refined.used == plain.used and len(refined.warps) == len(shifts)
    assert psnr(refined.image) > psnr(plain.image) + 0.2, (psnr(refined.image), psnr(plain.image))
    one = upscale_burst(burst[:1], model=nearest, refine=3).image
    assert torch.equal(one, facesr.upscale_face(burst[0], nearest))
