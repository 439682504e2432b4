"""``facesr data curate``: keep sharp, clean, colour target faces.

Writes ``--out LIST`` (UTF-8 text, one absolute path per kept image, in input order) and,
with ``--scores CSV``, one row per image with its scores, decision and reason (bad files
included, with ``error`` as the reason). Both are written atomically once every image is
scored. Scores and default thresholds: :mod:`facesr.data.curate`.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from facesr.cli._common import BatchReport, err, out, progress
from facesr.data.curate import REASONS, CurateScore, Thresholds, keep, score_image
from facesr.io import InputError, atomic_write_text, expand_inputs, read_image_array

_DEFAULT = Thresholds()
CSV_FIELDS = ("path", *(f.name for f in fields(CurateScore)), "keep", "reason")


def _scores_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _table(counts: dict[str, Counter]) -> Table:
    """Counts per folder; folders are named relative to their common parent."""
    table = Table(title="HQ curation (an image can fail several criteria)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("folder", overflow="fold", min_width=8)
    for name in ("kept", "total", "kept %", *REASONS, "error"):
        table.add_column(name, justify="right", no_wrap=True)
    root = Path(os.path.commonpath(list(counts)))
    total: Counter = Counter()
    for folder, c in counts.items():
        total.update(c)
        label = Path(folder).relative_to(root).as_posix()
        table.add_row(Path(folder).name if label == "." else label, *_cells(c))
    if len(counts) > 1:
        table.add_row("[bold]all[/bold]", *_cells(total))
    return table


def _cells(c: Counter) -> list[str]:
    pct = f"{100 * c['kept'] / c['total']:.1f}" if c["total"] else "-"
    return [str(c["kept"]), str(c["total"]), pct, *(str(c[r]) for r in (*REASONS, "error"))]


def curate(
    hq: Annotated[list[Path], typer.Argument(
        help="HQ face images and folders (searched recursively for images).",
        show_default=False)],
    out_list: Annotated[Path, typer.Option(
        "--out", help="Text file to write: one kept image path per line.", dir_okay=False)],
    min_sharpness: Annotated[float, typer.Option(
        min=0.0, help="Minimum variance of the Laplacian of luma at 128 px.")]
    = _DEFAULT.min_sharpness,
    max_noise: Annotated[float, typer.Option(
        min=0.0, help="Maximum noise sigma per channel (0-255 scale).")] = _DEFAULT.max_noise,
    min_side: Annotated[int, typer.Option(
        min=1, help="Minimum short side (px).")] = _DEFAULT.min_side,
    min_chroma: Annotated[float, typer.Option(
        min=0.0, help="Minimum colour not explained by lightness (CIELAB units); grey and "
        "sepia images score under ~2.5.")] = _DEFAULT.min_chroma or 0.0,
    allow_grey: Annotated[bool, typer.Option(
        "--allow-grey", help="Keep grey and sepia images (ignores --min-chroma).")] = False,
    max_blockiness: Annotated[float, typer.Option(
        min=1.0, help="Maximum JPEG 8x8 blockiness ratio (1.0 = none).")]
    = _DEFAULT.max_blockiness,
    scores: Annotated[Path | None, typer.Option(
        "--scores", help="Also write every image's scores and decision to this CSV.",
        dir_okay=False)] = None,
) -> None:
    """Keep sharp, clean, colour target faces: score HQ images, write the kept list.

    Prints kept/total and rejection reasons per folder.

    A bad file gets one error line; the batch goes on and exits with code 1 at the end.
    """
    thresholds = Thresholds(min_side=min_side, min_sharpness=min_sharpness, max_noise=max_noise,
                            min_chroma=None if allow_grey else min_chroma,
                            max_blockiness=max_blockiness)
    report = BatchReport()
    paths: list[Path] = []
    seen: set[Path] = set()
    for raw in hq:
        try:
            found = expand_inputs([raw], kinds=("image",))
        except InputError as e:
            report.fail(raw, str(e))
            continue
        for p in found:
            full = p.absolute()  # not resolve(): keep the user's symlinked paths
            if full not in seen:
                seen.add(full)
                paths.append(full)
    if not paths:
        err.print("[red]error[/red] no images found in the given paths; nothing written")
        raise typer.Exit(code=1)

    kept: list[str] = []
    rows: list[dict] = []
    counts: dict[str, Counter] = {}
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("curate", total=len(paths), note="")
        for path in paths:
            c = counts.setdefault(str(path.parent), Counter())
            c["total"] += 1
            try:
                score = score_image(read_image_array(path))
            except (InputError, OSError) as e:
                msg = str(e) if isinstance(e, InputError) else f"{path}: {e.strerror or e}"
                report.fail(path, msg)
                c["error"] += 1
                rows.append({"path": str(path), "keep": 0, "reason": "error"})
                bar.advance(task)
                continue
            ok, reason = keep(score, thresholds)
            report.done += 1
            if ok:
                kept.append(str(path))
                c["kept"] += 1
            else:
                c.update(reason.split("+"))
            rows.append({"path": str(path), **_round(asdict(score)), "keep": int(ok),
                         "reason": reason})
            bar.update(task, advance=1, note=f"kept {len(kept)}")
    seconds = time.perf_counter() - start

    atomic_write_text(out_list, "".join(f"{p}\n" for p in kept))
    if scores is not None:
        atomic_write_text(scores, _scores_csv(rows))
    out.print(_table(counts))
    out.print(f"kept {len(kept)} of {len(paths)} images; list in {out_list}"
              + (f", scores in {scores}" if scores is not None else ""))
    rate = len(paths) / seconds if seconds > 0 else 0.0
    err.print(f"scored {len(paths)} images in {seconds:.1f} s ({rate:.0f} images/s)")
    report.finish("images")


def _round(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
