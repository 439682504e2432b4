"""``facesr upscale``: x4 super-resolution of face crops, frames and video with a record per still.

Layout of ``--out DIR`` for a still named ``<base>`` (``<stem>_<hash>`` of an image, plus
``_f<frame>`` for a video frame; ``<hash>`` = 8 hex digits of the source's resolved path):

- face mode: ``<base>_x4.png``, the whole input x4 (exactly 4H x 4W);
- frame mode: ``<base>_face<k>_x4.png`` per detected face (box + margin, x4) and, with
  ``--save-frame``, ``<base>_frame_x4.png`` (resampled frame with the faces blended in);
  (``--format`` tif or jpg changes the suffix);
- ``<base>.json``: the record (input and its SHA-256, model and its SHA-256, every setting, the
  mode picked and why, face boxes and scores, outputs, timings, the synthesis notice). It is
  written last: a still with a record is done, and a re-run skips it (resume) when the model
  and every setting that can change its outputs are the same (else that input fails: pass
  ``--overwrite``);
- ``.facesr.lock`` while a run works in the folder (one run per folder; removed at the end).

A still is all or nothing: when one of its files cannot be written its other files are removed.
Write errors (disk full, read-only folder) stop the batch, as every later still would fail the
same way; a re-run resumes.

Whole x4 images (face mode's image, frame mode's whole frame with ``--save-frame``) are at most
``facesr.infer.pipeline.MAX_OUTPUT_PIXELS`` (140 MP, a 4K video frame fits): a larger input
fails from its header, before it is decoded (``--no-save-frame`` writes only the face crops).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import numpy as np
import torch
import typer
from rich.markup import escape

from facesr.cli._common import (
    BatchReport,
    FolderBusy,
    collect_inputs,
    err,
    lock_folder,
    out,
    progress,
    remove_partial_files,
    source_tag,
)
from facesr.infer.faces import DEFAULT_DETECTOR, DETECTORS, Face, make_detector
from facesr.infer.pipeline import (
    COLOR_LOCK,
    NOTICE,
    SMALL,
    auto_runner,
    check_output_size,
    choose_mode,
    upscale_face,
    upscale_frame,
)
from facesr.io import (
    MAX_PIXELS,
    InputError,
    atomic_write_text,
    image_size,
    iter_sources,
    kind_of,
    read_image_array,
    sha256_file,
    still_key,
    to_tensor,
    video_info,
    write_image,
    write_video,
)

_CHOICES = {"--mode": ("auto", "face", "frame"), "--backend": ("torch", "onnx"),
            "--device": ("cpu", "cuda"), "--precision": ("auto", "fp32", "fp16", "bf16"),
            "--background": ("bicubic", "lanczos"), "--format": ("png", "tif", "jpg")}
# settings that never change a still's outputs: speed, and which stills a run makes
_NEUTRAL = frozenset({"threads", "stride", "max_frames", "save_video"})
_DETECTION = frozenset({"detector", "detector_weights", "min_size", "score_threshold"})
_FRAME = frozenset({"margin", "background", "save_frame"})  # only shape frame mode's outputs


class _WriteError(Exception):
    """A file in --out cannot be written (disk full, read-only folder): the batch stops."""

    def __init__(self, path: Path, e: OSError) -> None:
        super().__init__(f"{path}: cannot write ({e.strerror or e})")


def _base(path: Path, frame: int | None) -> str:
    return f"{path.stem}_{source_tag(path)}" + ("" if frame is None else f"_f{frame:06d}")


def _stills(path: Path, stride: int, max_frames: int | None
            ) -> Iterator[tuple[int | None, np.ndarray, list[str]]]:
    """(frame or None, RGB float HWC, notes) for an image or every ``stride``-th video frame
    (``io.iter_sources``); an unreadable input raises its InputError."""
    for still in iter_sources([path], frame_stride=stride, max_frames=max_frames):
        if still.error is not None:
            raise still.error
        yield still.frame, still.image, list(still.notes)


def _timer(timings: dict[str, float]) -> Callable[[str], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def timed(stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        timings[stage] = round(timings.get(stage, 0.0) + 1000 * (time.perf_counter() - t0), 1)

    return timed


def _face_record(face: Face) -> dict:
    return {"box": [round(v, 2) for v in face.box], "score": round(face.score, 4),
            "landmarks": None if face.landmarks is None
            else [[round(x, 2), round(y, 2)] for x, y in face.landmarks]}


def _load(model: str | None, backend: str, device: str, precision: str, threads: int | None):
    """(runner, model info dict, precision used) or typer.BadParameter."""
    from facesr.models import zoo

    try:
        name = model or zoo.default_model_name()
        if backend == "onnx":
            from facesr.infer.onnx_backend import OnnxRunner, export_onnx, load_onnx

            if precision not in ("auto", "fp32"):
                raise ValueError("the onnx backend runs fp32 only (--precision fp32)")
            if name.lower().endswith(".onnx"):
                runner, info = load_onnx(name, device=device, threads=threads)
            else:
                net, info = zoo.load(name)
                err.print(f"exporting {info.name} to ONNX in memory (save it once with "
                          "`facesr export onnx` to skip this)")
                runner = OnnxRunner(export_onnx(net), device=device, threads=threads)
            return runner, info.record(), "fp32"
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda, but this PyTorch has no usable CUDA GPU")
        net, info = zoo.load(name, device=device)
        runner, label = auto_runner(net, device=device, precision=precision)
        return runner, info.record(), label
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise typer.BadParameter(str(e), param_hint="--model / --backend / --device") from None


def upscale(
    sources: Annotated[list[Path], typer.Argument(
        help="Images, folders (searched recursively) and videos.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the outputs and records.",
                                          file_okay=False)],
    model: Annotated[str | None, typer.Option(
        help="Model name (realesrgan-x4plus, facesr-default) or weights file (.safetensors; "
        ".onnx with --backend onnx). Default: facesr-default once shipped, else "
        "realesrgan-x4plus.", show_default=False)] = None,
    mode: Annotated[str, typer.Option(
        help="face: each input is a face crop; frame: detect faces and enhance each; auto: "
        "pick per input (videos: frame).")] = "auto",
    backend: Annotated[str, typer.Option(help="torch or onnx (onnxruntime).")] = "torch",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    precision: Annotated[str, typer.Option(
        help="auto (cuda: fp16; cpu: bf16 where the CPU has AMX, else fp32), fp32, fp16 or bf16 "
        "(torch backend; cuda: autocast; cpu: fused oneDNN convs, bf16 keeping the first conv "
        "and residual sums in fp32).")] = "auto",
    tile: Annotated[int, typer.Option(min=0, help="Tile side in input px (0 = whole image at "
                                      "once); bounds memory.")] = 256,
    overlap: Annotated[int, typer.Option(min=0, help="Context px around each tile.")] = 16,
    overwrite: Annotated[bool, typer.Option(help="Redo stills that already have a record.")
                         ] = False,
    stride: Annotated[int, typer.Option(min=1, help="Use every Nth video frame.")] = 1,
    max_frames: Annotated[int | None, typer.Option(min=1, help="At most this many frames per "
                                                   "video.")] = None,
    save_frame: Annotated[bool, typer.Option(help="Frame mode: also write the whole x4 frame.")
                          ] = True,
    save_video: Annotated[bool, typer.Option(
        help="Videos: also write the x4 frames (frame mode's whole frames, face mode's images) "
             "as <name>_x4.mp4 at the source fps / --stride; rebuilt from the finished frames.")
                          ] = False,
    margin: Annotated[float, typer.Option(min=0.0, help="Frame mode: margin around each face "
                                          "box, as a fraction of its side.")] = 0.5,
    detector: Annotated[str, typer.Option(help=f"One of: {', '.join(DETECTORS)}.")
                        ] = DEFAULT_DETECTOR,
    detector_weights: Annotated[Path | None, typer.Option(
        help="Weights file for detectors that need one (yunet).")] = None,
    min_size: Annotated[int, typer.Option(
        min=4, help="Frame mode: ignore faces narrower than this (px).")] = 10,
    score_threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Frame mode: minimum detector score (default: the detector's)."
    )] = None,
    background: Annotated[str, typer.Option(help="Frame resampling: bicubic or lanczos.")
                          ] = "bicubic",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: all).")
                       ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output images: png or tif (lossless), "
                                     "jpg (quality 95).")] = "png",
    color_lock: Annotated[float, typer.Option(
        min=0.0, help="Keep the input's colours: the output takes the input's low frequencies "
        "(Gaussian sigma in input px); 0 = the network's output as it is.")] = COLOR_LOCK,
) -> None:
    """Super-resolve faces x4: face crops directly, frames and videos face by face.

    Every output gets a JSON record beside it. Re-running with the same --out resumes: stills
    that have a record are skipped (--overwrite redoes them); a record made with another model
    or another value of a setting that changes outputs fails its input. One run per --out at a
    time. Exit code 1 when anything failed, 2 when there is nothing to do.
    """
    given = {"--mode": mode, "--backend": backend, "--device": device, "--precision": precision,
             "--background": background, "--format": fmt}
    for hint, value in given.items():
        if value not in _CHOICES[hint]:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(_CHOICES[hint])}",
                                     param_hint=hint)
    if save_video and mode != "face" and not save_frame:
        raise typer.BadParameter("needs --save-frame (the video is made of the whole x4 frames)",
                                 param_hint="--save-video")
    if threads:
        torch.set_num_threads(threads)
    runner, model_rec, precision = _load(model, backend, device, precision, threads)
    det = None
    if mode != "face":
        try:
            det = make_detector(detector, weights=None if detector_weights is None
                                else str(detector_weights), min_size=min_size,
                                score_threshold=score_threshold)
        except (ValueError, FileNotFoundError, ImportError) as e:
            raise typer.BadParameter(str(e), param_hint="--detector") from None
    settings = {"mode": mode, "backend": backend, "device": device, "precision": precision,
                "tile": tile, "overlap": overlap, "stride": stride, "max_frames": max_frames,
                "save_frame": save_frame, "save_video": save_video, "margin": margin,
                "detector": detector,
                "detector_weights": None if detector_weights is None else str(detector_weights),
                "min_size": min_size, "score_threshold": score_threshold,
                "background": background, "threads": threads, "format": fmt, "scale": 4,
                "color_lock": color_lock}

    report = BatchReport()
    paths = collect_inputs(sources, report, exclude=out_dir)
    if not paths:
        _nothing_to_do(sources, out_dir, report)
    work = {}
    for p in paths:
        try:
            n = _check_header(p, stride, whole=mode == "face" or save_frame,
                              hint=_SIZE_HINTS[mode])
        except InputError as e:
            report.fail(p, str(e))
            continue
        work[p] = n if max_frames is None else min(n, max_frames)

    lines: list[str] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with lock_folder(out_dir):
            if removed := remove_partial_files(out_dir):
                err.print(f"removed {removed} unfinished temporary file(s) (*.part) of an "
                          f"interrupted run from {out_dir}", soft_wrap=True, markup=False)
            _batch(work, runner, det, out_dir, settings, model_rec, overwrite, report, lines)
    except FolderBusy as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    except OSError as e:  # the last resort: --out cannot be made or locked, or worse
        what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        report.fail(out_dir, f"{out_dir}: cannot use the output folder ({what})")
        report.left = sum(work.values()) - report.done - report.skipped
    for line in lines:
        out.print(line, soft_wrap=True, markup=False)
    out.print(f"outputs and records in {out_dir}. {NOTICE}", soft_wrap=True)
    report.finish("images/frames")


_SIZE_HINTS = {
    "face": "downscale it, or upscale face crops of it (facesr faces extract)",
    "frame": "pass --no-save-frame to write the face crops only, or downscale it",
    "auto": "pass --mode frame --no-save-frame to write the face crops only, or downscale it",
}


def _check_header(path: Path, stride: int, *, whole: bool, hint: str) -> int:
    """Stills that ``path``'s header promises; with ``whole`` (the run makes whole x4 images),
    refuse an input whose x4 would be over the pipeline's ``MAX_OUTPUT_PIXELS``, before any
    decoding. A header that cannot be read is left to the decoder, which names the fault."""
    if kind_of(path) == "video":
        info = video_info(path)
        n, size = -(-info.frames // stride), (info.width, info.height)
    else:
        n, size = 1, None
        if kind_of(path) == "image":
            with contextlib.suppress(InputError):
                h, w = image_size(path)
                size = (w, h) if w * h <= MAX_PIXELS else None  # over it: io's own error
    if whole and size is not None:
        try:
            check_output_size(size, hint=hint)
        except ValueError as e:
            raise InputError(path, str(e)) from None
    return n


def _nothing_to_do(sources: list[Path], out_dir: Path, report: BatchReport) -> NoReturn:
    """Stop a run that found no input: exit 1 when a source failed, else 2; --out is not made."""
    if report.failed:
        report.finish("images/frames")
    root = out_dir.resolve()
    inside = any(s.resolve() == root or root in s.resolve().parents for s in sources)
    names = ", ".join(map(str, sources))
    err.print("[red]error[/red] " + escape(f"nothing to do: no images or videos in {names}" + (
        f" (files inside --out {out_dir} are outputs, never inputs)" if inside else "")),
        soft_wrap=True)
    raise typer.Exit(code=2)


def _batch(work: dict[Path, int], runner, det, out_dir: Path, settings: dict, model_rec: dict,
           overwrite: bool, report: BatchReport, lines: list[str]) -> None:
    """Run every still of ``work`` (path -> stills its header promises) into ``report`` and
    ``lines``; a bad input fails alone, a write error stops the batch."""
    stride, max_frames = settings["stride"], settings["max_frames"]
    paths = list(work)
    with progress() as bar:
        task = bar.add_task("upscale", total=sum(work.values()), note="")
        for i, path in enumerate(paths):
            digest, pulled = None, 0
            stills = _stills(path, stride, max_frames)
            try:
                while True:
                    t0 = time.perf_counter()
                    try:
                        frame, arr, notes = next(stills)
                    except StopIteration:
                        break
                    pulled += 1
                    read_ms = round(1000 * (time.perf_counter() - t0), 1)
                    bar.update(task, note=f"{path.name} {'' if frame is None else frame}")
                    base = _base(path, frame)
                    rec_path = out_dir / f"{base}.json"
                    if _done(rec_path, overwrite, model_rec, settings):
                        report.skipped += 1
                        bar.advance(task)
                        continue
                    digest = digest or sha256_file(path)
                    rec = _process(arr, runner, det, out_dir, base, settings,
                                   kind_of(path) == "video")
                    rec["timings_ms"]["read"] = read_ms
                    rec = {"notice": NOTICE, "input": {
                        "path": str(path), "sha256": digest, "frame": frame,
                        "size": [arr.shape[1], arr.shape[0]], "notes": notes},
                        "model": model_rec, "settings": settings, **rec}
                    _write_record(rec_path, rec, out_dir)
                    files = ", ".join(o["file"] for o in rec["outputs"]) or "no image"
                    found = ("" if rec["mode"] == "face" or "face(s)" in rec["mode_reason"]
                             else f"; {len(rec['faces'])} face(s) found")
                    lines.append(f"{still_key(path, frame)}: {rec['mode']} "
                                 f"mode ({rec['mode_reason']}){found} -> {files}")
                    report.done += 1
                    bar.advance(task)
                if kind_of(path) == "video" and pulled < work[path]:
                    raise InputError(path, f"decoded {pulled} of {work[path]} promised frames"
                                     + (f" (--stride {stride})" if stride > 1 else "")
                                     + "; the file looks truncated")
                if settings["save_video"] and kind_of(path) == "video":
                    video = _assemble_video(path, out_dir, stride)
                    lines.append(f"{path}: video -> {video.name if video else 'no frames'}")
            except _WriteError as e:
                report.fail(path, f"{e}; stopped (re-run with the same --out to resume)")
                report.left = max(work[path] - pulled, 0) + sum(work[p] for p in paths[i + 1:])
                return
            except InputError as e:
                report.fail(path, str(e))
            except OSError as e:  # e.g. an input that cannot be read (no permission)
                report.fail(path, f"{e.filename or path}: {e.strerror or e}")
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: the batch goes on
                first = (str(e).strip().splitlines() or [""])[0]
                report.fail(path, f"{path}: failed ({type(e).__name__}: {first})")


def _write_record(rec_path: Path, rec: dict, out_dir: Path) -> None:
    """Write a still's record last; when that fails, remove its images too (all or nothing)."""
    try:
        atomic_write_text(rec_path, json.dumps(rec, indent=2) + "\n")
    except OSError as e:
        _remove(out_dir, [o["file"] for o in rec["outputs"]])
        raise _WriteError(rec_path, e) from None


