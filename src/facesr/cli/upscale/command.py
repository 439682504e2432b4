"""The ``facesr upscale`` command, its options and the layout of its ``--out`` folder.

Options follow Real-ESRGAN's and GFPGAN's scripts where they overlap: ``-i/--input`` (repeatable;
positional SOURCES work too), ``-o/--out``, ``-n/--model``, ``-s/--outscale``, ``--suffix``,
``--ext``, ``--only-center-face``.

Layout of ``--out DIR``. Each input gets a folder and a name: a file found in a folder given as
a source keeps its subfolder (``in/a/b.png`` -> ``DIR/a/``), a file given directly goes into
``DIR``; its name is its stem, unless two inputs would share a folder and a stem (``a.png`` and
``a.jpg``, or ``x.png`` in two source folders): then each of them is ``<stem>_<hash>``
(``<hash>`` = 8 hex digits of the file's resolved path) and a note says so. Names depend only on
the inputs, so a re-run with the same sources finds its records. A still's ``<base>`` is that
name, plus ``_f<frame>`` for a video frame; ``<sfx>`` is ``--suffix`` (default ``x<outscale>``:
``x4``, ``x2``, ``x3.5``; an empty one drops the ``_<sfx>``) and ``<ext>`` the ``--ext`` format
(auto: the input's format when it is jpg, png, webp or tif, else png):

- face mode: ``<base>_<sfx>.<ext>``, the whole input at the final scale;
- frame mode: ``<base>_face<k>_<sfx>.<ext>`` per detected face (box + margin, at the final
  scale; ``--only-center-face``: only the face closest to the image centre, as GFPGAN) and,
  with ``--save-frame``, ``<base>_frame_<sfx>.<ext>`` (resampled frame with the faces blended
  in; its default: on for images, for video frames only where a face was found, off with
  ``--save-video``);
- ``--save-lr``: ``<base>[_face<k>]_lr.png``, the low-resolution pixels the model was given
  (face mode: the whole input; frame mode: each face crop); ``--compare``:
  ``<base>[_face<k>]_compare.png``, that input enlarged by nearest neighbour beside the output,
  labelled. Both are PNG, listed in the record and checked by ``facesr verify``;
- ``--save-video``: ``<name>_<sfx>.mp4`` per video (H.264, the source's frame rate and audio)
  and its record ``<name>_<sfx>.mp4.json`` (``video``);
- ``<base>.json``: the record (input and its SHA-256, model and its SHA-256, every setting, the
  mode picked and why, face boxes and scores, outputs and their SHA-256, timings, the synthesis
  notice, the provenance: facesr version and git commit, command line, library versions, UTC
  time; see ``facesr.provenance``; every image carries the notice, the facesr version, its
  record's name and the still's input and model SHA-256 as metadata (PNG text, JPEG comment,
  TIFF ImageDescription, WebP EXIF); ``facesr verify``). It is written last: a still with a
  record is done, and a re-run skips it (resume) when the model and every setting that can
  change its outputs are the same (else that input fails: pass ``--overwrite``);
- ``.facesr.lock`` while a run works in the folder (one run per folder; removed at the end).

``--engine ray`` (``engine_ray``) makes the same folder with Ray actors: this process holds the
lock and hands out the work; resume works across engines.

The other rules (scale, the upsampled-input check, resume, all-or-nothing stills, video) are
described in the modules of this package that own them (see its ``__init__``). This module is
the command: its options, their checks, the settings the records hold, the output folder's lock
and the run's exit codes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import torch
import typer
from rich.markup import escape

from facesr.cli._common import (
    BatchReport,
    FolderBusy,
    err,
    lock_folder,
    out,
    remove_partial_files,
)
from facesr.cli.upscale.batch import _batch
from facesr.cli.upscale.layout import _SIZE_HINTS, SCALE, _check_header, _placed
from facesr.cli.upscale.model import _load
from facesr.infer.faces import DEFAULT_DETECTOR, DETECTORS, make_detector
from facesr.infer.pipeline import COLOR_LOCK, NOTICE
from facesr.io import InputError, kind_of

_CHOICES = {"--mode": ("auto", "face", "frame"), "--backend": ("torch", "onnx"),
            "--device": ("cpu", "cuda"), "--precision": ("auto", "fp32", "fp16", "bf16"),
            "--background": ("bicubic", "lanczos"),
            "--ext": ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff"),
            "--format": ("png", "jpg", "jpeg", "webp", "tif", "tiff"),
            "--engine": ("local", "ray")}


def upscale(
    sources: Annotated[list[Path] | None, typer.Argument(
        metavar="SOURCES", help="Images, folders (searched recursively) and videos (or -i).",
        show_default=False)] = None,
    inputs: Annotated[list[Path] | None, typer.Option(
        "-i", "--input", metavar="PATH", help="An image, folder or video (repeatable; the same "
        "as SOURCES).", show_default=False)] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "-o", "--out", metavar="PATH", help="Folder for the outputs and records (required); "
        "source folders' subfolders are mirrored in it.", file_okay=False,
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "-n", "--model", metavar="TEXT",
        help="A model name: facesr-default (the default: faithful, fast), facesr-rrdb23 "
        "(faithful, 7x slower), facesr-gan (sharper texture, 7x slower), realesrgan-x4plus "
        "(sharp, redraws faces); a weights file "
        "(.safetensors, .pth; .onnx with --backend onnx); or a camera folder of facesr "
        "adapt.", show_default=False)] = None,
    mode: Annotated[str, typer.Option(
        metavar="TEXT",
        help="face: each input is a face crop; frame: detect faces and enhance each; auto: "
        "pick per input (videos: frame).")] = "auto",
    backend: Annotated[str, typer.Option(
        metavar="TEXT", help="torch or onnx (onnxruntime).")] = "torch",
    device: Annotated[str, typer.Option(metavar="TEXT", help="cpu or cuda.")] = "cpu",
    precision: Annotated[str, typer.Option(
        metavar="TEXT",
        help="auto (cuda: fp16; cpu: bf16 where the CPU has AMX, else fp32), fp32, fp16 or bf16 "
        "(torch backend; cuda: autocast; cpu: fused oneDNN convs, bf16 keeping the first conv "
        "and residual sums in fp32).")] = "auto",
    tile: Annotated[int, typer.Option(
        metavar="N", min=0, help="Tile side in input px (0 = whole image at "
                                      "once); bounds memory.")] = 256,
    overlap: Annotated[int, typer.Option(
        metavar="N", min=0, help="Context px around each tile.")] = 16,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Redo stills that already have a record.")] = False,
    stride: Annotated[int, typer.Option(metavar="N", min=1, help="Use every Nth video frame.")] = 1,
    fuse: Annotated[int, typer.Option(
        metavar="N", min=1, max=32, help="Video: super-resolve each face from N consecutive "
        "frames around each used one (registered, ones that do not register rejected, "
        "fused; the record lists them); 1: each frame alone.")] = 1,
    max_frames: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="At most this many frames per "
                                                   "video.")] = None,
    save_frame: Annotated[bool | None, typer.Option(
        "--save-frame/--no-save-frame",
        help="Frame mode: also write the whole x4 frame. Default: on for images; for video "
             "frames only where a face was found, and off with --save-video.",
        show_default=False)] = None,
    save_video: Annotated[bool, typer.Option(
        "--save-video",
        help="Videos: also write <name>_x4.mp4 (the --suffix) (H.264, browser-playable) of "
             "the whole x4 frames (face mode: the x4 images) at the source frame rate, each "
             "held until the next sampled one (--stride), with the source's audio, and its "
             "record <name>_x4.mp4.json; a re-run does not rebuild an unchanged video.")
                         ] = False,
    fps: Annotated[float | None, typer.Option(metavar="X", 
        min=0.01, help="--save-video: the MP4's frame rate (default: the source's).",
        show_default=False)] = None,
    margin: Annotated[float, typer.Option(
        metavar="X", min=0.0, help="Frame mode: margin around each face "
                                          "box, as a fraction of its side.")] = 0.5,
    detector: Annotated[str, typer.Option(metavar="TEXT", help=f"One of: {', '.join(DETECTORS)}.")
                        ] = DEFAULT_DETECTOR,
    detector_weights: Annotated[Path | None, typer.Option(metavar="PATH", 
        help="Weights file for detectors that need one (yunet).")] = None,
    min_size: Annotated[int, typer.Option(metavar="N", 
        min=4, help="Frame mode: ignore faces narrower than this (px).")] = 10,
    score_threshold: Annotated[float | None, typer.Option(metavar="X", 
        min=0.0, max=1.0, help="Frame mode: minimum detector score (default: the detector's)."
    )] = None,
    background: Annotated[str, typer.Option(
        metavar="TEXT", help="Frame resampling: bicubic or lanczos.")
                          ] = "bicubic",
    threads: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="CPU threads (default: all).")
                       ] = None,
    outscale: Annotated[float, typer.Option(
        "-s", "--outscale", metavar="X", min=0.01, max=16.0,
        help="Final scale: the x4 output resampled to X times the input (area filter when "
        "shrinking, Lanczos when enlarging), e.g. 2 or 3.5.")] = 4.0,
    suffix: Annotated[str | None, typer.Option(
        metavar="TEXT", help="Ends the output names: <name>_<suffix>.<ext> (default: x and "
        "the --outscale: x4, x2, x3.5; empty: <name>.<ext>).", show_default=False)] = None,
    ext: Annotated[str, typer.Option(
        metavar="TEXT", help="Output images: auto (the input's format if jpg, png, webp or "
        "tif, else png), png, jpg (quality 95), webp (lossless) or tif.")] = "auto",
    fmt: Annotated[str | None, typer.Option(
        "--format", metavar="TEXT", help="Deprecated: the same as --ext.",
        show_default=False)] = None,
    only_center_face: Annotated[bool, typer.Option(
        "--only-center-face", help="Frame mode: enhance only the face closest to the image "
        "centre.")] = False,
    save_lr: Annotated[bool, typer.Option(
        "--save-lr", help="Also write <name>[_face<k>]_lr.png: the low-resolution pixels the "
        "model got.")] = False,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Also write <name>[_face<k>]_compare.png: the input (nearest "
        "neighbour) beside the output, labelled.")] = False,
    max_side: Annotated[int | None, typer.Option(
        metavar="N", min=8, help="Area-downscale inputs with a longer side above this first "
        "(crops stored larger than their true resolution).", show_default=False)] = None,
    color_lock: Annotated[float, typer.Option(metavar="X", 
        min=0.0, help="Keep the input's colours: the output takes the input's low frequencies "
        "(Gaussian sigma in input px); 0 = the network's output as it is.")] = COLOR_LOCK,
    engine: Annotated[str, typer.Option(
        metavar="TEXT", help="local (this process) or ray (Ray actors, one model each; "
        "pip install -e \".[ray]\"): the same outputs, records and resume.")] = "local",
    address: Annotated[str | None, typer.Option(
        metavar="TEXT", help="--engine ray: the cluster (auto: the one `ray start` made "
        "here; default: a new Ray on this machine). --out must be shared storage.",
        show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="--engine ray: workers, of --threads (default 1) threads "
        "each (default: the cluster's CPUs).", show_default=False)] = None,
) -> None:
    """Super-resolve faces x4: face crops directly, frames and videos face by face.

    Every output gets a JSON record beside it. Re-running with the same --out resumes: stills
    that have a record are skipped (--overwrite redoes them); a record made with another model
    or another value of a setting that changes outputs fails its input. One run per --out at a
    time. Exit code 1 when anything failed, 2 when there is nothing to do.
    """
    given = {"--mode": mode, "--backend": backend, "--device": device, "--precision": precision,
             "--background": background, "--ext": ext, "--format": fmt, "--engine": engine}
    for hint, value in given.items():
        if value is not None and value not in _CHOICES[hint]:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(_CHOICES[hint])}",
                                     param_hint=hint)
    sources = [*(sources or []), *(inputs or [])]
    if not sources:
        raise typer.BadParameter("give images, folders or videos (as arguments or -i)",
                                 param_hint="SOURCES")
    if out_dir is None:
        raise typer.BadParameter("give the output folder", param_hint="-o/--out")
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(ext, ext)
    if fmt is not None:
        fmt = {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)
        if ext not in ("auto", fmt):
            raise typer.BadParameter(f"--format {fmt} and --ext {ext} disagree (--format is "
                                     "the old name of --ext)", param_hint="--format")
        err.print(f"note: --format is deprecated; use --ext {fmt}")
        ext = fmt
    suffix = f"x{outscale:g}" if suffix is None else suffix
    if (suffix in ("lr", "compare") or suffix.startswith(".")
            or any(c in suffix for c in "/\\\0")):
        raise typer.BadParameter(f"{suffix!r} cannot end output names (no '/', '\\', leading "
                                 "'.', nor lr or compare, which name other outputs)",
                                 param_hint="--suffix")
    if fps is not None and not save_video:
        raise typer.BadParameter("sets the frame rate of --save-video's MP4; add --save-video",
                                 param_hint="--fps")
    if engine == "local" and (address is not None or workers is not None):
        raise typer.BadParameter("needs --engine ray", param_hint="--address/--workers")
    if engine == "ray":
        try:
            from facesr.cli.upscale import engine_ray
        except ImportError:
            err.print('--engine ray needs Ray: pip install -e ".[ray]" (or pip install '
                      '"ray>=2.40")', soft_wrap=True, markup=False)
            raise typer.Exit(code=2) from None
    if threads:
        torch.set_num_threads(threads)
    asked = precision
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
                "save_frame": save_frame is not False, "save_video": save_video,
                "margin": margin,
                "detector": detector,
                "detector_weights": None if detector_weights is None else str(detector_weights),
                "min_size": min_size,
                # the threshold in effect, so that a change of the default is a changed setting
                "score_threshold": score_threshold if det is None or score_threshold is not None
                else getattr(det, "score_threshold", None),
                "background": background, "threads": threads, "ext": ext,
                "format": None if ext == "auto" else ext, "scale": SCALE, "outscale": outscale,
                "suffix": suffix, "max_side": max_side, "only_center_face": only_center_face,
                "save_lr": save_lr, "compare": compare, "color_lock": color_lock,
                "fuse": fuse}

    report = BatchReport()
    places = _placed(sources, report, out_dir)
    if not places:
        _nothing_to_do(sources, out_dir, report)
    work = {}
    for p in places:
        try:
            whole = save_frame is not False or (save_video and kind_of(p) == "video")
            n = _check_header(p, stride, whole=mode == "face" or whole,
                              hint=_SIZE_HINTS[mode], max_side=max_side, outscale=outscale)
        except InputError as e:
            report.fail(p, str(e))
            continue
        work[p] = n if max_frames is None else min(n, max_frames)

    def say(line: str) -> None:  # at once, flushed: a redirected stdout keeps every line
        out.print(line, soft_wrap=True, markup=False)
        out.file.flush()

    before = signal.signal(signal.SIGTERM, _on_sigterm)  # as Ctrl-C: stop, keep, say so
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with lock_folder(out_dir):
            if removed := sum(map(remove_partial_files, _folders(out_dir))):
                err.print(f"removed {removed} unfinished temporary file(s) (*.part) of an "
                          f"interrupted run from {out_dir}", soft_wrap=True, markup=False)
            if engine == "ray":  # the same batch in Ray actors (engine_ray)
                engine_ray.run_ray(
                    work, places, out_dir, settings, model_rec, {
                        "model": model, "backend": backend, "device": device,
                        "precision": precision.split()[0] if asked == "auto" else asked,
                        "precision_label": precision}, None if det is None else {
                        "name": detector, "weights": settings["detector_weights"],
                        "min_size": min_size, "score_threshold": score_threshold},
                    overwrite, report, say, save_frame=save_frame, fps=fps, address=address,
                    workers=workers, threads=threads)
                # a worker that died mid-write left its temporary files
                sum(map(remove_partial_files, _folders(out_dir)))
            else:
                _batch(work, runner, det, out_dir, settings, model_rec, overwrite, report, say,
                       save_frame=save_frame, fps=fps, places=places)
    except (KeyboardInterrupt, _Terminated) as e:
        signum = e.signum if isinstance(e, _Terminated) else signal.SIGINT
        err.print(f"interrupted ({signal.Signals(signum).name}): {report.done} still(s) done "
                  f"this run, {report.skipped} skipped; finished work is kept: run the same "
                  "command again to resume", soft_wrap=True, markup=False)
        raise typer.Exit(code=128 + signum) from None
    except FolderBusy as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    except OSError as e:  # the last resort: --out cannot be made or locked, or worse
        what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        report.fail(out_dir, f"{out_dir}: cannot use the output folder ({what})")
        report.left = sum(work.values()) - report.done - report.skipped
    finally:
        signal.signal(signal.SIGTERM, before)
    out.print(f"outputs and records in {out_dir}. {NOTICE}", soft_wrap=True)
    report.finish("images/frames")


def _folders(root: Path) -> Iterator[Path]:
    """``root`` and every folder under it (links not followed)."""
    yield root
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        for d in dirnames:
            if not (Path(dirpath) / d).is_symlink():
                yield Path(dirpath) / d


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


class _Terminated(Exception):
    """SIGTERM arrived: the run stops as on Ctrl-C (finished stills kept), exit 143."""

    signum = signal.SIGTERM


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()
