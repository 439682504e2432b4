"""``facesr verify OUT_DIR``: recheck every output of ``facesr upscale`` against its record.

For every record (``*.json`` with ``input`` and ``outputs``; other JSON files are skipped) in
OUT_DIR and its subfolders (``upscale`` mirrors its source folders' subfolders; links to folders
are not followed, the hidden ``.<name>.frames`` folders of an unfinished ``--save-video`` are
not searched) each output it lists must be a plain file name in the record's folder, exist,
have the SHA-256 the record holds and carry metadata that names this record and the record's
input, model, frame, notice and facesr version (``facesr.provenance``: the files are checked
against the record, the record against the files). Images that no record of their folder lists
are reported too. Files are named by their path relative to OUT_DIR.

Nothing outside OUT_DIR is read: a record that names ``../x``, an absolute path or a link that
leads out of its folder is reported, not followed. One line per problem on stdout, naming the
file, then a summary; ``--json`` prints the same as one JSON object. Exit code 0 when every
still is ok, 1 otherwise, 2 when OUT_DIR is not a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from facesr.cli._common import err, out, progress
from facesr.imagemeta import read_text
from facesr.io import kind_of
from facesr.provenance import (
    DISCLAIMER,
    FRAME,
    INPUT_SHA256,
    MODEL_SHA256,
    RECORD,
    SOFTWARE,
)

MAX_RECORD_BYTES = 16 << 20  # a record is a few kB; anything this large is not one


@dataclass
class Problem:
    file: str  # the file in OUT_DIR the problem is about (as the record names it, for outputs)
    kind: str  # unreadable, outside, missing, changed, unverifiable, mismatch, unclaimed
    message: str  # one line naming the file
    record: str | None = None


@dataclass
class Still:
    record: str
    status: str = "ok"  # ok, or the kind of its first problem
    outputs: list[dict] = field(default_factory=list)  # {"file", "status"}


@dataclass
class Report:
    folder: str
    stills: list[Still] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped_json: list[str] = field(default_factory=list)  # JSON files that are not records
    unchecked_videos: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.stills)

    def add(self, problem: Problem, still: Still | None = None) -> None:
        self.problems.append(problem)
        if still is not None and still.status == "ok":
            still.status = problem.kind


def _show(name: str) -> str:
    """A name from a file as one printable line (hostile names are quoted)."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)


