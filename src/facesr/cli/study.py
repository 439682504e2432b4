"""``facesr study create|score``: a blind ranking study (Mean Opinion Rank) of SR outputs.

``create`` reads a ``facesr evaluate`` results folder and writes into ``--out DIR``:

- ``study.html``: the page for raters (one file; images embedded; works offline). It shows each
  image's outputs in a seeded random order as A, B, C, ... under opaque per-output tokens;
- ``key.json``: token -> method for this study id. Keep it: the page cannot be decoded without
  it, and rankings can only be scored with it;
- ``manifest.json``: the settings, the methods (with their metric values) and the images.

``score`` checks the rankings files the page saved against the key and prints Mean Opinion
Rank per method (1 = best).
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from facesr.cli._common import BatchReport, err, out, track
from facesr.io import InputError, atomic_write_text, sha256_file
from facesr.metrics import METRICS
from facesr.study.design import LETTERS, Study, StudyError, plan_study
from facesr.study.page import PageItem, png_data_uri, render_page
from facesr.study.results import (
    NOT_METHODS,
    common_images,
    image_files,
    method_folders,
    metric_means,
    top_methods,
)
from facesr.study.score import MethodRank, RankingError, decode_rankings, mean_opinion_rank


def _stop(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def _choose(results: Path, methods: str | None, top: int, metric: str
            ) -> tuple[list[str], dict[str, float]]:
    """The study's methods (best first when picked by ``metric``) and their metric values."""
    folders = method_folders(results)
    if methods is not None:
        chosen = list(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))
        bad = [m for m in chosen if m in NOT_METHODS or m not in folders]
        if bad:
            raise StudyError(f"--methods: no method folder for {', '.join(bad)} in "
                             f"{results / 'images'} (there: {', '.join(folders) or 'none'})")
        return chosen, {}
    if metric not in METRICS:
        raise StudyError(f"--metric: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    values = metric_means(results / "table.csv", metric)
    no_images = sorted(set(values) - set(folders) - NOT_METHODS)
    if no_images:
        err.print(f"note: left out {', '.join(no_images)}: in table.csv but no images folder")
    values = {m: v for m, v in values.items() if m in folders}
    chosen = top_methods(values, top, METRICS[metric].direction)
    if len(chosen) < top:
        err.print(f"note: only {len(chosen)} methods have a {metric} value and images; "
                  f"--top {top} asked for more")
    return chosen, {m: values[m] for m in chosen}


def create(
    results: Annotated[Path, typer.Option(
        "--results", help="A `facesr evaluate` output folder (images/<method>/, table.csv).",
        exists=True, file_okay=False)],
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Folder to write study.html, key.json and manifest.json to.",
        file_okay=False)],
    methods: Annotated[str | None, typer.Option(
        help="Comma-separated methods to rank (default: the --top best by --metric).",
        show_default=False)] = None,
    top: Annotated[int, typer.Option(min=2, max=len(LETTERS),
                                     help="How many methods to rank.")] = 5,
    metric: Annotated[str, typer.Option(
        help="Metric of table.csv that picks the top methods (best by its direction).")]
    = "niqe",
    images: Annotated[int, typer.Option(
        min=0, help="Images to show, drawn at random (0 = all).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the image draw and the orders.")] = 0,
    lr: Annotated[bool, typer.Option(
        "--lr/--no-lr", help="Show the low-resolution input beside each image, labelled.")]
    = True,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a study already in --out (its rankings become unscorable).")]
    = False,
) -> None:
    """Build a blind ranking page from evaluation results, and the key that decodes it.

    Send only study.html to raters; keep key.json for `facesr study score`.
    """
    if (out_dir / "key.json").exists() and not overwrite:
        raise _stop(f"{out_dir / 'key.json'} exists: a study is already there (its rankings "
                    "need that key); pass --overwrite or choose another --out")
    try:
        chosen, values = _choose(results, methods, top, metric)
        folders = {m: image_files(results / "images" / m) for m in chosen}
        if lr:
            folders["lr"] = image_files(results / "images" / "lr")
        stems = common_images(folders.values())
        if not stems:
            raise StudyError(f"no image has an output from every one of {', '.join(folders)}"
                             + (" (pass --no-lr if there are no inputs)" if lr else ""))
        rng = np.random.default_rng(seed)
        n = len(stems) if images == 0 else min(images, len(stems))
        picked = [stems[i] for i in rng.choice(len(stems), size=n, replace=False)]
        study = plan_study(picked, chosen, rng)
    except StudyError as e:
        raise _stop(str(e)) from None
    left_out = len(set().union(*folders.values())) - len(stems)
    if left_out:
        err.print(f"note: {left_out} images lack an output of some method and are left out")
    if images > len(stems):
        err.print(f"note: --images {images} asked for more than the {len(stems)} available")

    items, size = [], 0
    try:
        for item in track(study.items, len(study.items), "embed images"):
            uris = [png_data_uri(folders[m][item.image]) for m in item.methods]
            shapes = {f"{m} {s[1]}x{s[0]}" for m, (_, s) in zip(item.methods, uris, strict=True)}
            if len({s for _, s in uris}) > 1:
                raise StudyError(f"image {item.image}: the outputs differ in size "
                                 f"({', '.join(sorted(shapes))}), which would unblind them")
            size = size or uris[0][1][1]
            ref = png_data_uri(folders["lr"][item.image])[0] if lr else None
            items.append(PageItem(item.image, ref,
                                  tuple(zip(item.tokens, (u for u, _ in uris), strict=True))))
    except (InputError, StudyError) as e:
        raise _stop(str(e), 1) from None

    page = out_dir / "study.html"
    atomic_write_text(page, render_page(study.study_id, items, size=min(max(size, 96), 512)))
    atomic_write_text(out_dir / "key.json", json.dumps(study.to_key(), indent=2) + "\n")
    manifest = {
        "format": "facesr-study-manifest", "version": 1, "study": study.study_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"results": str(results.resolve()), "methods": methods, "top": top,
                     "metric": None if methods else metric, "images": images, "seed": seed,
                     "lr": lr},
        "methods": list(chosen), "metric_values": values or None,
        "images": [it.image for it in study.items], "images_left_out": left_out,
        "files": {"page": page.name, "page_sha256": sha256_file(page), "key": "key.json"},
    }
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    how = ", ".join(f"{m} ({values[m]:.3f})" for m in chosen) if values else ", ".join(chosen)
    out.print(f"study {study.study_id}: {len(items)} images x {len(chosen)} methods: "
              f"{escape(how)}")
    out.print(f"page {page} ({page.stat().st_size / 1e6:.1f} MB): send it to the raters")
    out.print(f"key {out_dir / 'key.json'}: keep it; `facesr study score` needs it")


