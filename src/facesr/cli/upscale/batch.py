"""The batch: every still of every input (images, every ``--stride``-th video frame), in order:
shrunk to ``--max-side``, checked for upsampling once per input, skipped when done (resume),
else made (``still``) and recorded (``records``), with one line each; a video's MP4 last.

A bad input fails alone; write errors (disk full, read-only folder) stop the batch, as every
later still would fail the same way; a re-run resumes.

A batch can also be a part of a run (``--engine ray``: ``engine_ray`` gives each worker one
input, or a range of a video's stills, ``spans``): the stills, names and records are the ones
the whole run would make, so either engine resumes the other's folder.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from rich.progress import Progress

from facesr.cli._common import BatchReport, progress
from facesr.cli.upscale.layout import _base, _legacy_base, _out_format
from facesr.cli.upscale.records import _as_made, _done, _input_settings, _write_record
from facesr.cli.upscale.still import _process, _WriteError
from facesr.cli.upscale.upsampled import _looks_upsampled
from facesr.cli.upscale.video import _assemble_video, _frame_outputs, _VideoOut
from facesr.eval.inputs import shrink
from facesr.infer.pipeline import NOTICE
from facesr.io import (
    InputError,
    iter_sources,
    iter_video_frames_timed,
    kind_of,
    sha256_file,
    still_key,
    timecode,
    to_array,
    to_tensor,
    video_info,
)
from facesr.provenance import image_metadata


def _stills(path: Path, stride: int, max_frames: int | None,
            span: tuple[int, int] | None = None, fuse: int = 1
            ) -> Iterator[tuple[int | None, float | None, np.ndarray, list[str],
                                list[tuple[int, np.ndarray]]]]:
    """(frame or None, its time in seconds or None, RGB float HWC, notes, neighbours) for an
    image or every ``stride``-th video frame (``io.iter_sources``); an unreadable input raises
    its InputError. ``span``: only a video's sampled stills ``lo <= k < hi`` (k counts the
    stills from 0; the frames before are decoded, not converted). ``fuse`` > 1 (videos):
    ``neighbours`` are the (frame, RGB) of the ``fuse - 1`` frames around each still
    (``_windows``); else empty."""
    if fuse > 1 and kind_of(path) == "video":
        yield from _windows(path, stride, max_frames, span, fuse)
        return
    for item in _single(path, stride, max_frames, span):
        yield (*item, [])


def _windows(path: Path, stride: int, max_frames: int | None, span: tuple[int, int] | None,
             fuse: int) -> Iterator[tuple[int, float, np.ndarray, list[str],
                                          list[tuple[int, np.ndarray]]]]:
    """Every sampled still of a video with its neighbours: the frames ``f - (fuse - 1) // 2``
    to ``f + fuse // 2`` other than ``f`` (fewer at the ends of the video). Decodes every
    frame, holding ``fuse`` of them."""
    from collections import deque

    lo, hi = span if span is not None else (0, None)
    if max_frames is not None:
        hi = max_frames if hi is None else min(hi, max_frames)
    before, after = (fuse - 1) // 2, fuse // 2
    recent: deque[tuple[int, float, np.ndarray]] = deque(maxlen=fuse)
    pending: list[int] = []

    def emit(f: int):
        ref = next(x for x in recent if x[0] == f)
        nbs = [(i, a) for i, _, a in recent if i != f and f - before <= i <= f + after]
        return ref[0], ref[1], ref[2], [], nbs

    for i, at, arr in iter_video_frames_timed(path, stride=1):
        if arr is None:
            continue
        recent.append((i, at, arr))
        k = i // stride
        if i % stride == 0 and k >= lo and (hi is None or k < hi):
            pending.append(i)
        while pending and i >= pending[0] + after:
            yield emit(pending.pop(0))
        if hi is not None and not pending and k >= hi:
            break
    while pending and any(x[0] == pending[0] for x in recent):
        yield emit(pending.pop(0))


def _single(path: Path, stride: int, max_frames: int | None,
            span: tuple[int, int] | None
            ) -> Iterator[tuple[int | None, float | None, np.ndarray, list[str]]]:
    if span is not None:
        lo, hi = span
        cap = hi if max_frames is None else min(hi, max_frames)
        for frame, at, arr in iter_video_frames_timed(
                path, stride=stride, max_frames=cap, want=lambda i: i // stride >= lo):
            if arr is not None:
                yield frame, at, arr, []
        return
    for still in iter_sources([path], frame_stride=stride, max_frames=max_frames):
        if still.error is not None:
            raise still.error
        yield still.frame, still.time, still.image, list(still.notes)


def _batch(work: dict[Path, int], runner, det, out_dir: Path, settings: dict, model_rec: dict,
           overwrite: bool, report: BatchReport, say: Callable[[str], None], *,
           save_frame: bool | None = None, fps: float | None = None,
           places: dict[Path, tuple[Path, str, str | None]] | None = None,
           spans: dict[Path, tuple[int, int]] | None = None, bar_shown: bool = True) -> bool:
    """Run every still of ``work`` (path -> stills its header promises) into ``report`` and
    ``say`` (a line per still, printed as it finishes); a bad input fails alone, a write
    error stops the batch (returns False). ``save_frame``: the --save-frame given (None: its
    per-input default, ``_input_settings``); ``fps``: --fps; ``places``: each input's folder
    under ``out_dir`` and name (``_placed``; default: ``out_dir`` and its stem); ``spans``:
    the range of a video's stills to make (``_stills``; ``work`` then promises the range's
    count; not with --save-video, whose MP4 needs every still); ``bar_shown``: False for no
    progress bar (a Ray worker)."""
    stride, max_frames = settings["stride"], settings["max_frames"]
    paths = list(work)
    with progress() if bar_shown else Progress(disable=True) as bar:
        task = bar.add_task("upscale", total=sum(work.values()), note="")
        for i, path in enumerate(paths):
            digest, pulled, clip, src_fps = None, 0, None, None
            video = kind_of(path) == "video"
            settings_in = {**_input_settings(settings, video, save_frame),
                           "format": _out_format(settings["ext"], path, video)}
            rel, name, shared = (places or {}).get(path, (Path(), path.stem, None))
            folder = out_dir / rel
            span = (spans or {}).get(path)
            stills = _stills(path, stride, max_frames, span, settings_in.get("fuse", 1))
            measured = span is not None and span[0] > 0  # only the first frame is measured
            try:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise _WriteError(folder, e) from None
                if video:
                    src_fps = video_info(path).fps
                if video and settings["save_video"] and span is None:
                    clip = _VideoOut(path, folder, name, settings_in, model_rec, fps, overwrite)
                    digest = clip.digest
                while True:
                    t0 = time.perf_counter()
                    try:
                        frame, at, arr, notes, nbs = next(stills)
                    except StopIteration:
                        break
                    pulled += 1
                    read_ms = round(1000 * (time.perf_counter() - t0), 1)
                    bar.update(task, note=f"{path.name} {'' if frame is None else frame}")
                    size = [arr.shape[1], arr.shape[0]]
                    if settings["max_side"] is not None and max(size) > settings["max_side"]:
                        arr = to_array(shrink(to_tensor(arr), settings["max_side"]))
                        nbs = [(i, to_array(shrink(to_tensor(a), settings["max_side"])))
                               for i, a in nbs]
                    looks = None
                    if not measured:  # an image, or a video's first frame
                        measured = True
                        looks = _looks_upsampled(path, arr, settings["max_side"])
                    base = _base(name, frame)
                    rec_path = folder / f"{base}.json"
                    legacy = out_dir / f"{_legacy_base(path, frame)}.json"
                    known = legacy if not rec_path.exists() and legacy.exists() else rec_path
                    if _done(known, overwrite, model_rec, _as_made(
                            known, settings_in) if video and save_frame is None
                            else settings_in):
                        if clip is not None:  # its x4 frame, found or made again
                            clip.add_done(frame, at, known, functools.partial(
                                _process, arr, runner, det, base=base,
                                settings={**settings_in, "save_frame": True}, video=True,
                                neighbours=nbs, frame=frame))
                        report.skipped += 1
                        bar.advance(task)
                        continue
                    if known != rec_path:  # --overwrite of an older facesr's still
                        known.unlink(missing_ok=True)
                    digest = digest or sha256_file(path)
                    whole = video and clip is not None  # the MP4 needs every x4 frame
                    rec = _process(arr, runner, det, folder, base,
                                   {**settings_in, "save_frame": True} if whole else settings_in,
                                   video, image_metadata(
                                       NOTICE, rec_path.name, digest, model_rec["sha256"],
                                       frame), neighbours=nbs, frame=frame)
                    if video:  # the whole x4 frame: kept, moved to the video's frames, dropped
                        rec["outputs"] = _frame_outputs(rec, settings_in, folder, clip,
                                                        frame, at)
                    rec["timings_ms"]["read"] = read_ms
                    shrunk = [arr.shape[1], arr.shape[0]]
                    if shrunk != size:
                        notes = [*notes, f"shrunk from {size[0]}x{size[1]} to {shrunk[0]}x"
                                 f"{shrunk[1]} px (--max-side {settings['max_side']})"]
                    rec = {"notice": NOTICE, "input": {
                        "path": str(path), "sha256": digest, "frame": frame,
                        **({} if at is None else {"time": round(at, 6),
                                                  "timecode": timecode(at), "fps": src_fps}),
                        "size": size, **({} if shrunk == size else {"shrunk_to": shrunk}),
                        **({} if looks is None else {"looks_upsampled": looks}),
                        "notes": notes},
                        "model": model_rec, "settings": settings_in, **rec}
                    _write_record(rec_path, rec, folder)
                    files = ", ".join((rel / o["file"]).as_posix()
                                      for o in rec["outputs"]) or "no image"
                    if shared is not None:
                        files += (f" (named {name}: other inputs would share the name "
                                  f"{shared}; _{name.rsplit('_', 1)[1]} is 8 hex digits of "
                                  "this file's path)")
                    found = ("" if rec["mode"] == "face" or "face(s)" in rec["mode_reason"]
                             else f"; {len(rec['faces'])} face(s) found")
                    say(f"{still_key(path, frame)}: {rec['mode']} "
                                 f"mode ({rec['mode_reason']}){found} -> {files}")
                    report.done += 1
                    bar.advance(task)
                if video and pulled < work[path]:
                    raise InputError(path, f"decoded {pulled} of {work[path]} promised frames"
                                     + (f" (--stride {stride})" if stride > 1 else "")
                                     + "; the file looks truncated")
                if clip is not None:
                    say(_assemble_video(clip, bar))
            except _WriteError as e:
                report.fail(path, f"{e}; stopped (re-run with the same --out to resume)")
                report.left = max(work[path] - pulled, 0) + sum(work[p] for p in paths[i + 1:])
                return False
            except InputError as e:
                report.fail(path, str(e))
                if clip is not None:  # a re-run cannot mend the input: no MP4, no frames kept
                    shutil.rmtree(clip.store, ignore_errors=True)
            except OSError as e:  # e.g. an input that cannot be read (no permission)
                report.fail(path, f"{e.filename or path}: {e.strerror or e}")
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: the batch goes on
                first = (str(e).strip().splitlines() or [""])[0]
                report.fail(path, f"{path}: failed ({type(e).__name__}: {first})")
    return True
