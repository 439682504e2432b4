"""Read the outputs of ``facesr evaluate real|synthetic`` that a study is built from.

Layout: ``RESULTS/images/<method>/<image-stem>.png`` (``lr`` and ``hr`` hold the inputs and
references, never study methods) and ``RESULTS/table.csv``, one row per method with a
``method`` column and a mean column per metric, named ``<metric>_mean`` or ``<metric>``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from facesr.io import IMAGE_EXTS
from facesr.study.design import StudyError

NOT_METHODS = frozenset({"lr", "hr"})


def method_folders(results: Path) -> list[str]:
    """Names of the method folders under ``results/images`` (``lr``/``hr`` left out), sorted."""
    root = results / "images"
    if not root.is_dir():
        raise StudyError(f"{root} does not exist: is {results} an output of `facesr evaluate`?")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in NOT_METHODS)


def image_files(folder: Path) -> dict[str, Path]:
    """stem -> image file in one folder; two files with one stem are an error."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in found:
                raise StudyError(f"{folder}: two images named {p.stem!r} "
                                 f"({found[p.stem].name}, {p.name})")
            found[p.stem] = p
    return found


def metric_means(table: Path, metric: str) -> dict[str, float]:
    """method -> the mean of ``metric`` in ``table.csv`` (column ``<metric>_mean``, else
    ``<metric>``); blank or NaN cells are left out."""
    if not table.is_file():
        raise StudyError(f"{table} does not exist: pass --methods, or run `facesr evaluate` "
                         "first")
    with table.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        column = f"{metric}_mean" if f"{metric}_mean" in columns else metric
        if "method" not in columns or column not in columns:
            raise StudyError(f"{table} has no 'method' and '{metric}_mean' (or {metric!r}) "
                             f"columns (it has: {', '.join(columns) or 'none'})")
        values: dict[str, float] = {}
        for row in reader:
            try:
                v = float(row[column])
            except (TypeError, ValueError):
                continue
            if not math.isnan(v):
                values[row["method"]] = v
    return values


def top_methods(values: Mapping[str, float], k: int,
                direction: Literal["higher", "lower"]) -> list[str]:
    """The ``k`` best methods by their metric value, best first (ties by name).

    >>> top_methods({"a": 3.0, "b": 1.0, "c": 2.0}, 2, "lower")
    ['b', 'c']
    """
    if k < 1:
        raise StudyError(f"--top must be at least 1, got {k}")
    sign = -1.0 if direction == "higher" else 1.0
    return sorted(values, key=lambda m: (sign * values[m], m))[:k]


def common_images(files: Iterable[Mapping[str, Path]]) -> list[str]:
    """Stems present in every one of the folders' ``stem -> file`` maps, sorted."""
    maps = list(files)
    if not maps:
        return []
    stems = set(maps[0])
    for m in maps[1:]:
        stems &= set(m)
    return sorted(stems)
