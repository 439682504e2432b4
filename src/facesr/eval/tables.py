"""Benchmark tables from per-image results: one row per method (mean, 95% CI, n), as text.

A result is a dict ``{"image": str, "method": str, "scores": {metric: float | None},
"seconds": float}`` (the records ``facesr evaluate`` writes). Nothing here touches files.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from facesr.eval.stats import MeanCI, mean_ci


@dataclass(frozen=True)
class Row:
    """One method's line: ``n`` images scored, per-metric :class:`MeanCI` (None: no value)."""

    method: str
    n: int
    stats: dict[str, MeanCI | None]
    seconds: float | None  # mean seconds per image for the method itself (not the metrics)


def summarize(results: Sequence[Mapping], methods: Sequence[str], metrics: Sequence[str],
              confidence: float = 0.95) -> list[Row]:
    """One :class:`Row` per method, in ``methods`` order; a metric's empty cells are left out
    of its mean (its ``MeanCI.n`` then says on how many images it stands)."""
    rows = []
    for m in methods:
        mine = [r for r in results if r["method"] == m]
        stats: dict[str, MeanCI | None] = {}
        for k in metrics:
            vals = [r["scores"][k] for r in mine if r["scores"].get(k) is not None]
            stats[k] = mean_ci(vals, confidence) if vals else None
        secs = [float(r["seconds"]) for r in mine if r.get("seconds") is not None]
        rows.append(Row(m, len(mine), stats, math.fsum(secs) / len(secs) if secs else None))
    return rows


def _decimals(half: float, mean: float) -> int:
    """Digits after the point: two significant digits of the CI half-width (3 without one)."""
    ref = half if math.isfinite(half) and half > 0 else abs(mean)
    if not math.isfinite(ref) or ref == 0:
        return 3
    return min(6, max(0, 1 - math.floor(math.log10(ref))))


def format_cell(s: MeanCI | None, n_row: int) -> str:
    """``28.39 ± 0.45``; ``(n=5)`` appended when the metric stands on fewer images than the
    row; ``-`` when it has no value."""
    if s is None:
        return "-"
    if math.isnan(s.low):
        text = f"{s.mean:.{_decimals(math.nan, s.mean)}f}"
    else:
        d = _decimals(s.half_width, s.mean)
        text = f"{s.mean:.{d}f} ± {s.half_width:.{d}f}"
    return text + (f" (n={s.n})" if s.n < n_row else "")


ARROWS = {"higher": "↑", "lower": "↓", "zero": "→0"}


def best_methods(rows: Sequence[Row], metric: str, direction: str) -> set[str]:
    """The methods with the best mean of ``metric`` (``direction`` ``higher`` / ``lower`` /
    ``zero``: closest to 0)."""
    vals = {r.method: r.stats[metric].mean for r in rows
            if r.stats.get(metric) is not None and not math.isnan(r.stats[metric].mean)}
    if not vals:
        return set()
    if direction == "zero":
        vals = {m: abs(v) for m, v in vals.items()}
        direction = "lower"
    best = max(vals.values()) if direction == "higher" else min(vals.values())
    return {m for m, v in vals.items() if v == best}


def to_markdown(rows: Sequence[Row], metrics: Sequence[str],
                directions: Mapping[str, str]) -> str:
    """A Markdown table: method, n, ``mean ± CI`` per metric (the best in bold), s/img."""
    head = ["method", "n"] + [f"{k} {ARROWS.get(directions.get(k, ''), '')}".strip()
                              for k in metrics] + ["s/img"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = {k: best_methods(rows, k, directions.get(k, "higher")) for k in metrics}
    for r in rows:
        cells = [r.method, str(r.n)]
        for k in metrics:
            c = format_cell(r.stats[k], r.n)
            cells.append(f"**{c}**" if r.method in best[k] and len(rows) > 1 else c)
        cells.append("-" if r.seconds is None else f"{r.seconds:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(x: float | None) -> str:
    return "" if x is None or math.isnan(x) else repr(float(x))


def to_csv(rows: Sequence[Row], metrics: Sequence[str]) -> str:
    """CSV: method, n, then ``<metric>_mean, _ci_low, _ci_high, _n`` per metric, seconds."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "n"] + [f"{k}_{p}" for k in metrics
                                  for p in ("mean", "ci_low", "ci_high", "n")]
               + ["seconds_per_image"])
    for r in rows:
        cells: list[object] = [r.method, r.n]
        for k in metrics:
            s = r.stats[k]
            cells += ["", "", "", 0] if s is None else [_num(s.mean), _num(s.low),
                                                         _num(s.high), s.n]
        w.writerow(cells + [_num(r.seconds)])
    return buf.getvalue()


def per_image_csv(results: Sequence[Mapping], metrics: Sequence[str]) -> str:
    """CSV: image, method, one column per metric (empty where not computed), notes."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "method", *metrics, "notes"])
    for r in results:
        notes = "; ".join(f"{k}: {v}" for k, v in sorted(r.get("notes", {}).items()))
        w.writerow([r["image"], r["method"], *(_num(r["scores"].get(k)) for k in metrics),
                    notes])
    return buf.getvalue()


@dataclass(frozen=True)
class PairedRow:
    """A method against the baseline on the images both have: per metric the mean difference
    (method - baseline) with its paired 95% t-interval, and on how many images the method was
    better (by the metric's direction) out of how many."""

    method: str
    diffs: dict[str, MeanCI | None]
    wins: dict[str, tuple[int, int]]


def paired(results: Sequence[Mapping], methods: Sequence[str], metrics: Sequence[str],
           baseline: str, directions: Mapping[str, str], confidence: float = 0.95
           ) -> list[PairedRow]:
    """One :class:`PairedRow` per method other than ``baseline`` (a paired comparison: the
    interval of the mean of per-image differences, narrower than comparing two means)."""
    base = {r["image"]: r["scores"] for r in results if r["method"] == baseline}
    rows = []
    for m in methods:
        if m == baseline:
            continue
        mine = {r["image"]: r["scores"] for r in results if r["method"] == m}
        diffs: dict[str, MeanCI | None] = {}
        wins: dict[str, tuple[int, int]] = {}
        for k in metrics:
            pairs = [(mine[i][k], base[i][k]) for i in mine if i in base
                     and mine[i].get(k) is not None and base[i].get(k) is not None]
            d = [a - b for a, b in pairs]
            diffs[k] = mean_ci(d, confidence) if d else None
            way = directions.get(k, "higher")
            better = sum((a > b) if way == "higher" else (a < b) if way == "lower"
                         else (abs(a) < abs(b)) for a, b in pairs)
            wins[k] = (better, len(pairs))
        rows.append(PairedRow(m, diffs, wins))
    return rows


def paired_markdown(rows: Sequence[PairedRow], metrics: Sequence[str], baseline: str) -> str:
    """A Markdown table: per method and metric ``+1.02 [+0.95, +1.09] (60/60)``: the mean
    difference to ``baseline``, its paired 95% interval, and images where it was better."""
    head = ["method"] + [f"Δ{k} vs {baseline}" for k in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.method]
        for k in metrics:
            s = r.diffs[k]
            if s is None:
                cells.append("-")
                continue
            d = _decimals(s.half_width, s.mean)
            ci = "" if math.isnan(s.low) else f" [{s.low:+.{d}f}, {s.high:+.{d}f}]"
            won, n = r.wins[k]
            cells.append(f"{s.mean:+.{d}f}{ci} ({won}/{n})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
