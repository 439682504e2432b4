"""The benchmark's HTML page: the table, then every image side by side (LR, each method, HR).

One self-contained file (inline CSS, no scripts, nothing fetched) that links the images by
relative paths inside the output folder, so the folder can be moved or zipped as a whole.
Nothing here touches files: :func:`report_html` returns the page as a string.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from facesr.eval.tables import ARROWS, Row, best_methods, format_cell

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table.scores { border-collapse: collapse; margin: 1em 0; }
table.scores td, table.scores th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.scores td:first-child, table.scores th:first-child { text-align: left; }
.facts { color: #555; font-size: 12px; }
.image { margin: 1.5em 0; border-top: 1px solid #ddd; padding-top: .5em; }
.row { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 192px; }
figure img { width: 192px; height: auto; display: block; background: #eee; }
figure.lr img { image-rendering: pixelated; }
figcaption { font-size: 12px; }
figcaption b { display: block; }
.note { color: #a60; font-size: 12px; }
"""


@dataclass(frozen=True)
class Tile:
    """One picture of an image's row: ``src`` is a path relative to the page."""

    label: str
    src: str
    caption: str = ""
    kind: str = "method"  # "lr", "method" or "hr" (the LR is drawn with square pixels)


def score_caption(scores: Mapping[str, float | None], metrics: Sequence[str]) -> str:
    """``psnr 28.14 · ssim 0.7912``: 4 significant digits, ``-`` where not computed."""
    parts = []
    for k in metrics:
        v = scores.get(k)
        parts.append(f"{k} {'-' if v is None or math.isnan(v) else f'{v:.4g}'}")
    return " · ".join(parts)


def _table(rows: Sequence[Row], metrics: Sequence[str], directions: Mapping[str, str]) -> str:
    head = "".join(f"<th>{html.escape(k)} {ARROWS.get(directions.get(k, ''), '')}</th>"
                   for k in metrics)
    out = [f'<table class="scores"><tr><th>method</th><th>n</th>{head}<th>s/img</th></tr>']
    best = {k: best_methods(rows, k, directions.get(k, "higher")) for k in metrics}
    for r in rows:
        cells = ""
        for k in metrics:
            c = html.escape(format_cell(r.stats[k], r.n))
            cells += f"<td><b>{c}</b></td>" if r.method in best[k] and len(rows) > 1 \
                else f"<td>{c}</td>"
        secs = "-" if r.seconds is None else f"{r.seconds:.3g}"
        out.append(f"<tr><td>{html.escape(r.method)}</td><td>{r.n}</td>{cells}"
                   f"<td>{secs}</td></tr>")
    return "\n".join(out) + "</table>"


def report_html(*, title: str, facts: Sequence[str], rows: Sequence[Row],
                metrics: Sequence[str], directions: Mapping[str, str],
                images: Sequence[tuple[str, Sequence[Tile]]], notes: Sequence[str] = (),
                paired: str = "", paired_title: str = "") -> str:
    """The page.

    Args:
        title: heading.
        facts: short lines under it (settings, counts).
        rows, metrics, directions: the table (see :mod:`facesr.eval.tables`).
        images: ``(image name, tiles)`` in display order.
        notes: one-line remarks shown under the table (e.g. metrics not computed somewhere).
        paired: the paired comparison with the baseline (Markdown), shown under the table.
        paired_title: the line above it (which baseline, what the cells are).
    """
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             '<div class="facts">' + "<br>".join(html.escape(f) for f in facts) + "</div>",
             _table(rows, metrics, directions)]
    if paired:
        if paired_title:
            parts.append(f'<p class="paired-title">{html.escape(paired_title)}</p>')
        parts.append(f'<pre class="paired">{html.escape(paired)}</pre>')
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for name, tiles in images:
        parts.append(f'<div class="image" id="{html.escape(quote(name))}">'
                     f"<h3>{html.escape(name)}</h3><div class=\"row\">")
        for t in tiles:
            src = html.escape(quote(t.src))
            parts.append(
                f'<figure class="{html.escape(t.kind)}"><a href="{src}"><img src="{src}" '
                f'alt="{html.escape(t.label)}" loading="lazy"></a><figcaption>'
                f"<b>{html.escape(t.label)}</b>{html.escape(t.caption)}</figcaption></figure>")
        parts.append("</div></div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
