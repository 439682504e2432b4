"""The JPEG quality a camera saved at: from a file's table, or from decoded pixels alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facesr.degrade.jpeg import (
    IJG_LUMA,
    estimate_quality,
    file_quality,
    ijg_luma_table,
    quality_of_table,
)


def scene(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    """A textured uint8 BGR scene: overlapping discs of random colours, lightly blurred, with
    a little noise (an unquantised image: no JPEG has touched it)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(300):
        c = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                   int(rng.integers(3, 30)), c, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 2.0, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def jpeg(bgr: np.ndarray, quality: int) -> np.ndarray:
    ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)


def test_ijg_tables() -> None:
    assert np.array_equal(ijg_luma_table(50), IJG_LUMA)
    assert ijg_luma_table(100).max() == 1 and ijg_luma_table(1).max() == 255
    for q in range(1, 101):
        t = ijg_luma_table(q)
        assert quality_of_table(t)[1] == 0.0
        # equal tables (high qualities) may resolve to a neighbour: the table is what counts
        assert np.array_equal(ijg_luma_table(quality_of_table(t)[0]), t)
    with pytest.raises(ValueError, match="1..100"):
        ijg_luma_table(0)


def test_file_quality_reads_the_files_table(tmp_path) -> None:
    img = scene()
    for q in (25, 40, 80):
        p = tmp_path / f"q{q}.jpg"
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, q])
        e = file_quality(p)
        assert e is not None and (e.quality, e.method, e.fit) == (q, "tables", 0.0)
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), img)
    assert file_quality(png) is None
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert file_quality(bad) is None


@pytest.mark.parametrize("q", [20, 40, 70])
def test_estimate_quality_from_decoded_pixels(q: int) -> None:
    dec = jpeg(scene(seed=q), q)
    e = estimate_quality(dec[..., ::-1])  # RGB uint8
    assert e is not None and e.method == "dct" and e.grid == (0, 0)
    assert abs(e.quality - q) <= 1, e
    # float input, and a crop that moves the 8x8 grid
    e2 = estimate_quality(dec[3:, 5:, ::-1].astype(np.float32) / 255.0)
    assert e2 is not None and abs(e2.quality - q) <= 1 and e2.grid == (5, 3)


def test_no_quality_without_a_jpeg_grid() -> None:
    img = scene(seed=7)
    assert estimate_quality(img[..., ::-1]) is None  # never compressed
    resized = cv2.resize(jpeg(img, 40), (230, 173), interpolation=cv2.INTER_AREA)
    assert estimate_quality(resized[..., ::-1]) is None  # the grid is gone
    assert estimate_quality(np.full((16, 16, 3), 0.5)) is None  # too small to tell
    assert estimate_quality(np.full((96, 96, 3), 0.5)) is None  # flat: nothing to read