def _table(rows: list[MethodRank], study: Study, raters: int) -> Table:
    table = Table(title=f"Mean Opinion Rank, study {study.study_id}: {raters} raters x "
                  f"{len(study.items)} images (1 = best of {len(study.methods)})",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("method", "MOR", "std", "95% CI", "n", "ranked first"):
        table.add_column(name, justify="left" if name == "method" else "right")
    for r in rows:
        table.add_row(r.method, f"{r.mor:.2f}", _num(r.std), "±" + _num(r.ci95), str(r.n),
                      f"{100 * r.best_share:.0f}%")
    return table


def _num(v: float, digits: int = 2) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _csv(rows: list[MethodRank]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "mor", "std", "ci95", "n", "best_share"])
    for r in rows:
        w.writerow([r.method, f"{r.mor:.4f}", _num(r.std, 4), _num(r.ci95, 4), r.n,
                    f"{r.best_share:.4f}"])
    return buf.getvalue()


def _markdown(rows: list[MethodRank]) -> str:
    lines = ["| method | MOR | std | 95% CI | n | ranked first |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.method} | {r.mor:.2f} | {_num(r.std)} | ±{_num(r.ci95)} | {r.n} | "
              f"{100 * r.best_share:.0f}% |" for r in rows]
    return "\n".join(lines) + "\n"


def score(
    rankings: Annotated[list[Path], typer.Argument(
        help="Rankings files saved by study.html.", show_default=False, dir_okay=False)],
    key: Annotated[Path, typer.Option(
        "--key", help="The study's key.json.", exists=True, dir_okay=False)],
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Also write the table to this .csv or .md file.", dir_okay=False)]
    = None,
) -> None:
    """Mean Opinion Rank (1 = best) per method from raters' saved rankings.

    A bad, incomplete or foreign rankings file gets one error line and is skipped; the rest
    are scored, and the command then exits with code 1.
    """
    if out_file is not None and out_file.suffix.lower() not in (".csv", ".md"):
        raise typer.BadParameter("the file name must end in .csv or .md", param_hint="--out")
    try:
        study = Study.from_key(json.loads(key.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, StudyError) as e:
        raise _stop(f"{key}: {e}") from None
    except RecursionError:
        raise _stop(f"{key}: not a study key (JSON nested too deeply)") from None
    report = BatchReport()
    decoded, seen = [], {}
    for path in rankings:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            report.fail(path, f"{path}: cannot read ({e.strerror or e})")
            continue
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            why = (f"{e.msg}, line {e.lineno}" if isinstance(e, json.JSONDecodeError)
                   else "not UTF-8 text")
            report.fail(path, f"{path}: not valid JSON ({why})")
            continue
        except RecursionError:
            report.fail(path, f"{path}: not a study rankings file (JSON nested too deeply)")
            continue
        try:
            r = decode_rankings(data, study)
        except RankingError as e:
            report.fail(path, f"{path}: {e}")
            continue
        fingerprint = (r.rater, tuple(sorted(r.orders.items())))
        if fingerprint in seen:
            err.print(f"skipped {path}: the same rankings as {seen[fingerprint]}")
            report.skipped += 1
            continue
        seen[fingerprint] = path
        decoded.append(r)
        report.done += 1
    names = [r.rater for r in decoded]
    for name in sorted({n for n in names if names.count(n) > 1}):
        err.print(f"note: rater {name!r} has {names.count(name)} different files; all counted")
    if not decoded:
        err.print("[red]error[/red] no usable rankings; nothing scored")
        report.finish("ranking files")
        raise typer.Exit(1)
    rows = mean_opinion_rank(decoded)
    out.print(_table(rows, study, len(decoded)))
    if out_file is not None:
        text = _csv(rows) if out_file.suffix.lower() == ".csv" else _markdown(rows)
        atomic_write_text(out_file, text)
        out.print(f"table written to {out_file}")
    report.finish("ranking files")
