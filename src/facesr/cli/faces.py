"""``facesr faces extract``: save face crops from images, folders and videos with a manifest.

Layout of ``--out DIR``:

- ``<stem>_<hash>_<k>.png`` (images) and ``<stem>_<hash>_f<frame>_<k>.png`` (video frames):
  crops with the margin, clipped to the frame; ``<hash>`` (8 hex digits of the source's
  resolved path) keeps names unique when two sources share a stem.
- ``manifest.jsonl``: one record per crop (see :func:`_record`). In videos every record has a
  ``track`` id (from 0 per source; :mod:`facesr.infer.tracks`): the same face across sampled
  frames, surviving ``--max-gap`` sampled frames without a detection. Images have
  ``track: null``. A resumed video first replays the tracker over the detections already in
  the manifest for the frames before the one it continues from, so ids match an
  uninterrupted run.
- ``sources.jsonl``: one record per finished source, so a re-run skips it.
- ``extract.json``: the settings; a re-run with other settings is refused (use --overwrite).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from facesr.cli._common import (
    BatchReport,
    ThreadsOption,
    collect_inputs,
    err,
    limit_note,
    out,
    progress,
    set_threads,
    source_tag,
)
from facesr.infer.faces import DEFAULT_DETECTOR, DETECTORS, Face, crop, expand_box, make_detector
from facesr.infer.tracks import DEFAULT_MAX_GAP, FaceTracker
from facesr.io import (
    InputError,
    append_jsonl,
    atomic_write_text,
    iter_video_frames,
    kind_of,
    read_image_array,
    read_jsonl,
    video_info,
    write_image,
)

MANIFEST = "manifest.jsonl"
DONE = "sources.jsonl"
SETTINGS = "extract.json"


def crop_name(source: Path, frame: int | None, k: int) -> str:
    """Deterministic crop file name for face ``k`` of ``frame`` (None for images) of a source."""
    part = "" if frame is None else f"_f{frame:06d}"
    return f"{source.stem}_{source_tag(source)}{part}_{k}.png"


def _as_recorded(face: Face) -> Face:
    """``face`` with the precision of its manifest record, so that the tracker sees the same
    numbers on a fresh run and when a resumed run replays the manifest."""
    lms = None if face.landmarks is None else tuple(
        (round(x, 2), round(y, 2)) for x, y in face.landmarks)
    return Face(*(round(v, 2) for v in face.box), round(face.score, 4), lms)


def _from_record(r: dict) -> Face:
    lms = r.get("landmarks")
    return Face(*r["box"], r["score"], None if lms is None else tuple(map(tuple, lms)))


def _record(source: Path, frame: int | None, image: np.ndarray, face: Face,
            box: tuple[int, int, int, int], name: str, detector: str,
            track: int | None) -> dict:
    return {
        "source": str(source),
        "frame": frame,
        "track": track,
        "image_size": [image.shape[1], image.shape[0]],
        "box": [round(v, 2) for v in face.box],
        "score": round(face.score, 4),
        "landmarks": None if face.landmarks is None
        else [[round(x, 2), round(y, 2)] for x, y in face.landmarks],
        "crop_box": list(box),
        "crop": name,
        "crop_size": [box[2], box[3]],
        "detector": detector,
    }


def _frames(path: Path, stride: int, max_frames: int | None) -> Iterator[tuple[int | None,
                                                                              np.ndarray]]:
    if kind_of(path) == "image":
        yield None, read_image_array(path)
    elif kind_of(path) == "video":
        yield from iter_video_frames(path, stride=stride, max_frames=max_frames)
    else:
        raise InputError(path, f"not an image or video (suffix {path.suffix or 'none'!r})")


def _work(path: Path, stride: int, max_frames: int | None) -> int:
    """Frames this source will give (for the progress bar); opens videos to check them."""
    if kind_of(path) != "video":
        return 1
    n = math.ceil(video_info(path).frames / stride)
    return n if max_frames is None else min(n, max_frames)


def _start_fresh(out_dir: Path) -> None:
    """Remove the crops listed in the manifest, the manifest, the done list and the settings."""
    for r in read_jsonl(out_dir / MANIFEST):
        name = str(r.get("crop", ""))
        if name and Path(name).name == name:
            (out_dir / name).unlink(missing_ok=True)
    for f in (MANIFEST, DONE, SETTINGS):
        (out_dir / f).unlink(missing_ok=True)


def _repair_jsonl(path: Path) -> None:
    """Drop a torn last line (left by a killed run) so that the next append starts cleanly."""
    if path.exists() and not path.read_bytes().endswith(b"\n") and path.stat().st_size:
        lines = [json.dumps(r, sort_keys=True) + "\n" for r in read_jsonl(path)]
        atomic_write_text(path, "".join(lines))


def _check_settings(out_dir: Path, settings: dict) -> None:
    path = out_dir / SETTINGS
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in settings.items() if old.get(k) != v]
        if diff:
            raise typer.BadParameter(f"{out_dir} holds crops made with {', '.join(diff)}; "
                                     "pass --overwrite to start again or use another --out",
                                     param_hint="--out")
    atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def extract(
    sources: Annotated[list[Path], typer.Argument(
        help="Images, folders (searched recursively) and videos.", show_default=False)],
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Folder for the crops and manifest.jsonl.", file_okay=False)],
    detector: Annotated[str, typer.Option(
        help=f"One of: {', '.join(DETECTORS)}.")] = DEFAULT_DETECTOR,
    detector_weights: Annotated[Path | None, typer.Option(
        help="Weights file for detectors that need one (yunet: yunet_s_640_640.onnx).")] = None,
    min_size: Annotated[int, typer.Option(
        min=4, help="Ignore faces narrower than this (px).")] = 10,
    margin: Annotated[float, typer.Option(
        min=0.0, help="Margin added on every side of the square face box, as a fraction of "
        "its side.")] = 0.5,
    stride: Annotated[int, typer.Option(min=1, help="Use every Nth video frame.")] = 1,
    max_frames: Annotated[int | None, typer.Option(
        min=1, help="At most this many frames per video.")] = None,
    score_threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Minimum detector score (default: the detector's own).")] = None,
    upscale: Annotated[float, typer.Option(
        min=0.1, max=8.0, help="Resize frames by this factor before detection (helps with "
        "faces under ~12 px).")] = 1.0,
    overwrite: Annotated[bool, typer.Option(
        help="Delete the crops and manifest of an earlier run in --out and start "
        "again.")] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N sources in input order (arguments as given, folders "
        "sorted).", show_default=False)] = None,
    max_gap: Annotated[int, typer.Option(
        min=0, help="Video face tracks survive this many sampled frames without a detection "
        "(then a returning face gets a new track id).")] = DEFAULT_MAX_GAP,
    threads: ThreadsOption = None,
) -> None:
    """Detect faces in images, folders and videos and save crops with a JSONL manifest.

    Re-running with the same --out resumes: finished sources are skipped and no crop or
    record is written twice.
    """
    report = BatchReport()
    set_threads(threads)
    try:
        det = make_detector(detector, weights=None if detector_weights is None
                            else str(detector_weights), score_threshold=score_threshold,
                            min_size=min_size, upscale=upscale)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise typer.BadParameter(str(e), param_hint="--detector / --detector-weights") from None

    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        _start_fresh(out_dir)
    _check_settings(out_dir, {
        "detector": detector, "detector_weights": None if detector_weights is None
        else str(detector_weights.resolve()), "min_size": min_size, "margin": margin,
        "stride": stride, "max_frames": max_frames,
        "score_threshold": getattr(det, "score_threshold", score_threshold),  # in effect
        "upscale": upscale, "max_gap": max_gap})

    # inputs: one failure per bad path, never anything inside --out
    paths = collect_inputs(sources, report, exclude=out_dir)
    cut = limit_note(min(limit or len(paths), len(paths)), len(paths))
    paths = paths[:limit]

    _repair_jsonl(out_dir / MANIFEST)
    _repair_jsonl(out_dir / DONE)
    done = {r.get("source") for r in read_jsonl(out_dir / DONE)}
    records = read_jsonl(out_dir / MANIFEST)
    written = {r.get("crop") for r in records}
    last_frame: dict[str, int] = {}
    recorded: dict[str, dict[int, list[Face]]] = {}  # source: frame: faces (for the tracker)
    for r in records:
        if r.get("frame") is not None:
            last_frame[r["source"]] = max(last_frame.get(r["source"], 0), int(r["frame"]))
            recorded.setdefault(r["source"], {}).setdefault(int(r["frame"]), []).append(
                _from_record(r))

    todo: list[tuple[Path, int]] = []
    for p in paths:
        if str(p) in done:
            report.skipped += 1
            continue
        try:
            todo.append((p, _work(p, stride, max_frames)))
        except InputError as e:
            report.fail(p, str(e))

    faces_found = frames_seen = 0
    with progress() as bar:
        task = bar.add_task("faces", total=sum(n for _, n in todo), note="")
        for path, _ in todo:
            start = last_frame.get(str(path), 0)
            before = recorded.get(str(path), {})
            tracker = FaceTracker(max_gap=max_gap)
            found = 0
            try:
                for frame, image in _frames(path, stride, max_frames):
                    bar.update(task, note=f"{path.name} {'' if frame is None else frame}")
                    if frame is not None and frame < start:  # done before an interruption
                        tracker.update(frame, before.get(frame, []))  # replay for the ids
                        bar.advance(task)
                        continue
                    frames_seen += 1
                    faces = det.detect(image)
                    tracks: list[int | None] = [None] * len(faces)
                    if frame is not None:
                        tracks = list(tracker.update(frame, [_as_recorded(f) for f in faces]))
                    for k, face in enumerate(faces):
                        found += 1
                        name = crop_name(path, frame, k)
                        if name in written:
                            continue
                        box = expand_box(face, margin, (image.shape[1], image.shape[0]))
                        write_image(out_dir / name, crop(image, box))
                        append_jsonl(out_dir / MANIFEST,
                                     _record(path, frame, image, face, box, name, detector,
                                             tracks[k]))
                        written.add(name)
                    bar.advance(task)
            except InputError as e:
                report.fail(path, str(e))
                continue
            append_jsonl(out_dir / DONE, {"source": str(path), "faces": found})
            faces_found += found
            report.done += 1

    out.print(f"{faces_found} faces in {frames_seen} frames of {report.done} sources; "
              f"crops and {MANIFEST} in {out_dir}" + (f"; {cut}" if cut else ""))
    if not paths and not report.failed:
        err.print("[yellow]warning[/yellow] no images or videos found in the given sources")
    report.finish("sources")
