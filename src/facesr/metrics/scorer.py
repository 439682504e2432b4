"""One way to score images with any set of registered metrics: :class:`Scorer`.

Weight files are never downloaded. A metric that needs them looks, in order, in the
``weights_dir`` given to the scorer, in ``$FACESR_WEIGHTS``, and in
``~/.local/share/facesr/weights``; each of these folders has the layout of ``shared/weights``
(``niqe/niqe_pris_params.npz``, ``brisque/svm.txt`` + ``normalize.json``, ``lpips/alex.pth``,
``dists/alpha_beta.pt``, ...). Metrics with other lookups (an installed package's files) say so
in their own docs. A missing file raises :class:`~facesr.metrics.WeightsUnavailableError`
naming every place looked in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from facesr.metrics.errors import WeightsUnavailableError

Measure = Callable[[Tensor, Tensor | None], float]

ENV_WEIGHTS = "FACESR_WEIGHTS"
USER_WEIGHTS = Path("~/.local/share/facesr/weights")


def weight_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for metric weights, in order (see the module docs)."""
    dirs = [Path(weights_dir)] if weights_dir is not None else []
    if os.environ.get(ENV_WEIGHTS):
        dirs.append(Path(os.environ[ENV_WEIGHTS]))
    dirs.append(USER_WEIGHTS.expanduser())
    return dirs


def find_weights(relative: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The first ``<dir>/<relative>`` that exists among :func:`weight_dirs`.

    Raises:
        WeightsUnavailableError: found nowhere (the message lists where it looked).
    """
    tried = [d / relative for d in weight_dirs(weights_dir)]
    for p in tried:
        if p.exists():
            return p
    raise WeightsUnavailableError(
        f"weights not available: {relative} not found in " + ", ".join(map(str, tried))
        + f" (pass a weights folder laid out like shared/weights, or set ${ENV_WEIGHTS})")


class Scorer:
    """Scores one image (and its reference) with several metrics; weights load once.

    Example:
        >>> s = Scorer(["psnr", "ssim"])
        >>> x = torch.rand(3, 32, 32)
        >>> s(x, x)["ssim"]
        1.0

    Args:
        names: metric names of :data:`facesr.metrics.METRICS`.
        weights_dir: folder searched first for weight files (module docs).
        device: torch device for the network metrics.
        crop_border: pixels removed from each side of both images before every metric.

    Colour spaces are each metric's default: PSNR / SSIM / MS-SSIM on BT.601 Y; NLPD, NIQE,
    BRISQUE, PIQE on MATLAB ``rgb2gray`` of the 8-bit image; LPIPS / DISTS / identity on RGB.
    Call the metric functions themselves for other choices (``color=``, MS-SSIM's
    ``pooling=``).

    Raises:
        KeyError: an unknown metric name (the message lists the known ones).
        WeightsUnavailableError: a metric's weights are missing (raised here, at construction,
            not in the middle of a benchmark).
    """

    def __init__(self, names: Sequence[str], *, weights_dir: str | os.PathLike | None = None,
                 device: str = "cpu", crop_border: int = 0) -> None:
        from facesr.metrics import METRICS

        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise KeyError(f"unknown metric(s) {', '.join(unknown)}; known: "
                           + ", ".join(METRICS))
        self.names = list(names)
        self.needs_reference = {n: METRICS[n].needs_reference for n in names}
        ctx: dict[str, Any] = {"weights_dir": weights_dir, "device": device,
                               "crop_border": crop_border}
        self._measures: dict[str, Measure] = {n: METRICS[n].build(ctx) for n in names}

    def measure(self, name: str, pred: Tensor, ref: Tensor | None = None) -> float:
        """One metric of this scorer on ``pred`` ((3, H, W), RGB in [0, 1]) and ``ref``.

        Raises:
            ValueError: the metric cannot score this image (e.g. too small), or it needs a
                reference and ``ref`` is None.
        """
        if self.needs_reference[name] and ref is None:
            raise ValueError(f"{name} needs a reference image")
        return float(self._measures[name](pred, ref))

    def __call__(self, pred: Tensor, ref: Tensor | None = None) -> dict[str, float]:
        """Scores of ``pred`` ((3, H, W), RGB in [0, 1]); full-reference metrics need ``ref``
        of the same shape and are skipped (absent from the result) when it is None."""
        return {n: self.measure(n, pred, ref) for n in self.names
                if ref is not None or not self.needs_reference[n]}
