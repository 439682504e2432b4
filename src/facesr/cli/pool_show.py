"""``facesr pool show``: what a kernel or noise pool holds, as tables and optionally a picture.

The kind of pool is read from the file's metadata (``facesr.degrade.pools.load_pool``); any
other file, or a damaged one, is one error line naming it (exit code 2).

Kernels: count and size; per kernel its source (and frame), its width (the standard
deviations along the principal axes of its second-moment matrix, HR px) and the direction of
the wider axis, and the settings it was estimated with; min/median/max of the widths.
Noise: patch count and size, per-channel mean and std on the 0-255 scale, the settings, and
per source file the stills used and the patches kept.

``--picture`` draws a grid: each kernel scaled to its maximum (white), each noise patch as
grey 128 plus the patch; tiles are enlarged with nearest-neighbour.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from facesr.cli._common import err, out
from facesr.degrade.kernels import principal_widths
from facesr.degrade.pools import KernelPool, NoisePool, PoolError, load_pool, pool_picture
from facesr.io import IMAGE_EXTS, write_image

RECORD_KEYS = ("iters", "seed")  # per-kernel settings shown as columns when records have them


def show(
    file: Annotated[Path, typer.Argument(help="A kernel or noise pool (.safetensors).")],
    picture: Annotated[Path | None, typer.Option(
        "--picture", help="Also draw the kernels or patches as a grid image (.png, .jpg...).",
        show_default=False)] = None,
    max_tiles: Annotated[int, typer.Option(
        min=1, help="At most N tiles in the picture (the first N kernels or patches).")] = 400,
) -> None:
    """Show what a kernel or noise pool holds: sizes, widths or noise statistics, settings."""
    if picture is not None and picture.suffix.lower() not in IMAGE_EXTS:
        raise typer.BadParameter(f"{picture}: use one of {', '.join(sorted(IMAGE_EXTS))}",
                                 param_hint="--picture")
    try:
        pool = load_pool(file)
    except PoolError as e:
        err.print(escape(str(e)), soft_wrap=True)
        raise typer.Exit(2) from None
    if isinstance(pool, KernelPool):
        _show_kernels(file, pool)
    else:
        _show_noise(file, pool)
    if picture is None:
        return
    if picture.resolve() == file.resolve():
        err.print(f"{picture} is the pool itself; choose another --picture")
        raise typer.Exit(2)
    what = "kernels" if isinstance(pool, KernelPool) else "patches"
    try:
        write_image(picture, pool_picture(pool, max_tiles))
    except (OSError, ValueError) as e:
        err.print(f"cannot write the picture: {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(1) from None
    n = len(pool)
    shown = f"all {n}" if n <= max_tiles else f"the first {max_tiles} of {n}"
    out.print(f"wrote {escape(str(picture))}: {shown} {what}", soft_wrap=True)


def _fmt(v: object) -> str:
    if isinstance(v, list):
        return "/".join(map(_fmt, v))
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _settings_line(settings: dict) -> str:
    return ", ".join(f"{k} {_fmt(v)}" for k, v in settings.items()) or "(none recorded)"


def _show_kernels(path: Path, pool: KernelPool) -> None:
    n, k = len(pool), pool.kernels.shape[-1]
    widths = [principal_widths(kern) for kern in pool.kernels]
    used = pool.settings_used(("estimator", "x2_size", *RECORD_KEYS))
    settings = {**pool.settings, **{key: "/".join(map(_fmt, vals)) if len(vals) > 1 else vals[0]
                                    for key, vals in used.items() if vals != [None]}}
    out.print(f"{escape(str(path))}: kernel pool, {n} kernel{'s' * (n != 1)} of {k}x{k} px, "
              f"x{pool.scale}", soft_wrap=True)
    out.print(f"settings: {escape(_settings_line(settings))}", soft_wrap=True)
    cols = [key for key in RECORD_KEYS if any(key in r for r in pool.sources)]
    table = Table(title="kernels (width: std along the principal axes, HR px)",
                  title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("source", overflow="fold")
    table.add_column("frame", justify="right")
    table.add_column("major", justify="right")
    table.add_column("minor", justify="right")
    table.add_column("angle (deg)", justify="right")
    for key in cols:
        table.add_column(key, justify="right")
    for i, (rec, (major, minor, angle)) in enumerate(zip(pool.sources, widths, strict=True)):
        table.add_row(str(i), escape(str(rec.get("source", "?"))), _fmt(rec.get("frame")),
                      f"{major:.2f}", f"{minor:.2f}", f"{angle:.0f}",
                      *(escape(_fmt(rec.get(key))) for key in cols))
    out.print(table)
    summary = Table(title="width summary (HR px)", title_justify="left")
    for name in ("axis", "min", "median", "max"):
        summary.add_column(name, justify="left" if name == "axis" else "right")
    for name, vals in (("major", [w[0] for w in widths]), ("minor", [w[1] for w in widths])):
        vals = [v for v in vals if not math.isnan(v)]
        summary.add_row(name, *(f"{f(vals):.2f}" if vals else "-"
                                for f in (min, statistics.median, max)))
    out.print(summary)


def _show_noise(path: Path, pool: NoisePool) -> None:
    n, size = len(pool), pool.patches.shape[-2:]
    # bucket 0: negative indices, 1..len: the records, len+1: past the end (a damaged file)
    counts = np.bincount(pool.source_index.clamp(-1, len(pool.sources)).numpy() + 1,
                         minlength=len(pool.sources) + 2)
    files: dict[str, list[int]] = {}  # source -> [stills, stills with patches, patches]
    for i, rec in enumerate(pool.sources):
        row = files.setdefault(str(rec.get("source", "?")), [0, 0, 0])
        kept = int(counts[i + 1])
        row[0] += 1
        row[1] += kept > 0
        row[2] += kept
    unknown = n - sum(row[2] for row in files.values())  # indices outside the source list
    out.print(f"{escape(str(path))}: noise pool, {n} patch{'es' * (n != 1)} of "
              f"{size[0]}x{size[1]} px from {sum(r[1] for r in files.values())} of "
              f"{len(pool.sources)} stills ({len(files)} source file{'s' * (len(files) != 1)})",
              soft_wrap=True)
    out.print(f"settings: {escape(_settings_line(pool.settings))}", soft_wrap=True)
    stats = Table(title="noise (0-255 levels)", title_justify="left")
    for name in ("channel", "mean", "std"):
        stats.add_column(name, justify="left" if name == "channel" else "right")
    p = pool.patches.double() * 255.0
    for c, name in enumerate("RGB"):
        stats.add_row(name, f"{float(p[:, c].mean()):+.3f}", f"{float(p[:, c].std()):.2f}")
    stats.add_row("all", f"{float(p.mean()):+.3f}", f"{float(p.std()):.2f}")
    out.print(stats)
    table = Table(title="sources", title_justify="left")
    table.add_column("source", overflow="fold")
    for name in ("stills", "with patches", "patches"):
        table.add_column(name, justify="right")
    for src, (stills, used, kept) in files.items():
        table.add_row(escape(src), str(stills), str(used), str(kept))
    if unknown:
        table.add_row("(no source record)", "-", "-", str(unknown))
    out.print(table)
