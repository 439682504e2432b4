"""Everything a finished benchmark folder shows, rendered from its records as text.

:func:`render` turns the input and result records into the contents of ``table.md``,
``table.csv``, ``per_image.csv`` and ``report.html`` (the caller writes them), plus the notes
on metrics that could not be computed somewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from facesr.eval.records import ordered_results
from facesr.eval.report import Tile, report_html, score_caption
from facesr.eval.tables import (
    paired,
    paired_markdown,
    per_image_csv,
    summarize,
    to_csv,
    to_markdown,
)

BASELINE = "bicubic"  # the default baseline when among the methods (else the first method)


def default_baseline(methods: Sequence[str]) -> str | None:
    """The method others are compared with image by image when none is chosen: bicubic when
    among ``methods``, else the first (None for no methods)."""
    return BASELINE if BASELINE in methods else (methods[0] if methods else None)


@dataclass(frozen=True)
class Rendered:
    files: dict[str, str]  # file name in the output folder -> text
    markdown: str  # the table, for the terminal
    notes: list[str]  # one line per metric left empty somewhere


def metric_notes(results: Sequence[Mapping], metrics: Sequence[str]) -> list[str]:
    """One line per metric that failed on some outputs: how often, and the first reason."""
    notes = []
    for k in metrics:
        bad = [r["notes"][k] for r in results if k in r.get("notes", {})]
        if bad:
            notes.append(f"{k}: not computed on {len(bad)} of {len(results)} outputs, cells "
                         f"left empty (e.g. {bad[0]})")
    return notes


def render(*, images: Sequence[str], inputs: Mapping[str, Mapping],
           results: Mapping[tuple[str, str], Mapping], methods: Sequence[str],
           metrics: Sequence[str], directions: Mapping[str, str], settings: Mapping,
           baseline: str | None = None) -> Rendered:
    """The folder's tables and page.

    Args:
        images: image names in display order (each with an input record).
        inputs: input records by image (``lr_size`` is used).
        results: result records by ``(image, method)``.
        methods, metrics: column and row order.
        directions: ``higher`` / ``lower`` per metric.
        settings: the run's settings (``mode``, ``crop_border``; synthetic: ``preset``,
            ``seed``, ``degradation``).
        baseline: the method of ``methods`` the others are paired with (``paired.md``, the
            paired section of ``table.md`` and the page); None: :func:`default_baseline`.
            Only the tables depend on it, never a result.

    Raises:
        ValueError: ``baseline`` is not one of ``methods``.
    """
    rows_in = ordered_results(results, images, methods)
    rows = summarize(rows_in, methods, metrics)
    notes = metric_notes(rows_in, metrics)
    md = to_markdown(rows, metrics, directions)
    files = {}
    pair_md = ""
    if baseline is None:
        baseline = default_baseline(methods)
    elif baseline not in methods:
        raise ValueError(f"baseline {baseline!r} is not one of the methods "
                         f"({', '.join(methods)})")
    pair_title = ""
    if baseline is not None and len(methods) > 1:
        pair_md = paired_markdown(paired(rows_in, methods, metrics, baseline, directions),
                                  metrics, baseline)
        files["paired.md"] = pair_md
        pair_title = (f"Paired with the baseline {baseline} on the same images: each method "
                      f"minus {baseline}, mean difference, its 95% interval, (images where the "
                      "method was better / images)")
        md += f"\n{pair_title}:\n\n{pair_md}"
    synthetic = settings["mode"] == "synthetic"
    pictures = []
    for n in images:
        h, w = inputs[n]["lr_size"]
        tiles = [Tile(f"LR input {w}x{h}", f"images/lr/{n}.png", kind="lr")]
        tiles += [Tile(m, f"images/{m}/{n}.png", score_caption(results[(n, m)]["scores"],
                                                                metrics))
                  for m in methods if (n, m) in results]
        if synthetic:
            tiles.append(Tile("HR reference", f"images/hr/{n}.png", kind="hr"))
        pictures.append((n, tiles))
    facts = [f"{len(images)} images, metrics {', '.join(metrics)}, crop border "
             f"{settings['crop_border']} px; the table gives mean ± half-width of the 95% "
             "t-interval over images"]
    if synthetic:
        facts.append(f"degradation: preset {settings['preset']}, seed {settings['seed']}, "
                     + json.dumps(settings["degradation"]))
    facts.append("Details in super-resolved images are synthesised by the models; they are "
                 "not evidence and must not be used to identify anyone.")
    page = report_html(title=f"facesr evaluate {settings['mode']}", facts=facts, rows=rows,
                       metrics=metrics, directions=directions, images=pictures, notes=notes,
                       paired=pair_md, paired_title=pair_title)
    files.update({"table.md": md, "table.csv": to_csv(rows, metrics),
                  "per_image.csv": per_image_csv(rows_in, metrics), "report.html": page})
    return Rendered(files, md, notes)
