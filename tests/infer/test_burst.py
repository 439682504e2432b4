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


def test_fused_crops_go_to_the_burst_model_and_a_lone_frame_to_the_model(nearest):
    """upscale_burst: ``burst_model`` makes a fused crop, ``model`` a reference left alone."""
    from facesr.models import zoo

    half = zoo.load(nearest)[0]
    with torch.no_grad():
        half.conv_last.weight.mul_(0.5)  # nearest-neighbour x4 at half the level
    ref = face()
    plain = facesr.upscale_face(ref, nearest, lock_colors=None)
    kw = {"model": nearest, "burst_model": half, "refine": 0, "lock_colors": None}
    fused = upscale_burst([ref, face(0.3, 0.2), face(-0.4, 0.1)], **kw)
    assert len(fused.used) == 3  # fused: the burst model made it
    torch.testing.assert_close(fused.image, 0.5 * facesr.upscale_face(fused.fused, nearest,
                                                                       lock_colors=None))
    alone = upscale_burst([ref, torch.rand(3, 64, 64)], **kw)  # noise: rejected
    assert alone.used == [0]  # the reference alone: the model made it
    assert torch.equal(alone.image, plain)
    both = upscale_burst([ref, face(0.3, 0.2)], model=nearest, refine=0, lock_colors=None)
    assert len(both.used) == 2  # fused; no burst_model: the model serves fused crops too
    torch.testing.assert_close(both.image, facesr.upscale_face(both.fused, nearest,
                                                               lock_colors=None))


def test_a_face_moving_over_a_still_scene_keeps_both_aligned():
    """A crop box fixed in the frame: the face moves, the scene behind it does not, and one
    whole-crop warp cannot align both. Fusion picks, per pixel, the candidate warp that aligns
    there (the face's, or no motion for the scene), so the fused crop is closer to the clean
    reference than the plain mean of whole-crop alignments, and still averages the noise."""
    rng = np.random.default_rng(3)
    size = 64
    y, x = np.mgrid[0:size, 0:size] / size
    scene = torch.from_numpy(np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (5 * x + 3 * y + c))
                                       for c in (0.0, 0.3, 0.6)])).float()
    alpha = torch.from_numpy(np.clip((1 - np.sqrt(((x - .5) / .3) ** 2 + ((y - .5) / .38) ** 2))
                                     / 0.1, 0, 1)).float()
    shifts = [(0.0, 0.0), (1.2, -0.7), (-0.9, 1.1), (0.6, 1.4), (-1.3, -0.8), (1.5, 0.4)]

    def frame(dx: float, dy: float) -> torch.Tensor:
        a = _moved(alpha, dx, dy)
        return a * face(dx, dy) + (1 - a) * scene

    clean = frame(0.0, 0.0)
    noisy = [(frame(dx, dy) + torch.from_numpy(rng.normal(0, 0.03, (3, size, size))).float()
              ).clamp(0, 1) for dx, dy in shifts]
    robust = fuse(noisy, 0)[0]
    plain = fuse(noisy, 0, robust=False)[0]
    still = (alpha < 0.01).expand(3, -1, -1)
    inner = (slice(None), slice(4, -4), slice(4, -4))

    def err(img: torch.Tensor, where: torch.Tensor | None = None) -> float:
        d = (img - clean)[inner] ** 2
        return float(d[where[inner]].mean() if where is not None else d.mean())

    on_face = (alpha > 0.99).expand(3, -1, -1)
    # whole-crop ECC follows the textured scene here, so the plain mean smears the face
    assert err(robust, on_face) < 0.5 * err(plain, on_face)
    assert err(robust, still) < 1.2 * err(plain, still)
    assert err(robust) < 0.8 * err(plain)
    assert err(robust) < 0.5 * err(noisy[0])  # the noise is still averaged


def _moved(img: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """(H, W) map moved by (dx, dy) px (bicubic)."""
    import cv2

    m = np.float32([[1, 0, dx], [0, 1, dy]])
    arr = cv2.warpAffine(img.numpy(), m, img.shape[::-1], flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT101)
    return torch.from_numpy(arr).clamp(0, 1)
