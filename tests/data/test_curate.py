"""HQ curation scores: each responds to what it claims to measure, and keep() is monotone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesr.data.curate import (
    REASONS,
    CurateScore,
    Thresholds,
    blockiness,
    chroma,
    keep,
    noise_sigma,
    score_image,
    sharpness,
)
from facesr.io import read_image_array


def scene(size: int = 256, seed: int = 0, supersample: int = 4) -> np.ndarray:
    """A clean colour test image: smooth gradient plus anti-aliased rectangles, in [0.2, 0.8]."""
    rng = np.random.default_rng(seed)
    big = size * supersample
    yy, xx = np.mgrid[0:big, 0:big] / big
    img = np.stack([0.3 + 0.4 * xx, 0.5 - 0.2 * yy, 0.4 + 0.3 * xx * yy], -1).astype(np.float32)
    for _ in range(40):
        x0, y0 = rng.integers(0, big, 2)
        w, h = rng.integers(big // 20, big // 4, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0.2, 0.8, 3)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    bgr = (np.clip(img, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255


def test_blur_lowers_sharpness_monotonically():
    img = scene()
    scores = [sharpness(img)] + [sharpness(cv2.GaussianBlur(img, (0, 0), s))
                                 for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
    assert scores[0] > 4 * scores[3]  # sigma 2 native px = 1 working px: a large drop


def test_sharpness_compares_sizes_fairly():
    """The same scene stored at 768 px or area-downscaled to 160-512 px scores within 20%."""
    big = scene(768, supersample=2)
    ref = sharpness(big)
    for size in (512, 384, 256, 200, 160):
        small = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
        assert sharpness(small) == pytest.approx(ref, rel=0.2), size


@pytest.mark.parametrize("sigma", [2.0, 4.0, 8.0, 16.0])
def test_noise_estimate_follows_added_noise(sigma):
    img = scene()
    rng = np.random.default_rng(1)
    noisy = img + rng.normal(0, sigma / 255, img.shape).astype(np.float32)
    assert noise_sigma(img) < 0.1
    assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)


def test_noise_estimate_ignores_edges_and_smooth_texture():
    img = scene()
    yy, xx = np.mgrid[0:256, 0:256]
    waves = 0.05 * np.sin(xx / 3.0) * np.cos(yy / 4.0)  # texture a few px wide, not noise
    assert noise_sigma(np.clip(img + waves[..., None], 0, 1).astype(np.float32)) < 0.5


def test_grey_and_single_tint_images_have_no_chroma():
    img = scene()
    lum = img.mean(2, keepdims=True)
    grey = np.repeat(lum, 3, axis=2)
    sepia = np.clip(lum * np.array([1.0, 0.85, 0.65], np.float32) + 0.05, 0, 1)
    t = Thresholds()
    assert chroma(grey) < 0.5
    assert chroma(sepia) < 1.5
    assert chroma(img) > 3 * t.min_chroma
    for mono in (grey, sepia):
        assert "grey" in keep(score_image(mono), t)[1]
        assert "grey" not in keep(score_image(mono), Thresholds(min_chroma=None))[1]
    assert "grey" not in keep(score_image(img), t)[1]


def test_stronger_jpeg_is_blockier():
    img = scene(seed=3) + 0.02 * np.sin(np.mgrid[0:256, 0:256][1] / 2.0)[..., None]
    values = [blockiness(jpeg(img, q)) for q in (95, 50, 15)]
    assert values[0] < values[1] < values[2]
    assert values[2] > Thresholds().max_blockiness
    assert blockiness(np.full((64, 64, 3), 0.5, np.float32)) == pytest.approx(1.0)


def test_clean_sharp_colour_image_is_kept_and_small_one_is_not():
    assert keep(score_image(scene())) == (True, "ok")
    small = cv2.resize(scene(), (64, 64), interpolation=cv2.INTER_AREA)
    ok, reason = keep(score_image(small))
    assert not ok and reason.split("+")[0] == "small"


def test_keep_is_monotone_in_every_threshold():
    """Stricter thresholds never keep more, and fail a superset of the criteria."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        s = CurateScore(width=int(rng.integers(32, 1024)), height=int(rng.integers(32, 1024)),
                        sharpness=float(rng.uniform(0, 300)), noise=float(rng.uniform(0, 4)),
                        chroma=float(rng.uniform(0, 8)), blockiness=float(rng.uniform(1, 2)))
        loose = Thresholds(min_side=int(rng.integers(1, 512)),
                           min_sharpness=float(rng.uniform(0, 200)),
                           max_noise=float(rng.uniform(1, 4)),
                           min_chroma=None if rng.random() < 0.2 else float(rng.uniform(0, 5)),
                           max_blockiness=float(rng.uniform(1.2, 2)))
        strict = dataclasses.replace(
            loose, min_side=loose.min_side + int(rng.integers(0, 200)),
            min_sharpness=loose.min_sharpness + float(rng.uniform(0, 100)),
            max_noise=loose.max_noise - float(rng.uniform(0, 1)),
            min_chroma=(loose.min_chroma or 0.0) + float(rng.uniform(0, 3)),
            max_blockiness=loose.max_blockiness - float(rng.uniform(0, 0.2)))
        ok_loose, why_loose = keep(s, loose)
        ok_strict, why_strict = keep(s, strict)
        assert ok_loose or not ok_strict
        if not ok_loose:
            assert set(why_loose.split("+")) <= set(why_strict.split("+")) <= set(REASONS)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="RGB HWC"):
        score_image(np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="RGB HWC"):
        sharpness(np.zeros((32, 32, 4), np.float32))


def test_real_faces(shared: Path):
    """Defaults on real data: FFHQ kept; a grey and an out-of-focus UTKFace image rejected."""
    hq = shared / "data" / "faces_hq"
    for path in sorted((hq / "ffhq512").glob("*.png"))[:4]:
        assert keep(score_image(read_image_array(path))) == (True, "ok"), path.name
    grey = score_image(read_image_array(hq / "utkface" / "16_0_0_20170110231517869.jpg"))
    assert keep(grey) == (False, "grey")
    soft = score_image(read_image_array(hq / "utkface" / "10_0_0_20170110220514186.jpg"))
    assert keep(soft) == (False, "soft")
