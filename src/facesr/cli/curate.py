"""``facesr data curate``: keep sharp, clean, colour target faces.

Writes ``--out LIST`` (UTF-8 text, one absolute path per kept image, in input order) and,
with ``--scores CSV``, one row per image with its scores, decision and reason (bad files
included, with ``error`` as the reason). Both are written atomically once every image is
scored. Scores and default thresholds: :mod:`facesr.data.curate`.

Near-duplicates among the images that pass (re-saved copies, consecutive frames; see
:mod:`facesr.data.dedup`) are then dropped, one kept per group: the one with the most
pixels, and of those the first in sorted path order (the sharpness score is no guide: JPEG
blocking raises it). Dropped images get the reason ``duplicate`` and, in the CSV, the kept
image in ``duplicate_of``. ``--keep-duplicates`` keeps them all.

``--limit N`` scores only the first N images in input order (the arguments in the order
given, each folder's files sorted as :func:`facesr.io.expand_inputs` lists them, each file
once), so runs with a larger limit extend a smaller one's list; the summary line says when it
cut the input. ``--threads N`` sets the CPU threads of torch and OpenCV.
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

import numpy as np
import typer
from rich import box
from rich.table import Table

from facesr.cli._common import (
    BatchReport,
    ThreadsOption,
    err,
    limit_note,
    out,
    progress,
    set_threads,
)
from facesr.data.curate import REASONS, CurateScore, Thresholds, keep, score_image
from facesr.data.dedup import signature, signature_groups
from facesr.io import InputError, atomic_write_text, expand_inputs, read_image_array

_DEFAULT = Thresholds()
CSV_FIELDS = ("path", *(f.name for f in fields(CurateScore)), "keep", "reason", "duplicate_of")


def _scores_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _table(counts: dict[str, Counter], columns: tuple[str, ...]) -> Table:
    """Counts per folder; folders are named relative to their common parent."""
    table = Table(title="HQ curation (an image can fail several criteria)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("folder", overflow="fold", min_width=8)
    for name in ("kept", "total", "kept %", *columns):
        table.add_column(name, justify="right", no_wrap=True)
    root = Path(os.path.commonpath(list(counts)))
    total: Counter = Counter()
    for folder, c in counts.items():
        total.update(c)
        label = Path(folder).relative_to(root).as_posix()
        table.add_row(Path(folder).name if label == "." else label, *_cells(c, columns))
    if len(counts) > 1:
        table.add_row("[bold]all[/bold]", *_cells(total, columns))
    return table


def _cells(c: Counter, columns: tuple[str, ...]) -> list[str]:
    pct = f"{100 * c['kept'] / c['total']:.1f}" if c["total"] else "-"
    return [str(c["kept"]), str(c["total"]), pct, *(str(c[r]) for r in columns)]


def _drop_duplicates(rows: list[dict], sigs: list[np.ndarray]) -> tuple[int, int]:
    """Mark all but one image of each near-duplicate group among the kept ``rows`` (in
    place; ``sigs`` in the same order): the most pixels, then the first path, stays.

    Returns:
        (groups, images dropped).
    """
    kept = [r for r in rows if r["keep"]]
    groups = signature_groups(np.stack(sigs)) if sigs else []
    for group in groups:
        members = [kept[i] for i in group]
        best = min(members, key=lambda r: (-r["width"] * r["height"], r["path"]))
        for r in members:
            if r is not best:
                r.update(keep=0, reason="duplicate", duplicate_of=best["path"])
    return len(groups), sum(len(g) - 1 for g in groups)


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
    keep_duplicates: Annotated[bool, typer.Option(
        "--keep-duplicates", help="Keep near-duplicates (re-saved copies, consecutive "
        "frames); by default one of each group is kept: the largest, then the first path."
    )] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N images in input order (arguments as given, "
        "folders sorted).", show_default=False)] = None,
    threads: ThreadsOption = None,
) -> None:
    """Keep sharp, clean, colour target faces: score HQ images, write the kept list.

    Prints kept/total and rejection reasons per folder, near-duplicates dropped included.

    A bad file gets one error line; the batch goes on and exits with code 1 at the end.
    """
    thresholds = Thresholds(min_side=min_side, min_sharpness=min_sharpness, max_noise=max_noise,
                            min_chroma=None if allow_grey else min_chroma,
                            max_blockiness=max_blockiness)
    set_threads(threads)
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
    cut = limit_note(len(paths[:limit]), len(paths))
    paths = paths[:limit]

    rows: list[dict] = []
    sigs: list[np.ndarray] = []  # of the images that pass, in order
    counts: dict[str, Counter] = {}
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("curate", total=len(paths), note="")
        for path in paths:
            c = counts.setdefault(str(path.parent), Counter())
            c["total"] += 1
            try:
                img = read_image_array(path)
                score = score_image(img)
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
                sigs.append(signature(img))
            rows.append({"path": str(path), **_round(asdict(score)), "keep": int(ok),
                         "reason": reason})
            bar.update(task, advance=1, note=f"kept {len(sigs)}")
    n_groups, n_dropped = (0, 0) if keep_duplicates else _drop_duplicates(rows, sigs)
    seconds = time.perf_counter() - start
    kept = [r["path"] for r in rows if r["keep"]]
    for r in rows:
        c = counts[str(Path(r["path"]).parent)]
        if r["keep"]:
            c["kept"] += 1
        elif r["reason"] != "error":
            c.update(r["reason"].split("+"))

    atomic_write_text(out_list, "".join(f"{p}\n" for p in kept))
    if scores is not None:
        atomic_write_text(scores, _scores_csv(rows))
    columns = (*REASONS, *(() if keep_duplicates else ("duplicate",)), "error")
    out.print(_table(counts, columns))
    dups = ("" if keep_duplicates else " (no near-duplicates)" if not n_groups else
            f" ({n_dropped} near-duplicates dropped, one kept of each of {n_groups} groups)")
    out.print(f"kept {len(kept)} of {len(paths)} images{dups}; "
              + (f"{cut}; " if cut else "") + f"list in {out_list}"
              + (f", scores in {scores}" if scores is not None else ""))
    rate = len(paths) / seconds if seconds > 0 else 0.0
    err.print(f"scored {len(paths)} images in {seconds:.1f} s ({rate:.0f} images/s)")
    report.finish("images")


def _round(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
