"""Identity: the distance between the face-ID embeddings of an output and its reference.

Source: King, "Dlib-ml: A machine learning toolkit", JMLR 2009, and dlib's face recognition
model (``dlib_face_recognition_resnet_model_v1.dat``: a ResNet-29 mapping an aligned 150x150
face to 128 numbers, with its 5-point landmark model ``shape_predictor_5_face_landmarks.dat``;
both CC0, carried by the ``face-recognition-models`` package; dlib itself is Boost-licensed,
from the ``dlib-bin`` wheel). dlib's 68-point landmark model is not used: its training data is
licensed for non-commercial use only. Reference implementation: dlib's
``examples/face_recognition.py`` (``compute_face_descriptor(image, shape)``, no jitter).

Procedure, per pair: one face box, found once on the *reference* with facesr's default face
detector (:func:`facesr.infer.faces.make_detector`; the largest face). When none is found the
box is :data:`FALLBACK_BOX`, the central face region of an aligned crop (from dlib's own
detector on the aligned sets of ``shared/data/faces_hq``: London and FFHQ-style crops). The
same box (scaled when the sizes differ) is given to both images; each image gets its own five
landmarks from it, the face is aligned from them and embedded. The score is the Euclidean
distance of the two 128-d descriptors. dlib's documentation calls two faces the same person
below 0.6 (99.38% on LFW), :data:`SAME_PERSON`: ``identity_same`` is 1.0 below it, else 0.0, so
its mean over faces is the share still recognised as the same person. Colour: RGB, 8 bits;
``crop_border`` pixels are removed from each side first (default 0). Lower distance is better;
0 for identical images.

Models (nothing is downloaded; :func:`find_identity_models`): ``identity/<file>`` in the weight
folders of :func:`facesr.metrics.scorer.find_weights`, else the ``models/`` folder of the
installed ``face_recognition_models`` package (located with ``importlib.util.find_spec``, never
imported: its ``__init__`` needs ``pkg_resources``, gone from setuptools 81+). Both the models
and dlib come with ``pip install -e ".[identity]"``; without them loading raises
:class:`~facesr.metrics.errors.WeightsUnavailableError` saying so. dlib runs on the CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from facesr.io import to_array, to_uint8
from facesr.metrics.color import check_images, crop
from facesr.metrics.errors import WeightsUnavailableError
from facesr.metrics.scorer import find_weights, weight_dirs

PACKAGE = "face_recognition_models"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL = 'pip install -e ".[identity]"'
SAME_PERSON = 0.6
FALLBACK_BOX = (0.2, 0.2, 0.8, 0.85)  # left, top, right, bottom, as fractions of width/height

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels


def package_model_file(name: str) -> Path | None:
    """``models/<name>`` of an installed face_recognition_models, or None (never imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        p = Path(folder) / "models" / name
        if p.is_file():
            return p
    return None


def find_identity_models(weights_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The (landmark model, recognition model) files, in the order of the module docs.

    Raises:
        WeightsUnavailableError: one of them is found nowhere (the message says what to do).
    """
    found = []
    for name in (LANDMARKS_FILE, RECOGNITION_FILE):
        try:
            found.append(find_weights(f"identity/{name}", weights_dir))
        except WeightsUnavailableError:
            path = package_model_file(name)
            if path is None:
                looked = ", ".join(str(d / "identity") for d in weight_dirs(weights_dir))
                raise WeightsUnavailableError(
                    f"weights not available: identity needs {name} from the "
                    f"face-recognition-models package: {INSTALL} (no {PACKAGE} installed; "
                    f"not in {looked} either)") from None
            found.append(path)
    return found[0], found[1]


class IdentityModel:
    """dlib's landmark and recognition models, the reference's face detector and a cache.

    The cache keeps the last reference descriptors (by the reference's bytes), so scoring
    several outputs against one reference embeds it once, and the last pair distances, so
    ``identity`` and ``identity_same`` on the same pair share one computation.
    """

    def __init__(self, landmarks: Any, recognizer: Any, detector: Any | None = None, *,
                 cache_size: int = 16) -> None:
        self.landmarks = landmarks
        self.recognizer = recognizer
        self.detector = detector
        self.cache_size = cache_size
        self._refs: OrderedDict[bytes, tuple[Box, np.ndarray]] = OrderedDict()
        self._pairs: OrderedDict[tuple[bytes, bytes], float] = OrderedDict()

    def face_box(self, image: np.ndarray) -> Box:
        """The largest detected face of a float RGB HWC image, else :data:`FALLBACK_BOX`."""
        h, w = image.shape[:2]
        faces = self.detector.detect(image) if self.detector is not None else []
        if not faces:
            x0, y0, x1, y1 = FALLBACK_BOX
            return (x0 * w, y0 * h, x1 * w, y1 * h)
        f = max(faces, key=lambda f: f.w * f.h)
        return (f.x, f.y, f.x + f.w, f.y + f.h)

    def _shape(self, rgb: np.ndarray, box: Box) -> Any:
        import dlib

        return self.landmarks(rgb, dlib.rectangle(*(round(v) for v in box)))

    def points(self, image: np.ndarray, box: Box) -> list[tuple[int, int]]:
        """The five landmarks (x, y) of the face in ``box`` of a float RGB HWC image in
        [0, 1]: those :meth:`descriptor` aligns the face with."""
        rgb = np.ascontiguousarray(to_uint8(image))
        return [(p.x, p.y) for p in self._shape(rgb, box).parts()]

    def descriptor(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The 128-d descriptor of the face in ``box`` of a float RGB HWC image in [0, 1]."""
        rgb = np.ascontiguousarray(to_uint8(image))
        shape = self._shape(rgb, box)
        return np.asarray(self.recognizer.compute_face_descriptor(rgb, shape), np.float64)

    def _reference(self, ref: Tensor) -> tuple[bytes, Box, np.ndarray]:
        key = _key(ref)
        if key not in self._refs:
            image = to_array(ref)
            box = self.face_box(image)
            self._refs[key] = (box, self.descriptor(image, box))
            _trim(self._refs, self.cache_size)
        self._refs.move_to_end(key)
        return (key, *self._refs[key])

    def distance(self, pred: Tensor, ref: Tensor) -> float:
        """Descriptor distance of one output and its reference, both (3, H, W) in [0, 1]."""
        ref_key, box, ref_desc = self._reference(ref)
        pair = (_key(pred), ref_key)
        if pair not in self._pairs:
            sy, sx = pred.shape[-2] / ref.shape[-2], pred.shape[-1] / ref.shape[-1]
            scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
            desc = self.descriptor(to_array(pred), scaled)
            self._pairs[pair] = float(np.linalg.norm(desc - ref_desc))
            _trim(self._pairs, self.cache_size)
        return self._pairs[pair]


def _key(x: Tensor) -> bytes:
    data = x.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes() + str(tuple(x.shape)).encode(), digest_size=16).digest()


def _trim(cache: OrderedDict, size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


def load_identity(weights_dir: str | os.PathLike | None = None, *,
                  device: torch.device | str = "cpu") -> IdentityModel:
    """dlib's 5-point landmark and face recognition models (lookup: module docs) with facesr's
    default face detector. ``device`` is accepted for the registry's sake: dlib runs where its
    wheel was built (the CPU for dlib-bin).

    Raises:
        WeightsUnavailableError: dlib or a model file is missing (``pip install -e
            ".[identity]"``).
    """
    del device
    try:
        import dlib
    except ImportError as e:
        raise WeightsUnavailableError(f"weights not available: identity needs dlib: {INSTALL} "
                                      f"({e})") from None
    from facesr.infer.faces import DEFAULT_DETECTOR, make_detector

    landmarks, recognizer = find_identity_models(weights_dir)
    return IdentityModel(dlib.shape_predictor(str(landmarks)),
                         dlib.face_recognition_model_v1(str(recognizer)),
                         make_detector(DEFAULT_DETECTOR))


def identity(pred: Tensor, ref: Tensor, model: IdentityModel, *, crop_border: int = 0
             ) -> Tensor:
    """Face-ID descriptor distance of each pair (procedure: module docs). Lower is better.

    Shape: pred, ref (N, 3, H, W) in [0, 1] -> (N,) float32, usually in [0, 1.2]; same
    person below :data:`SAME_PERSON`.

    Example:
        >>> x = torch.rand(1, 3, 64, 64)
        >>> identity(x, x, load_identity()).item()
        0.0
    """
    check_images(pred, ref)
    pred, ref = crop(pred, crop_border), crop(ref, crop_border)
    return torch.tensor([model.distance(p, r) for p, r in zip(pred, ref, strict=True)],
                        dtype=torch.float32)


def identity_same(pred: Tensor, ref: Tensor, model: IdentityModel, *, crop_border: int = 0,
                  threshold: float = SAME_PERSON) -> Tensor:
    """1.0 where the pair is judged the same person (distance < ``threshold``), else 0.0; its
    mean over faces is the share still recognised. Higher is better.

    Shape: pred, ref (N, 3, H, W) in [0, 1] -> (N,) float32.
    """
    return (identity(pred, ref, model, crop_border=crop_border) < threshold).float()