def _remove(out_dir: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            (out_dir / name).unlink(missing_ok=True)


def _assemble_video(path: Path, out_dir: Path, stride: int) -> Path | None:
    """Write the x4 frames of a video's finished records, in frame order, as an MP4."""
    base = _base(path, None)
    frames = []
    for rec_path in sorted(out_dir.glob(f"{base}_f[0-9][0-9][0-9][0-9][0-9][0-9].json")):
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable record fails its own frame; the video goes on without it
        frames += [out_dir / o["file"] for o in rec.get("outputs", [])
                   if o.get("kind") in ("frame", "image")]
    if not frames:
        return None
    fps = (video_info(path).fps or 25.0) / stride
    target = out_dir / f"{base}_x4.mp4"
    try:
        return write_video(target, (read_image_array(f) for f in frames), fps)
    except OSError as e:
        raise _WriteError(target, e) from None


def _done(rec_path: Path, overwrite: bool, model_rec: dict, settings: dict) -> bool:
    """True if the still of this record is done with the same model and settings (skip it).

    With ``overwrite`` the outputs the old record lists are deleted and False is returned.
    Raises InputError when the record is unreadable, or made with another model or another
    value of any setting that can change the outputs (see ``_changes``).
    """
    if not rec_path.exists():
        return False
    try:
        old = json.loads(rec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        old = None
    if overwrite:
        for o in old.get("outputs", []) if isinstance(old, dict) else []:
            name = str(o.get("file", ""))
            if name and Path(name).name == name:  # only plain names inside --out
                (rec_path.parent / name).unlink(missing_ok=True)
        return False
    if not isinstance(old, dict):
        raise InputError(rec_path, "unreadable record; pass --overwrite to redo this input")
    changes = _changes(old, model_rec, settings)
    if changes:
        raise InputError(rec_path, "made with another model or settings; pass --overwrite "
                         f"or use another --out ({', '.join(changes)})")
    return True


def _changes(old: dict, model_rec: dict, settings: dict) -> list[str]:
    """What differs between a record and this run, in a way that can change its outputs.

    Every setting the record holds counts (so one added later counts too), except the
    ``_NEUTRAL`` ones, detection ones when --mode face asks for none, and frame-mode ones when
    the still was made in face mode.
    """
    def shown(value: object) -> str:
        return "default" if value is None else str(value)

    was_model = old.get("model") if isinstance(old.get("model"), dict) else {}
    was = old.get("settings") if isinstance(old.get("settings"), dict) else {}
    changes = [] if was_model.get("sha256") == model_rec["sha256"] else [
        f"model {shown(was_model.get('name'))} -> {model_rec.get('name')}"]
    ignore = _NEUTRAL | (_DETECTION if settings["mode"] == "face" else frozenset()) | (
        _FRAME if old.get("mode") == "face" else frozenset())
    for key in sorted((set(was) | set(settings)) - ignore):
        if was.get(key) != settings.get(key):
            changes.append(f"{key} {shown(was.get(key))} -> {shown(settings.get(key))}")
    return changes


def _process(arr: np.ndarray, runner, det, out_dir: Path, base: str, settings: dict,
             video: bool) -> dict:
    """Run one still; write its images; return the record's mode, faces, outputs, timings."""
    timings: dict[str, float] = {}
    timer = _timer(timings)
    mode = settings["mode"]
    t0 = time.perf_counter()
    image = to_tensor(arr)
    size = (arr.shape[1], arr.shape[0])
    faces: list[Face] = []
    if mode == "face":
        picked, reason = "face", "--mode face"
    elif mode == "frame":
        picked, reason = "frame", "--mode frame"
    elif video:
        picked, reason = "frame", "video frame"
    elif max(size) <= SMALL:
        picked, reason = choose_mode(size, [])
    else:
        with timer("detect"):
            faces = det.detect(arr)
        picked, reason = choose_mode(size, faces)
    outputs, face_recs = [], [_face_record(f) for f in faces]
    tile, overlap = settings["tile"], settings["overlap"]
    if picked == "face":
        with timer("sr"):
            sr = upscale_face(image, runner, tile=tile, overlap=overlap,
                          lock_colors=settings["color_lock"])
        outputs.append((f"{base}_x4.{settings['format']}", "image", sr))
    else:
        result = upscale_frame(image, runner, det, margin=settings["margin"],
                               whole_frame=settings["save_frame"],
                               background=settings["background"], tile=tile, overlap=overlap,
                               lock_colors=settings["color_lock"],
                               faces=faces if mode == "auto" and not video else None,
                               timer=timer)
        face_recs = []
        for k, f in enumerate(result.faces):
            name = f"{base}_face{k}_x4.{settings['format']}"
            outputs.append((name, "face", f.image))
            face_recs.append({**_face_record(f.face), "crop_box": list(f.box), "output": name})
        if result.frame is not None:
            outputs.append((f"{base}_frame_x4.{settings['format']}", "frame", result.frame))
    with timer("write"):
        for k, (name, _, img) in enumerate(outputs):
            try:
                write_image(out_dir / name, img)
            except OSError as e:
                _remove(out_dir, [n for n, _, _ in outputs[:k]])  # a still is all or nothing
                raise _WriteError(out_dir / name, e) from None
    timings["total"] = round(1000 * (time.perf_counter() - t0), 1)
    return {"mode": picked, "mode_reason": reason, "faces": face_recs,
            "outputs": [{"file": n, "kind": k, "size": [img.shape[-1], img.shape[-2]]}
                        for n, k, img in outputs],
            "timings_ms": timings}
