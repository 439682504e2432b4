"""Helpers shared by the commands: console output, progress bars, batch error reports, thread
counts, ``--limit`` notes, output folder locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from facesr.io import InputError, expand_inputs, is_partial, kind_of, video_info

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
    left: int = 0  # not attempted: the batch stopped early (e.g. the disk is full)

    def fail(self, path: object, message: str) -> None:
        self.failed.append((str(path), message))
        err.print(f"[red]error[/red] {escape(message)}", markup=True, soft_wrap=True)

    def finish(self, what: str = "files") -> None:
        """Print the summary; exit with code 1 when anything failed."""
        msg = f"{self.done} {what} done, {self.skipped} skipped, {len(self.failed)} failed"
        err.print(msg + (f", {self.left} not attempted" if self.left else ""))
        if self.failed:
            raise typer.Exit(code=1)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# ``--threads`` of the data commands (curate, pairs), applied with :func:`set_threads`
ThreadsOption = Annotated[int | None, typer.Option(
    min=1, help="CPU threads for torch and OpenCV (default: all).", show_default=False)]


def set_threads(threads: int | None) -> None:
    """``--threads N``: CPU threads for torch (intra-op) and OpenCV; None leaves their defaults
    (all cores)."""
    if threads is None:
        return
    if threads < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--threads")
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def limit_note(used: int, total: int) -> str:
    """``'used 100 of 9,689 files (--limit)'`` when ``--limit`` cut the input, else ``''``."""
    return f"used {used:,} of {total:,} files (--limit)" if used < total else ""


def collect_inputs(sources: Iterable[Path], report: BatchReport, *, exclude: Path) -> list[Path]:
    """Resolved files of images, folders and videos, each once, none inside ``exclude``.

    A path that does not exist or holds nothing usable is one failure in ``report``.
    """
    return list(collect_sourced_inputs(sources, report, exclude=exclude))


def collect_sourced_inputs(sources: Iterable[Path], report: BatchReport, *, exclude: Path
                           ) -> dict[Path, tuple[Path, Path]]:
    """:func:`collect_inputs` with where each file came from: resolved file -> (the source
    argument that found it first, the file's path as found under it)."""
    root = exclude.resolve()
    found: dict[Path, tuple[Path, Path]] = {}
    for raw in sources:
        try:
            files = expand_inputs([raw])
        except InputError as e:
            report.fail(raw, str(e))
            continue
        for f in files:
            r = f.resolve()
            if root not in r.parents and r not in found:
                found[r] = (raw, f)
    return found


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


# ----------------------------------------------------------------------------- output folders
LOCK_NAME = ".facesr.lock"


class FolderBusy(Exception):
    """Another process holds an output folder's lock; ``str(e)`` is one line naming both."""


@contextlib.contextmanager
def lock_folder(folder: Path) -> Iterator[None]:
    """Hold ``<folder>/.facesr.lock`` exclusively (``flock``) for the block; never wait.

    The lock file holds the owner's process id and is removed on the way out.

    Raises:
        FolderBusy: another process holds the lock.
        OSError: the lock file cannot be made (e.g. the folder is read-only).
    """
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"process {owner}" if owner.isdigit() else "another process"
            raise FolderBusy(f"{folder} is in use by another facesr run ({who}); wait for it to "
                             "finish or use another --out") from None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break  # still the lock file: its last owner did not remove it meanwhile
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def remove_partial_files(folder: Path) -> int:
    """Delete the temporary files that facesr's atomic writers leave behind when a run is
    killed mid-write (call it holding the folder's lock); returns how many it removed."""
    found = [p for p in folder.iterdir() if is_partial(p.name) and p.is_file()]
    for p in found:
        p.unlink(missing_ok=True)
    return len(found)
