"""Summary statistics for benchmark tables: the mean with a t-distribution confidence interval."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MeanCI:
    """The mean of ``n`` values and its confidence interval ``[low, high]``.

    With fewer than two values the interval is undefined (``low`` and ``high`` are NaN).
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> MeanCI:
    """Mean and two-sided ``confidence`` interval of the mean, Student's t over the values.

    The interval is ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (ddof 1): images are the samples, so it says how far the mean of another draw
    of as many images would move.

    Example:
        >>> r = mean_ci([0.0, 2.0])
        >>> round(r.mean, 3), round(r.high, 3)  # t_{0.975, 1} = 12.706
        (1.0, 13.706)

    Raises:
        ValueError: no values, or ``confidence`` outside (0, 1).
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("no values to summarise")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, n)
    from scipy.stats import t  # scipy comes with scikit-image; imported only when needed

    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n)
