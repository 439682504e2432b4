"""BRISQUE (Mittal, Moorthy, Bovik, "No-reference image quality assessment in the spatial
domain", IEEE TIP 2012), as the authors' MATLAB release (``brisquescore.m``).

Features (``brisque_feature.m``): grey image (0-255), two scales (the second from MATLAB's
bicubic ``imresize(.., 0.5)``); MSCN coefficients with a 7x7 Gaussian and zero padding
(``filter2(.., 'same')``); per scale a GGD fit (shape, variance) and AGGD fits (shape, mean,
left and right variance) of the products with the four neighbours (circular shifts
[0 1; 1 0; 1 1; -1 1]): 36 numbers. They are printed with ``%f``, scaled to [-1, 1] with the
release's ``allrange`` (``svm-scale``, whose output is ``%g``, 6 significant digits, both
emulated here) and fed to the release's epsilon-SVR with an RBF kernel (``allmodel``): the
score is sum_i c_i exp(-gamma |x - sv_i|^2) - rho, evaluated in numpy (no libsvm needed).
Lower is better; typically 0-100 but not bounded.

Model files: a folder with ``svm.txt`` (the libsvm model) and ``normalize.json``
(``{"min_": [...36], "max_": [...36]}``), e.g. ``shared/weights/brisque/``. Nothing is
downloaded; the folder must be given. OpenCV's ``cv2.quality.QualityBRISQUE`` (with
``brisque_model_live.yml``) lives in opencv-contrib, which is not in our opencv-python-headless
wheel (``hasattr(cv2, "quality")`` is False) and would replace it, so it is not used.

Not calibrated: on the IQA-PyTorch calibration images this gives 94.94, -8.92, 12.82, 16.75,
75.18 against the reference 94.64, -0.11, 0.99, 5.36, 72.26. ``normalize.json`` holds the
inline range of a C++ port (``computescore.cpp``), not the MATLAB release's ``allrange``
(first rows 0.338..10, 0.017204..0.806612); with ``allrange`` the scores are 94.49, -3.32,
-1.70, 6.38, 91.46, closer on four images but still off, so neither is adopted yet.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from facesr.metrics._matlab import (
    aggd_features,
    circshift,
    fit_ggd,
    gray_uint8,
    imresize,
    mscn,
    y_bt601,
)

N_FEATURES = 36
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
MIN_SIDE = 16


@dataclass(frozen=True)
class BrisqueModel:
    """An RBF epsilon-SVR and its feature range (see module docs)."""

    support_vectors: np.ndarray  # (S, 36), scaled feature space
    coefs: np.ndarray  # (S,)
    rho: float
    gamma: float
    feat_min: np.ndarray  # (36,)
    feat_max: np.ndarray  # (36,)


def load_brisque_model(folder: str | os.PathLike) -> BrisqueModel:
    """Read ``svm.txt`` (libsvm text model, RBF epsilon-SVR) and ``normalize.json``.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: the model is not an RBF epsilon-SVR over 36 features.
    """
    root = Path(folder)
    svm, norm = root / "svm.txt", root / "normalize.json"
    for p in (svm, norm):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: BRISQUE model file not found (pass brisque_model="
                                    "<folder with svm.txt and normalize.json>, e.g. "
                                    "shared/weights/brisque)")
    header: dict[str, str] = {}
    lines = svm.read_text().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "SV"), None)
    if start is None:
        raise ValueError(f"{svm}: no 'SV' section (not a libsvm model)")
    for ln in lines[:start]:
        key, _, value = ln.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(f"{svm}: expected an RBF epsilon_svr, got {header.get('svm_type')} / "
                         f"{header.get('kernel_type')}")
    coefs, rows = [], []
    for ln in lines[start + 1:]:
        parts = ln.split()
        if not parts:
            continue
        coefs.append(float(parts[0]))
        row = np.zeros(N_FEATURES)
        for item in parts[1:]:
            idx, _, val = item.partition(":")
            if not 1 <= int(idx) <= N_FEATURES:
                raise ValueError(f"{svm}: feature index {idx} outside 1..{N_FEATURES}")
            row[int(idx) - 1] = float(val)
        rows.append(row)
    rng = json.loads(norm.read_text())
    fmin, fmax = np.asarray(rng["min_"], np.float64), np.asarray(rng["max_"], np.float64)
    if fmin.shape != (N_FEATURES,) or fmax.shape != (N_FEATURES,):
        raise ValueError(f"{norm}: expected {N_FEATURES} min_ and max_ values")
    return BrisqueModel(np.array(rows), np.array(coefs), float(header["rho"]),
                        float(header["gamma"]), fmin, fmax)


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a grey image on the 0-255 scale (``brisque_feature.m``).

    Shape: (H, W) -> (36,).
    """
    feat: list[float] = []
    img = gray
    for _ in range(2):
        coef, _ = mscn(img, "zero")
        alpha, std = fit_ggd(coef.ravel())
        feat += [alpha, std**2]
        for shift in _SHIFTS:
            feat += aggd_features((coef * circshift(coef, shift)).ravel(), beta=False)
        img = imresize(img, 0.5)
    return np.array(feat)


def _g6(x: np.ndarray) -> np.ndarray:
    """Round to 6 significant digits, as C's ``%g``."""
    return np.array([float(f"{v:g}") for v in x])


def brisque_score(features: np.ndarray, model: BrisqueModel) -> float:
    """The SVR prediction for one feature vector (after ``%f`` / ``svm-scale`` rounding)."""
    f = np.round(features, 6)  # brisquescore.m writes the features with %f
    # svm-scale maps [min, max] to [-1, 1] linearly and does not clip values outside it
    scaled = _g6(-1.0 + 2.0 * (f - model.feat_min) / (model.feat_max - model.feat_min))
    d2 = ((model.support_vectors - scaled[None]) ** 2).sum(axis=1)
    return float(model.coefs @ np.exp(-model.gamma * d2) - model.rho)


def brisque(img: Tensor, model: BrisqueModel, *, color: str = "gray",
            crop_border: int = 0) -> float:
    """BRISQUE of one RGB image.

    Args:
        img: (3, H, W) in [0, 1], H, W >= 16.
        color: ``"gray"`` = MATLAB ``rgb2gray`` of the 8-bit image (the reference values);
            ``"y"`` = rounded BT.601 Y.
        crop_border: pixels removed from each side first.
    """
    g = gray_uint8(img) if color == "gray" else y_bt601(img, quantize=True)
    if crop_border:
        g = g[crop_border:-crop_border, crop_border:-crop_border]
    if min(g.shape) < MIN_SIDE:
        raise ValueError(f"image {g.shape[1]}x{g.shape[0]} px is smaller than BRISQUE's "
                         f"{MIN_SIDE} px minimum")
    return brisque_score(brisque_features(g), model)
