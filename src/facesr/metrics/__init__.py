"""Image quality metrics and the one registry of them, :data:`METRICS`.

Every spec says which way is better, the usual range, whether a reference image is needed and
which weight files are needed (weights are never downloaded: their paths are arguments).
The callables keep their own signatures (see each function's docstring):

- full-reference (:mod:`facesr.metrics.fullref`): ``fn(pred, ref, *, color, crop_border)`` on
  (N, 3, H, W) batches -> (N,);
- no-reference (:mod:`facesr.metrics.niqe`, :mod:`facesr.metrics.brisque`): one (3, H, W)
  image plus the loaded model -> float.

NRQM, PI and NIMA are listed but not implemented: their callables raise
:class:`WeightsUnavailableError` naming the file they need.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from facesr.metrics.brisque import brisque, load_brisque_model
from facesr.metrics.fullref import ms_ssim, psnr, ssim
from facesr.metrics.niqe import load_niqe_params, niqe

__all__ = ["METRICS", "MetricSpec", "WeightsUnavailableError", "brisque", "load_brisque_model",
           "load_niqe_params", "ms_ssim", "niqe", "psnr", "ssim"]


class WeightsUnavailableError(FileNotFoundError):
    """A metric's weight file is not available (nothing is ever downloaded)."""


@dataclass(frozen=True)
class MetricSpec:
    """How to read and call one metric.

    Attributes:
        direction: ``"higher"`` or ``"lower"`` is better.
        range: (low, high) of the usual values; ``inf`` where unbounded.
        needs_reference: a full-reference metric (compares with a ground-truth image).
        needs_weights: the weight / model files and their documented standard location, or
            None when the metric needs none.
        fn: the metric (signatures differ, see the module docs).
    """

    direction: Literal["higher", "lower"]
    range: tuple[float, float]
    needs_reference: bool
    needs_weights: str | None
    fn: Callable[..., Any]


def _unavailable(metric: str, file: str) -> Callable[..., Any]:
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
    fn.__doc__ = f"Placeholder for {metric}: raises WeightsUnavailableError (needs {file})."
    return fn


_INF = float("inf")

METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("higher", (0.0, _INF), True, None, psnr),
    "ssim": MetricSpec("higher", (-1.0, 1.0), True, None, ssim),
    "ms_ssim": MetricSpec("higher", (0.0, 1.0), True, None, ms_ssim),
    "niqe": MetricSpec("lower", (0.0, _INF), False,
                       "niqe_pris_params.npz (shared/weights/niqe/)", niqe),
    "brisque": MetricSpec("lower", (-_INF, _INF), False,
                          "svm.txt + normalize.json (shared/weights/brisque/)", brisque),
    # Ma, Yang, Yang, Yang, "Learning a no-reference quality metric for single-image
    # super-resolution", CVIU 2017 (the authors' MATLAB release).
    "nrqm": MetricSpec("higher", (0.0, 10.0), False, "NRQM_model.mat (shared/weights/nrqm/)",
                       _unavailable("nrqm", "NRQM_model.mat")),
    # Blau, Mechrez, Timofte, Michaeli, Zelnik-Manor, "The 2018 PIRM challenge on perceptual
    # image super-resolution": PI = ((10 - NRQM) + NIQE) / 2, so it needs NRQM's model.
    "pi": MetricSpec("lower", (0.0, _INF), False, "NRQM_model.mat (shared/weights/nrqm/)",
                     _unavailable("pi", "NRQM_model.mat")),
    # Talebi, Milanfar, "NIMA: Neural image assessment", IEEE TIP 2018 (AVA-trained head).
    "nima": MetricSpec("higher", (1.0, 10.0), False,
                       "nima_inception_v2_ava.pth (shared/weights/nima/)",
                       _unavailable("nima", "nima_inception_v2_ava.pth")),
}
