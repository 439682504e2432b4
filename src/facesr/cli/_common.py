"""Helpers shared by the commands: console output, progress bars, batch error reports."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from facesr.io import InputError, expand_inputs, kind_of, video_info

T = TypeVar("T")

# results go to stdout; progress, warnings and errors to stderr
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def progress() -> Progress:
    """A progress bar on stderr with count, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=err,
        transient=False,
    )


def track(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Iterate with a progress bar."""
    with progress() as bar:
        task = bar.add_task(description, total=total, note="")
        for item in items:
            yield item
            bar.advance(task)


@dataclass
class BatchReport:
    """Collects per-file failures so a batch goes on; ``finish`` prints a summary."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, path: object, message: str) -> None:
        self.failed.append((str(path), message))
        err.print(f"[red]error[/red] {message}", markup=True, soft_wrap=True)

    def finish(self, what: str = "files") -> None:
        """Print the summary; exit with code 1 when anything failed."""
        msg = f"{self.done} {what} done, {self.skipped} skipped, {len(self.failed)} failed"
        err.print(msg)
        if self.failed:
            raise typer.Exit(code=1)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def collect_inputs(sources: Iterable[Path], report: BatchReport, *, exclude: Path) -> list[Path]:
    """Resolved files of images, folders and videos, each once, none inside ``exclude``.

    A path that does not exist or holds nothing usable is one failure in ``report``.
    """
    root = exclude.resolve()
    paths: list[Path] = []
    for raw in sources:
        try:
            found = expand_inputs([raw])
        except InputError as e:
            report.fail(raw, str(e))
            continue
        paths += [p.resolve() for p in found if root not in p.resolve().parents]
    return list(dict.fromkeys(paths))


def count_stills(files: Iterable[Path], stride: int, max_frames: int | None) -> int:
    """Stills a batch will yield: 1 per image, every ``stride``-th frame per video (capped by
    ``max_frames``); an unreadable video counts 1 (its error). A progress-bar total."""
    total = 0
    for f in files:
        if kind_of(f) == "video":
            try:
                n = -(-max(video_info(f).frames, 1) // stride)
            except InputError:
                n = 1
            total += min(n, max_frames) if max_frames else n
        else:
            total += 1
    return total


def source_tag(path: Path) -> str:
    """8 hex digits of a source's path: keeps output names unique when two sources share a
    stem (pass the resolved path)."""
    return hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]
