"""Face detectors, the factory and the box helpers."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from facesr.infer.detectors import MTCNN_SCORE_THRESHOLD, YUNET_SCORE_THRESHOLD
from facesr.infer.faces import (
    DEFAULT_DETECTOR,
    DETECTORS,
    Face,
    crop,
    expand_box,
    make_detector,
)
from facesr.io import iter_video_frames_timed, read_image_array

PHOTO = "data/frames/vqfr_example.jpg"  # 800x450, three frontal faces about 90-100 px wide
YUNET = "weights/yunet/yunet_s_640_640.onnx"
ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT / "benchmarks" / "detector_labels.json"  # hand labels of detections on ../shared


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def _inside(face: Face, image: np.ndarray) -> bool:
    h, w = image.shape[:2]
    return face.x >= 0 and face.y >= 0 and face.x + face.w <= w and face.y + face.h <= h


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    return read_image_array(shared / PHOTO)


@pytest.fixture(scope="module")
def default_detector():
    return make_detector(DEFAULT_DETECTOR)


def _available(name: str, shared_root: Path | None = None):
    try:
        return make_detector(name, weights=str(shared_root / YUNET) if name == "yunet" else None)
    except ImportError as e:
        pytest.skip(f"{name} is not installed here: {e}")


# ----------------------------------------------------------------------------- detectors
def test_default_detector_finds_the_faces_inside_the_image(photo, default_detector):
    faces = default_detector.detect(photo)
    assert len(faces) == 3
    assert all(_inside(f, photo) for f in faces)
    assert all(0.0 <= f.score <= 1.0 for f in faces)
    assert all(60 < f.w < 140 for f in faces)


def test_default_detector_finds_an_aligned_hq_face(shared, default_detector):
    img = read_image_array(shared / "data/faces_hq/ffhq512/00000.png")
    faces = default_detector.detect(img)
    assert len(faces) == 1
    (f,) = faces
    assert _inside(f, img)
    cx, cy = f.x + f.w / 2, f.y + f.h / 2
    assert abs(cx - 256) < 64 and abs(cy - 256) < 96  # FFHQ alignment centres the face


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_each_detector_agrees_with_yunet_and_ignores_a_flat_image(name, shared, photo):
    det = _available(name, shared)
    ref = make_detector("yunet", weights=str(shared / YUNET)).detect(photo)
    faces = det.detect(photo)
    assert len(faces) == len(ref) == 3
    for f in faces:
        assert max(_iou(f.box, r.box) for r in ref) > 0.4
    assert det.detect(np.full((120, 160, 3), 0.5, np.float32)) == []


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_landmarks_put_the_image_left_eye_first(name, shared, photo):
    faces = _available(name, shared).detect(photo)
    for f in faces:
        if f.landmarks is None:
            continue
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = f.landmarks
        assert lx < rx and mlx < mrx
        assert max(ly, ry) < ny < min(mly, mry)
        assert f.x <= nx <= f.x + f.w and f.y <= ny <= f.y + f.h


def test_yunet_handles_any_size_and_maps_boxes_back(shared, photo):
    det = make_detector("yunet", weights=str(shared / YUNET))
    ref = det.detect(photo)
    # shifted inside a bigger canvas of another size: the same faces, shifted
    canvas = np.zeros((517, 901, 3), np.float32)
    canvas[40:40 + photo.shape[0], 70:70 + photo.shape[1]] = photo
    moved = det.detect(canvas)
    assert len(moved) == len(ref)
    for r in ref:
        shifted = (r.x + 70, r.y + 40, r.w, r.h)
        assert max(_iou(shifted, m.box) for m in moved) > 0.8
    # detecting on a 2x upscaled copy reports boxes in the given image's pixels
    up = make_detector("yunet", weights=str(shared / YUNET), upscale=2.0).detect(photo)
    assert len(up) == len(ref)
    for r in ref:
        assert max(_iou(r.box, u.box) for u in up) > 0.7


def test_min_size_drops_small_faces(shared, photo):
    det = make_detector("yunet", weights=str(shared / YUNET), min_size=200)
    assert det.detect(photo) == []


# ----------------------------------------------------------------------------- factory
def test_yunet_without_weights_names_the_expected_file():
    with pytest.raises(FileNotFoundError, match=r"yunet_s_640_640\.onnx"):
        make_detector("yunet")


def test_yunet_with_a_missing_weights_file_names_it(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        make_detector("yunet", weights=str(missing))


def test_yunet_with_a_bad_weights_file_says_so(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="bad.onnx"):
        make_detector("yunet", weights=str(bad))


def test_unknown_detector_lists_the_choices():
    with pytest.raises(ValueError, match="haar"):
        make_detector("retinaface")


def test_weights_for_a_detector_that_ships_its_own_are_refused(tmp_path):
    with pytest.raises(ValueError, match="takes no weights"):
        make_detector("haar", weights=str(tmp_path / "x.onnx"))


def test_default_detector_needs_no_weights_file():
    assert not DETECTORS[DEFAULT_DETECTOR].needs_weights


# ----------------------------------------------------------------------------- score thresholds
def test_default_score_thresholds_are_the_measured_constants():
    readme = (ROOT / "README.md").read_text().split("### Face detectors")[1].split("\n## ")[0]
    assert "benchmarks/detectors.py --labels benchmarks/detector_labels.json" in readme
    assert f"{YUNET_SCORE_THRESHOLD:.2f}" in readme and f"{MTCNN_SCORE_THRESHOLD:.2f}" in readme
    for name, value in (("yuface", YUNET_SCORE_THRESHOLD), ("mtcnn", MTCNN_SCORE_THRESHOLD)):
        try:
            assert make_detector(name).score_threshold == value
        except ImportError:  # yuface: CPython 3.11 on x86-64 only
            continue
        assert make_detector(name, score_threshold=0.5).score_threshold == 0.5


LABELLED = [  # (source, frame): what yuface found there (mtcnn: the back of a head at 280)
    ("gfpgan_10045.png", 0),  # three faces >= 0.90 and a banister post at 0.68
    ("intel_one_by_one.mp4", 280),  # a back of a head at 0.66 (mtcnn: 0.83)
    ("intel_one_by_one.mp4", 685),  # a profile at 0.76 and a face turned away at 0.54
    ("intel_one_by_one.mp4", 805),  # a back of a head at 0.75
]


@functools.cache
def _clip_frames(clip: Path) -> dict[int, np.ndarray]:
    """The labelled frames of a clip, decoded in one pass."""
    want = {frame for source, frame in LABELLED if source == clip.name}
    frames = {}
    for idx, _, image in iter_video_frames_timed(clip, want=want.__contains__):
        if idx in want:
            frames[idx] = image
        if len(frames) == len(want):
            break
    return frames


def _labelled_frame(shared: Path, source: str, frame: int) -> np.ndarray:
    if not source.endswith((".gif", ".mp4", ".avi")):
        return read_image_array(shared / "data" / "frames" / source)
    return _clip_frames(shared / "data" / "video" / source)[frame]


@pytest.mark.parametrize(("source", "frame"), LABELLED)
def test_the_default_threshold_keeps_the_labelled_faces_and_drops_the_rest(shared, source, frame):
    labels = [lab for lab in json.loads(LABELS.read_text())["labels"]
              if lab["source"] == source and lab["frame"] == frame]
    det = make_detector(DEFAULT_DETECTOR, min_size=10)
    faces = det.detect(_labelled_frame(shared, source, frame))
    for f in faces:  # every face kept is a labelled real face
        best = max(labels, key=lambda lab: _iou(f.box, lab["box"]))
        assert _iou(f.box, best["box"]) >= 0.5 and best["label"] == "face", (f, best)
    for lab in labels:  # every real face this detector scored above its threshold is kept
        if lab["label"] == "face" and lab["by"] == det.name and lab["score"] >= det.score_threshold:
            assert max((_iou(f.box, lab["box"]) for f in faces), default=0) >= 0.5, lab
    assert any(lab["label"] != "face" for lab in labels)  # the frame tests a false detection


# ----------------------------------------------------------------------------- boxes
def test_expand_box_stays_inside_and_contains_the_box():
    rng = np.random.default_rng(0)
    for _ in range(500):
        width, height = (int(v) for v in rng.integers(8, 300, size=2))
        w, h = rng.uniform(1, 80, size=2)
        x, y = rng.uniform(-w / 2, width - w / 2), rng.uniform(-h / 2, height - h / 2)
        margin = float(rng.uniform(0, 1.5))
        square = bool(rng.integers(2))
        bx, by, bw, bh = expand_box((x, y, w, h), margin, (width, height), square=square)
        assert all(isinstance(v, int) for v in (bx, by, bw, bh))
        assert bx >= 0 and by >= 0 and bx + bw <= width and by + bh <= height
        # contains the part of the original box that lies in the image
        assert bx <= max(x, 0) and by <= max(y, 0)
        assert bx + bw >= min(x + w, width) and by + bh >= min(y + h, height)


def test_expand_box_margin_and_square():
    assert expand_box((10, 20, 30, 30), 0.0, (100, 100)) == (10, 20, 30, 30)
    assert expand_box((40, 40, 20, 20), 0.5, (100, 100)) == (30, 30, 40, 40)
    # a tall box becomes a square around its centre
    assert expand_box((40, 30, 20, 40), 0.0, (100, 100)) == (30, 30, 40, 40)
    assert expand_box((40, 30, 20, 40), 0.0, (100, 100), square=False) == (40, 30, 20, 40)
    face = Face(40.0, 40.0, 20.0, 20.0, 0.9)
    assert expand_box(face, 0.5, (100, 100)) == (30, 30, 40, 40)


def test_expand_box_rejects_bad_input():
    with pytest.raises(ValueError, match="margin"):
        expand_box((0, 0, 10, 10), -0.1, (50, 50))
    with pytest.raises(ValueError, match="outside"):
        expand_box((60, 60, 10, 10), 0.0, (50, 50))


def test_crop_is_a_copy_of_the_region():
    rng = np.random.default_rng(1)
    img = rng.random((40, 60, 3), dtype=np.float32)
    c = crop(img, (5, 7, 20, 10))
    assert c.shape == (10, 20, 3)
    np.testing.assert_array_equal(c, img[7:17, 5:25])
    c[:] = 0
    assert img[7:17, 5:25].any()  # the source is untouched
    with pytest.raises(ValueError, match="not inside"):
        crop(img, (50, 0, 20, 10))
