"""Mean Opinion Rank from the rankings files a study page saves.

MOR of a method = its mean rank (1 = best) over every (image, rater) ranking; the spread is
the sample standard deviation of those ranks and a 95% Student-t interval of the mean. The
ranks of one image are not independent (they are a permutation), so read the interval as a
guide, not a test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facesr.eval.stats import mean_ci
from facesr.study.design import Study
from facesr.study.page import RANKINGS_FORMAT, RANKINGS_VERSION


class RankingError(ValueError):
    """A rankings file that cannot be scored against this key; one-line message."""


@dataclass(frozen=True)
class RaterRankings:
    """One rater's rankings, decoded: image -> methods, best first."""

    study_id: str
    rater: str
    orders: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class MethodRank:
    """One method's Mean Opinion Rank (1 = best) and its spread over ``n`` rankings."""

    method: str
    mor: float
    std: float
    ci95: float
    n: int
    best_share: float  # fraction of rankings that put it first


def decode_rankings(data: object, study: Study) -> RaterRankings:
    """Check one saved rankings object against the study key and name the methods.

    Raises:
        RankingError: another study, a missing or unknown image, an incomplete or repeated
            ranking, or not a rankings object at all.
    """
    if not isinstance(data, dict) or data.get("format") != RANKINGS_FORMAT:
        raise RankingError(f"not a study rankings file (expected \"format\": "
                           f"\"{RANKINGS_FORMAT}\")")
    if data.get("version") != RANKINGS_VERSION:
        raise RankingError(f"rankings version {_brief(data.get('version'))} is not supported")
    sid = data.get("study")
    if sid != study.study_id:
        raise RankingError(f"rankings are from study {_brief(sid)}, but the key is for study "
                           f"{study.study_id!r}")
    rater, entries = data.get("rater"), data.get("rankings")
    if not isinstance(rater, str) or not isinstance(entries, list):
        raise RankingError("rankings file lacks 'rater' (text) or 'rankings' (a list)")
    method_of = study.method_of()
    expected = {item.image: set(item.tokens) for item in study.items}
    orders: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RankingError(f"rankings entry {i + 1} is not an object with 'image' and "
                               f"'ranking', got {_brief(entry)}")
        if not isinstance(entry.get("image"), str):
            raise RankingError(f"rankings entry {i + 1}: 'image' must be a name (text), got "
                               f"{_brief(entry.get('image'))}")
        image, ranking = entry["image"], entry.get("ranking")
        if image not in expected:
            raise RankingError(f"image {image!r} is not in study {study.study_id!r}")
        if image in orders:
            raise RankingError(f"image {image!r} is ranked twice")
        if (not isinstance(ranking, list) or not all(isinstance(t, str) for t in ranking)
                or len(ranking) != len(expected[image]) or set(ranking) != expected[image]):
            n_got = len(ranking) if isinstance(ranking, list) else 0
            raise RankingError(f"incomplete ranking of image {image!r}: expected all "
                               f"{len(expected[image])} of its pictures once, got {n_got}")
        orders[image] = tuple(method_of[t] for t in ranking)
    missing = [im for im in expected if im not in orders]
    if missing:
        raise RankingError(f"incomplete rankings: {len(missing)} of {len(expected)} images not "
                           f"ranked (first: {missing[0]!r})")
    return RaterRankings(sid, rater, orders)


def _brief(value: object) -> str:
    """A short, safe description of a JSON value for a message (no deep repr)."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return f"a JSON {'object' if isinstance(value, dict) else 'list'}"


def mean_opinion_rank(rankings: Sequence[RaterRankings]) -> list[MethodRank]:
    """MOR per method over all images x raters, best (lowest) first.

    >>> r = RaterRankings("s", "ann", {"x": ("a", "b"), "y": ("b", "a")})
    >>> [(m.method, m.mor, m.n) for m in mean_opinion_rank([r])]
    [('a', 1.5, 2), ('b', 1.5, 2)]
    """
    ranks: dict[str, list[int]] = {}
    for r in rankings:
        for order in r.orders.values():
            for pos, method in enumerate(order, start=1):
                ranks.setdefault(method, []).append(pos)
    rows = []
    for method, xs in ranks.items():
        a = np.asarray(xs, dtype=np.float64)
        m = mean_ci(xs)
        std = float(a.std(ddof=1)) if m.n > 1 else math.nan
        rows.append(MethodRank(method, m.mean, std, m.half_width, m.n, float((a == 1).mean())))
    return sorted(rows, key=lambda m: (m.mor, m.method))