def _plain(name: str) -> bool:
    """True for a plain file name (no folder part, not absolute, not . or ..)."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name and Path(name).name == name)


def _inside(root: Path, path: Path) -> bool:
    """``path`` (a plain name in ``root``) stays in ``root`` once links are followed."""
    try:
        return path.resolve().parent == root
    except (OSError, RuntimeError):  # a link loop
        return False


def _load_record(path: Path) -> tuple[dict | None, str | None]:
    """(record, None), (None, None) for JSON that is not a record, (None, why) when unreadable."""
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None, f"too large for a record ({path.stat().st_size} bytes)"
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except OSError as e:
        return None, f"cannot read it ({e.strerror or e})"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"
    if isinstance(obj, dict) and "outputs" in obj and "input" in obj:
        return obj, None
    if isinstance(obj, dict) and isinstance(obj.get("video"), dict) and "input" in obj:
        # a --save-video record: its one output is the MP4 (hash only: MP4 tags are not the
        # image metadata that _expected describes)
        v = obj["video"]
        return {**obj, "outputs": [{"file": v.get("file"), "sha256": v.get("sha256"),
                                    "kind": "video"}]}, None
    return None, None


def _expected(rec: dict, rec_name: str) -> dict[str, str]:
    """The metadata every output of ``rec`` must carry (``provenance.image_metadata``)."""
    def get(section: str, key: str) -> object:
        part = rec.get(section)
        return part.get(key) if isinstance(part, dict) else None

    frame = get("input", "frame")
    return {DISCLAIMER: str(rec.get("notice")), SOFTWARE: f"facesr {get('provenance', 'facesr')}",
            RECORD: rec_name, INPUT_SHA256: str(get("input", "sha256") or ""),
            MODEL_SHA256: str(get("model", "sha256") or ""),
            FRAME: "" if frame is None else str(frame)}


def _check_output(root: Path, rec_name: str, rec: dict, index: int, entry: object,
                  still: Still, report: Report, prefix: str = "") -> str | None:
    """Check one ``outputs[index]`` of a record in folder ``root`` (``prefix``: that folder
    relative to OUT_DIR, ``a/b/``, empty for OUT_DIR itself); returns the file name it claims
    (if plain)."""
    rec_name_in = prefix + rec_name
    shown_rec = _show(rec_name_in)
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str):
        report.add(Problem(rec_name_in, "unreadable", f"{shown_rec}: malformed record (outputs"
                           f"[{index}] names no file)", rec_name_in), still)
        return None
    name_in = prefix + name
    shown = _show(name_in)
    if not _plain(name):
        report.add(Problem(name_in, "outside", f"{shown_rec}: lists {name!r}, which is not a "
                           f"file name in {root} (not read)", rec_name_in), still)
        still.outputs.append({"file": name_in, "status": "outside"})
        return None
    path = root / name
    status = "ok"
    if not path.is_file() and not path.is_symlink():
        status = "missing"
        report.add(Problem(name_in, status, f"{shown}: missing (listed by {shown_rec})",
                           rec_name_in), still)
    elif not _inside(root, path):
        status = "outside"
        report.add(Problem(name_in, status, f"{shown}: a link that leads out of {root} (listed "
                           f"by {shown_rec}; not read)", rec_name_in), still)
    else:
        status = _check_file(path, name, rec_name, rec, entry, still, report, prefix)
    still.outputs.append({"file": name_in, "status": status})
    return name


def _check_file(path: Path, name: str, rec_name: str, rec: dict, entry: dict, still: Still,
                report: Report, prefix: str = "") -> str:
    """Check one output file against its record ``rec_name`` (plain names in one folder;
    ``prefix`` names that folder in messages, as in ``_check_output``)."""
    file, label = prefix + name, prefix + rec_name
    shown, shown_rec = _show(file), _show(label)
    try:
        if not path.is_file():
            raise IsADirectoryError(21, "not a file")
        data = path.read_bytes()
    except OSError as e:
        report.add(Problem(file, "missing", f"{shown}: cannot be read ({e.strerror or e}; "
                           f"listed by {shown_rec})", label), still)
        return "missing"
    want = entry.get("sha256")
    if not isinstance(want, str):
        report.add(Problem(file, "unverifiable", f"{shown}: {shown_rec} holds no SHA-256 for "
                           "it (made by an older facesr; redo it with --overwrite)", label),
                   still)
        return "unverifiable"
    if hashlib.sha256(data).hexdigest() != want.lower():
        report.add(Problem(file, "changed", f"{shown}: changed (its SHA-256 is not the one "
                           f"{shown_rec} holds)", label), still)
        return "changed"
    if entry.get("kind") == "video":
        return "ok"
    meta = read_text(data)
    wrong = [k for k, v in _expected(rec, rec_name).items() if meta.get(k) != v]
    if wrong:
        what = ("carries no facesr metadata" if not meta else
                f"its metadata differs from {shown_rec} in {', '.join(wrong)}; the record was "
                "changed, renamed or copied")
        report.add(Problem(label, "mismatch", f"{shown}: {what}", label), still)
        return "mismatch"
    return "ok"


def _folders(root: Path) -> list[tuple[Path, str]]:
    """(folder, its prefix relative to ``root``: ``a/b/``) of ``root`` and its subfolders;
    links are not followed and the hidden ``.<name>.frames`` folders of ``--save-video`` are
    left out."""
    found = [(root, "")]
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (
            (d.startswith(".") and d.endswith(".frames")) or Path(dirpath, d).is_symlink()))
        found += [(Path(dirpath, d), Path(dirpath, d).relative_to(root).as_posix() + "/")
                  for d in dirnames]
    return found


def check_folder(root: Path) -> Report:
    """Check every record in ``root`` and its subfolders and the images no record of their
    folder claims (see the module doc)."""
    root = root.resolve()
    report = Report(str(root))
    folders = [(d, prefix, sorted(p for p in d.iterdir() if not p.name.startswith(".")))
               for d, prefix in _folders(root)]
    with progress() as bar:
        task = bar.add_task("verify", total=sum(
            p.suffix.lower() == ".json" for _, _, entries in folders for p in entries), note="")
        for folder, prefix, entries in folders:
            _check_one_folder(folder, prefix, entries, report, lambda: bar.advance(task))
    return report


def _check_one_folder(root: Path, prefix: str, entries: list[Path], report: Report,
                      advance) -> None:
    """The records of one folder (``prefix``: its path relative to OUT_DIR) and its images
    that none of them claims."""
    claimed: set[str] = set()
    unreadable: list[str] = []
    for path in [p for p in entries if p.suffix.lower() == ".json"]:
        advance()
        label = prefix + path.name
        still = Still(label)
        if not _inside(root, path) or not path.is_file():
            report.stills.append(still)
            why = (f"a link that leads out of {root}" if not _inside(root, path)
                   else "not a regular file")
            report.add(Problem(label, "outside", f"{_show(label)}: {why} (not read)"), still)
            continue
        rec, why = _load_record(path)
        if rec is None and why is None:
            report.skipped_json.append(label)
            continue
        report.stills.append(still)
        if rec is None:
            unreadable.append(path.stem)
            report.add(Problem(label, "unreadable", f"{_show(label)}: unreadable record "
                               f"({why})"), still)
            continue
        outputs = rec.get("outputs")
        if not isinstance(outputs, list):
            report.add(Problem(label, "unreadable", f"{_show(label)}: malformed record "
                               "(outputs is not a list)"), still)
            continue
        for i, entry in enumerate(outputs):
            name = _check_output(root, path.name, rec, i, entry, still, report, prefix)
            if name is not None:
                claimed.add(name)
    for path in entries:
        if path.name in claimed or not path.is_file():
            continue
        label = prefix + path.name
        if kind_of(path) == "video":
            report.unchecked_videos.append(label)
        elif kind_of(path) == "image":
            near = next((s for s in unreadable if path.name.startswith(s + "_")), None)
            why = ("no record claims this image" if near is None else "no readable record "
                   f"claims this image ({_show(prefix + near + '.json')} is not one)")
            report.add(Problem(label, "unclaimed", f"{_show(label)}: {why}"))


def _summary(report: Report) -> str:
    counts: dict[str, int] = {}
    for s in report.stills:
        counts[s.status] = counts.get(s.status, 0) + 1
    n_out = sum(len(s.outputs) for s in report.stills)
    parts = [f"{counts.pop('ok', 0)} ok"] + [f"{n} {k}" for k, n in sorted(counts.items())]
    unclaimed = sum(p.kind == "unclaimed" for p in report.problems)
    text = (f"{len(report.stills)} record(s), {n_out} output(s) in {report.folder}: "
            f"{', '.join(parts)}; {unclaimed} unclaimed image(s)")
    if not report.stills:
        text += "; no facesr records here"
    return text


def verify(
    out_dir: Annotated[Path, typer.Argument(
        help="An output folder of `facesr upscale`.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object "
                                          "(every still and its status).")] = False,
) -> None:
    """Recheck every output in OUT_DIR (and its subfolders) against its record: SHA-256 and
    embedded metadata.

    One line per problem (changed, missing, unreadable record, a record naming a file outside
    OUT_DIR, an image no record claims), then a summary. Exit code 0 when everything is ok, 1
    otherwise (also when OUT_DIR holds no record), 2 when OUT_DIR is not a folder.
    """
    if not out_dir.is_dir():
        err.print("[red]error[/red] " + escape(f"{out_dir}: not a folder"), soft_wrap=True)
        raise typer.Exit(code=2)
    try:
        report = check_folder(out_dir)
    except OSError as e:
        err.print("[red]error[/red] " + escape(f"{out_dir}: cannot read the folder "
                                               f"({e.strerror or e})"), soft_wrap=True)
        raise typer.Exit(code=1) from None
    if as_json:
        doc = {"folder": report.folder, "ok": report.ok, "summary": _summary(report),
               "stills": [asdict(s) for s in report.stills],
               "problems": [asdict(p) for p in report.problems],
               "skipped_json": report.skipped_json, "unchecked_videos": report.unchecked_videos}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for p in report.problems:
            out.print(p.message, soft_wrap=True, markup=False)
        if report.unchecked_videos:
            err.print(f"note: {len(report.unchecked_videos)} video(s) not checked (records list "
                      "the frames a video is made of, not the video)", soft_wrap=True,
                      markup=False)
        out.print(_summary(report), soft_wrap=True, markup=False)
    if not report.ok:
        raise typer.Exit(code=1)
