"""Metrics for a benchmark: chosen from the registry, checked up front, one image at a time.

Each metric gets its own :class:`facesr.metrics.Scorer`, so a metric that cannot be computed
on one image (MS-SSIM on a small face, NIQE on a flat one) leaves that cell empty with a note
while the other metrics of the image are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import Tensor

SYNTHETIC_DEFAULT = ("psnr", "psnr_rgb", "ssim", "lpips", "ms_ssim", "niqe", "brisque", "color_r",
                     "color_g", "color_b", "color_abs", "identity", "identity_same")
REAL_DEFAULT = ("niqe", "brisque", "piqe")


OPTIONAL_DEFAULT = ("identity", "identity_same")  # default only where the extra is installed


def default_metrics(with_reference: bool) -> list[str]:
    """The default metrics that are registered in :data:`facesr.metrics.METRICS` now; the
    identity metrics only where their optional extra (``.[identity]``) is installed."""
    from facesr.metrics import METRICS

    names = SYNTHETIC_DEFAULT if with_reference else REAL_DEFAULT
    return [n for n in names if n in METRICS
            and (n not in OPTIONAL_DEFAULT or identity_available())]


def identity_available() -> bool:
    """True where dlib and the face-recognition models are installed (the ``identity`` extra)."""
    import importlib.util

    from facesr.metrics.errors import WeightsUnavailableError
    from facesr.metrics.identity import find_identity_models

    if importlib.util.find_spec("dlib") is None:
        return False
    try:
        find_identity_models()
    except WeightsUnavailableError:
        return False
    return True


def check_metrics(names: list[str], with_reference: bool) -> None:
    """Validate metric names for a benchmark with or without reference images.

    Raises:
        ValueError: an empty list, a repeated or unknown name, or a full-reference metric
            where there is no reference.
    """
    from facesr.metrics import METRICS

    if not names:
        raise ValueError("no metrics given")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"metric(s) given twice: {', '.join(dupes)}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    if not with_reference:
        fullref = [n for n in names if METRICS[n].needs_reference]
        if fullref:
            noref = [n for n, s in METRICS.items() if not s.needs_reference]
            raise ValueError(f"{', '.join(fullref)} need(s) a reference image, and real "
                             f"faces have none: use no-reference metrics ({', '.join(noref)})")


class MetricLoadError(Exception):
    """A metric of a benchmark cannot be loaded (its weights are missing, ...)."""

    def __init__(self, metric: str, cause: Exception) -> None:
        super().__init__(f"metric {metric} cannot be used: {cause}")
        self.metric = metric


@dataclass
class MetricSet:
    """Loaded metrics; ``score(pred, ref)`` -> (scores with None for failures, notes)."""

    names: list[str]
    scorers: dict  # name -> facesr.metrics.Scorer

    @classmethod
    def load(cls, names: list[str], *, weights_dir: str | os.PathLike | None = None,
             device: str = "cpu", crop_border: int = 0) -> MetricSet:
        """Load every metric's weights now.

        Raises:
            MetricLoadError: a metric cannot be loaded (a missing weight file, ...); it names
                the metric.
            KeyError: an unknown name.
        """
        from facesr.metrics import Scorer

        scorers = {}
        for n in names:
            try:
                scorers[n] = Scorer([n], weights_dir=weights_dir, device=device,
                                    crop_border=crop_border)
            except (FileNotFoundError, NotImplementedError, ValueError, ImportError) as e:
                raise MetricLoadError(n, e) from e
        return cls(list(names), scorers)

    def score(self, pred: Tensor, ref: Tensor | None = None
              ) -> tuple[dict[str, float | None], dict[str, str]]:
        """Every metric on one (3, H, W) image; one that raises ValueError / RuntimeError
        scores None, and its one-line reason is in the notes."""
        scores: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        for name, scorer in self.scorers.items():
            try:
                scores[name] = scorer.measure(name, pred, ref)
            except (ValueError, RuntimeError) as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                scores[name] = None
                notes[name] = f"{type(e).__name__}: {first}"
        return scores, notes
