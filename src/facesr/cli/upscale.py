"""``facesr upscale``: x4 super-resolution of face crops, frames and video with a record per still.

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
  and its record ``<name>_<sfx>.mp4.json`` (``_VideoOut``, ``_assemble_video``);
- ``<base>.json``: the record (input and its SHA-256, model and its SHA-256, every setting, the
  mode picked and why, face boxes and scores, outputs and their SHA-256, timings, the synthesis
  notice, the provenance: facesr version and git commit, command line, library versions, UTC
  time; see ``facesr.provenance``; every image carries the notice, the facesr version, its
  record's name and the still's input and model SHA-256 as metadata (PNG text, JPEG comment,
  TIFF ImageDescription, WebP EXIF); ``facesr verify``). It is written last: a still with a
  record is done, and a re-run skips it (resume) when the model and every setting that can
  change its outputs are the same (else that input fails: pass ``--overwrite``);
- ``.facesr.lock`` while a run works in the folder (one run per folder; removed at the end).

Scale. The network is x4; ``--outscale X`` resamples its output to ``round(X * W) x round(X * H)``
of the image the model got (face crops: of the crop box), with OpenCV's area filter when
shrinking and Lanczos-4 when enlarging (Real-ESRGAN's ``--outscale`` does the same after its x4
model). X = 4 (the default) writes the network's output as it is. ``--max-side N`` first
area-downscales an input whose longer side is above N (``facesr.eval.inputs.shrink``, as
``evaluate real --max-side``); sizes, boxes and ``--outscale`` are then relative to the shrunk
image, which the record holds as ``input.shrunk_to``.

Inputs stored larger than their true resolution (``upsampled_factor``): the luma of an input
whose longer side is above 128 px is area-downscaled by k = 2, 3, 4, 6, 8, 12 and
cubic-upscaled back; when the x2 round trip changes it by less than ``UPSAMPLED_DB`` (45 dB
PSNR), the input carries no detail at its stored size: one warning line names the file, the
likely upsampling factor (the k after which the round trips' PSNR falls fastest) and the
``--max-side`` that would undo it, and the record holds ``input.looks_upsampled``. Videos are
measured on their first frame.

Older output folders, whose names were ``<stem>_<hash>`` for every input (all in ``DIR``), are
still recognised: a still whose new record is absent but whose old one is there counts as done
(the same resume rules; its files keep their old names), and ``--overwrite`` removes the old
record and files and writes the new names. A settings field a record lacks (made before the
field existed) counts as the value that reproduces those outputs (``_ADDED``). An old MP4 of
``--save-video`` is not reused: it is made again under the new name.

A still is all or nothing: when one of its files cannot be written its other files are removed.
Write errors (disk full, read-only folder) stop the batch, as every later still would fail the
same way; a re-run resumes.

Whole x4 images (face mode's image, frame mode's whole frame with ``--save-frame``) are at most
``facesr.infer.pipeline.MAX_OUTPUT_PIXELS`` (140 MP, a 4K video frame fits; with ``--outscale``
above 4 the final image too): a larger input fails from its header, before it is decoded
(``--no-save-frame`` writes only the face crops).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import cv2
import numpy as np
import torch
import typer
from rich.markup import escape

from facesr.cli._common import (
    BatchReport,
    FolderBusy,
    collect_sourced_inputs,
    err,
    lock_folder,
    out,
    progress,
    remove_partial_files,
    source_tag,
)
from facesr.demo import side_by_side
from facesr.eval.inputs import shrink
from facesr.infer.faces import DEFAULT_DETECTOR, DETECTORS, Face, make_detector
from facesr.infer.pipeline import (
    COLOR_LOCK,
    MAX_OUTPUT_PIXELS,
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
    timecode,
    to_array,
    to_tensor,
    video_info,
    video_rate,
    write_image,
    write_video,
)
from facesr.provenance import image_metadata, record_provenance

_CHOICES = {"--mode": ("auto", "face", "frame"), "--backend": ("torch", "onnx"),
            "--device": ("cpu", "cuda"), "--precision": ("auto", "fp32", "fp16", "bf16"),
            "--background": ("bicubic", "lanczos"),
            "--ext": ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff"),
            "--format": ("png", "jpg", "jpeg", "webp", "tif", "tiff")}
# the output format of --ext auto by the input's suffix (anything else, and video frames: png)
_AUTO_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp", ".tif": "tif",
                ".tiff": "tif"}
# settings that never change a still's outputs: speed, and which stills a run makes (``ext``:
# what was asked; ``format``, the format each input got, is the one that counts)
_NEUTRAL = frozenset({"threads", "stride", "max_frames", "save_video", "ext"})
_DETECTION = frozenset({"detector", "detector_weights", "min_size", "score_threshold"})
# only shape frame mode's outputs
_FRAME = frozenset({"margin", "background", "save_frame", "only_center_face"})
# settings added after records were first written, with the value that makes the outputs an
# older facesr made (a record without the field counts as made with it)
_ADDED = {"outscale": 4.0, "suffix": "x4", "max_side": None, "only_center_face": False,
          "save_lr": False, "compare": False}
SCALE = 4  # the network's
UPSAMPLED_DB = 45.0  # a x2 down-and-up round trip changes an upsampled input by less than this
UPSAMPLED_MIN_SIDE = 128  # inputs whose longer side is at most this are not measured
_FACTORS = (2, 3, 4, 6, 8, 12)  # the round trips measured, in order


class _WriteError(Exception):
    """A file in --out cannot be written (disk full, read-only folder): the batch stops."""

    def __init__(self, path: Path, e: OSError) -> None:
        super().__init__(f"{path}: cannot write ({e.strerror or e})")


def _base(name: str, frame: int | None) -> str:
    """A still's base name: its input's name (``_placed``), plus ``_f<frame>`` in a video."""
    return name + ("" if frame is None else f"_f{frame:06d}")


def _legacy_base(path: Path, frame: int | None) -> str:
    """The base name older facesr versions gave every still: ``<stem>_<hash>[_f<frame>]``."""
    return _base(f"{path.stem}_{source_tag(path)}", frame)


def _join(*parts: str) -> str:
    """Name parts joined by ``_``, empty ones (an empty --suffix) left out."""
    return "_".join(p for p in parts if p)


def _placed(sources: list[Path], report: BatchReport, out_dir: Path
            ) -> dict[Path, tuple[Path, str, str | None]]:
    """Each input file (resolved; in order, each once, none inside ``out_dir``) -> (its folder
    under --out, relative; its name; the name it shares, or None). A file found in a source
    folder keeps its subfolder of it, a file given directly goes to --out itself; its name is
    its stem, or ``<stem>_<hash>`` for every input that would share a folder and a stem with
    another (its line says so). A source that does not exist or holds nothing usable is one
    failure."""
    found: dict[Path, tuple[Path, str, str | None]] = {
        r: (f.parent.relative_to(raw) if raw.is_dir() else Path(), f.stem, None)
        for r, (raw, f) in collect_sourced_inputs(sources, report, exclude=out_dir).items()}
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for r, (rel, stem, _) in found.items():
        groups[(str(rel).casefold(), stem.casefold())].append(r)
    for members in groups.values():
        if len(members) > 1:
            for r in members:
                rel, stem, _ = found[r]
                found[r] = (rel, f"{stem}_{source_tag(r)}", (rel / stem).as_posix())
    return found


def _out_format(ext: str, path: Path, video: bool) -> str:
    """The output format of an input: --ext, or for auto the input's own (``_AUTO_FORMAT``)."""
    if ext != "auto":
        return ext
    return "png" if video else _AUTO_FORMAT.get(path.suffix.lower(), "png")


def _final_size(size: tuple[int, int], outscale: float) -> tuple[int, int]:
    """(width, height) at --outscale: ``round(outscale * side)``, at least 1 px."""
    return tuple(max(1, round(outscale * v)) for v in size)  # type: ignore[return-value]


def _rescale(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (3, h, w) output resampled to ``size`` (width, height): area when shrinking, Lanczos-4
    when enlarging; as it is when it has that size already."""
    w, h = size
    if (img.shape[-1], img.shape[-2]) == (w, h):
        return img
    arr = img.detach().float().cpu().permute(1, 2, 0).numpy()
    shrinking = w <= img.shape[-1] and h <= img.shape[-2]
    arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA if shrinking
                     else cv2.INTER_LANCZOS4)
    return torch.from_numpy(np.clip(arr, 0.0, 1.0)).permute(2, 0, 1).contiguous()


def upsampled_factor(arr: np.ndarray) -> tuple[int, dict[int, float]]:
    """How much an image looks upsampled: (k, {k: dB}).

    The luma is area-downscaled by each k of ``_FACTORS`` (while 16 px or more remain) and
    cubic-upscaled back; {k: dB} is the PSNR of each round trip. When the x2 one stays within
    ``UPSAMPLED_DB`` the image carries no detail at its stored size, and k is its likely
    upsampling factor: the k after which the PSNR falls fastest (per octave of k), since round
    trips up to the true factor lose little and the next one loses real detail. Else k = 1.
    Images whose longer side is at most ``UPSAMPLED_MIN_SIDE`` are not measured (1, {}); of
    larger ones the central 1024 px at most. ``arr``: float RGB HWC in [0, 1]."""
    h, w = arr.shape[:2]
    if max(h, w) <= UPSAMPLED_MIN_SIDE:
        return 1, {}
    top, left = max(0, (h - 1024) // 2), max(0, (w - 1024) // 2)
    rgb = arr[top:top + 1024, left:left + 1024]
    y = np.ascontiguousarray(rgb @ np.array([0.299, 0.587, 0.114], np.float32),
                             dtype=np.float32)
    h, w = y.shape
    measured: dict[int, float] = {}
    for k in _FACTORS:
        if min(h, w) / k < 16:  # too few pixels left to tell
            break
        down = cv2.resize(y, (max(1, round(w / k)), max(1, round(h / k))),
                          interpolation=cv2.INTER_AREA)
        back = cv2.resize(down, (w, h), interpolation=cv2.INTER_CUBIC)
        mse = float(np.mean((y - back) ** 2))
        measured[k] = round(10 * math.log10(1 / max(mse, 1e-10)), 1)
    if measured.get(2, 0.0) < UPSAMPLED_DB:
        return 1, measured
    ks = sorted(measured)
    if len(ks) < 2:
        return 2, measured
    steps = [(measured[a] - measured[b]) / math.log2(b / a)
             for a, b in zip(ks, ks[1:], strict=False)]
    return ks[int(np.argmax(steps))], measured


def _stills(path: Path, stride: int, max_frames: int | None
            ) -> Iterator[tuple[int | None, float | None, np.ndarray, list[str]]]:
    """(frame or None, its time in seconds or None, RGB float HWC, notes) for an image or
    every ``stride``-th video frame (``io.iter_sources``); an unreadable input raises its
    InputError."""
    for still in iter_sources([path], frame_stride=stride, max_frames=max_frames):
        if still.error is not None:
            raise still.error
        yield still.frame, still.time, still.image, list(still.notes)


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

    if backend == "onnx" and precision not in ("auto", "fp32"):
        raise typer.BadParameter("the onnx backend runs fp32 only (--precision fp32)",
                                 param_hint="--precision")
    if device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("--device cuda, but this PyTorch has no usable CUDA GPU",
                                 param_hint="--device")
    try:
        name = model or zoo.default_model_name()
        if backend == "onnx":
            from facesr.infer.onnx_backend import OnnxRunner, export_onnx, load_onnx

            if name.lower().endswith(".onnx"):
                runner, info = load_onnx(name, device=device, threads=threads)
            else:
                net, info = zoo.load(name)
                err.print(f"exporting {info.name} to ONNX in memory (save it once with "
                          "`facesr export onnx` to skip this)")
                runner = OnnxRunner(export_onnx(net), device=device, threads=threads)
            return runner, _model_record(info, name), "fp32"
        net, info = zoo.load(name, device=device)
        runner, label = auto_runner(net, device=device, precision=precision)
        return runner, _model_record(info, name), label
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None


def _model_record(info, name: str) -> dict:
    """The model's record with absolute, resolved file paths, plus ``path`` when --model named
    a file (weights or .onnx)."""
    rec = info.record()
    rec["files"] = {str(Path(p).resolve()): h for p, h in rec.get("files", {}).items()}
    if Path(name).is_file():
        rec["path"] = str(Path(name).resolve())
    return rec


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
        "(faithful, 7x slower), realesrgan-x4plus (sharp, redraws faces); or a weights file "
        "(.safetensors, .pth; .onnx with --backend onnx).", show_default=False)] = None,
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
) -> None:
    """Super-resolve faces x4: face crops directly, frames and videos face by face.

    Every output gets a JSON record beside it. Re-running with the same --out resumes: stills
    that have a record are skipped (--overwrite redoes them); a record made with another model
    or another value of a setting that changes outputs fails its input. One run per --out at a
    time. Exit code 1 when anything failed, 2 when there is nothing to do.
    """
    given = {"--mode": mode, "--backend": backend, "--device": device, "--precision": precision,
             "--background": background, "--ext": ext, "--format": fmt}
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
                "save_lr": save_lr, "compare": compare, "color_lock": color_lock}

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

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with lock_folder(out_dir):
            if removed := sum(map(remove_partial_files, _folders(out_dir))):
                err.print(f"removed {removed} unfinished temporary file(s) (*.part) of an "
                          f"interrupted run from {out_dir}", soft_wrap=True, markup=False)
            _batch(work, runner, det, out_dir, settings, model_rec, overwrite, report, say,
                   save_frame=save_frame, fps=fps, places=places)
    except KeyboardInterrupt:
        err.print(f"interrupted: {report.done} still(s) done this run, {report.skipped} "
                  f"skipped; finished work is kept: run the same command again to resume",
                  soft_wrap=True, markup=False)
        raise typer.Exit(code=130) from None
    except FolderBusy as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    except OSError as e:  # the last resort: --out cannot be made or locked, or worse
        what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        report.fail(out_dir, f"{out_dir}: cannot use the output folder ({what})")
        report.left = sum(work.values()) - report.done - report.skipped
    out.print(f"outputs and records in {out_dir}. {NOTICE}", soft_wrap=True)
    report.finish("images/frames")


_SIZE_HINTS = {
    "face": "downscale it, or upscale face crops of it (facesr faces extract)",
    "frame": "pass --no-save-frame to write the face crops only, or downscale it",
    "auto": "pass --mode frame --no-save-frame to write the face crops only, or downscale it",
}


def _check_header(path: Path, stride: int, *, whole: bool, hint: str,
                  max_side: int | None = None, outscale: float = SCALE) -> int:
    """Stills that ``path``'s header promises; with ``whole`` (the run makes whole x4 images),
    refuse an input whose x4 (or final image, --outscale above 4) would be over the pipeline's
    ``MAX_OUTPUT_PIXELS``, before any decoding; of its size after ``max_side`` (--max-side). A
    header that cannot be read is left to the decoder, which names the fault."""
    if kind_of(path) == "video":
        info = video_info(path)
        n, size = -(-info.frames // stride), (info.width, info.height)
    else:
        n, size = 1, None
        if kind_of(path) == "image":
            with contextlib.suppress(InputError):
                h, w = image_size(path)
                size = (w, h) if w * h <= MAX_PIXELS else None  # over it: io's own error
    if size is not None and max_side is not None and max(size) > max_side:
        f = max_side / max(size)
        size = (max(1, round(size[0] * f)), max(1, round(size[1] * f)))
    if whole and size is not None:
        try:
            check_output_size(size, hint=hint)
            w, h = _final_size(size, outscale)
            if w * h > MAX_OUTPUT_PIXELS:
                raise ValueError(f"the x{outscale:g} output of this {size[0]}x{size[1]} px "
                                 f"input would be {w}x{h} px ({w * h / 1e6:.0f} MP), over the "
                                 f"{MAX_OUTPUT_PIXELS / 1e6:g} MP limit; {hint}")
        except ValueError as e:
            raise InputError(path, str(e)) from None
    return n


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


def _batch(work: dict[Path, int], runner, det, out_dir: Path, settings: dict, model_rec: dict,
           overwrite: bool, report: BatchReport, say: Callable[[str], None], *,
           save_frame: bool | None = None, fps: float | None = None,
           places: dict[Path, tuple[Path, str, str | None]] | None = None) -> None:
    """Run every still of ``work`` (path -> stills its header promises) into ``report`` and
    ``say`` (a line per still, printed as it finishes); a bad input fails alone, a write
    error stops the batch. ``save_frame``: the --save-frame given (None: its per-input
    default, ``_input_settings``); ``fps``: --fps; ``places``: each input's folder under
    ``out_dir`` and name (``_placed``; default: ``out_dir`` and its stem)."""
    stride, max_frames = settings["stride"], settings["max_frames"]
    paths = list(work)
    with progress() as bar:
        task = bar.add_task("upscale", total=sum(work.values()), note="")
        for i, path in enumerate(paths):
            digest, pulled, clip, src_fps = None, 0, None, None
            video = kind_of(path) == "video"
            settings_in = {**_input_settings(settings, video, save_frame),
                           "format": _out_format(settings["ext"], path, video)}
            rel, name, shared = (places or {}).get(path, (Path(), path.stem, None))
            folder = out_dir / rel
            stills = _stills(path, stride, max_frames)
            measured = False
            try:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise _WriteError(folder, e) from None
                if video:
                    src_fps = video_info(path).fps
                if video and settings["save_video"]:
                    clip = _VideoOut(path, folder, name, settings_in, model_rec, fps, overwrite)
                    digest = clip.digest
                while True:
                    t0 = time.perf_counter()
                    try:
                        frame, at, arr, notes = next(stills)
                    except StopIteration:
                        break
                    pulled += 1
                    read_ms = round(1000 * (time.perf_counter() - t0), 1)
                    bar.update(task, note=f"{path.name} {'' if frame is None else frame}")
                    size = [arr.shape[1], arr.shape[0]]
                    if settings["max_side"] is not None and max(size) > settings["max_side"]:
                        arr = to_array(shrink(to_tensor(arr), settings["max_side"]))
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
                                settings={**settings_in, "save_frame": True}, video=True))
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
                                       frame))
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
                return
            except InputError as e:
                report.fail(path, str(e))
                if clip is not None:  # a re-run cannot mend the input: no MP4, no frames kept
                    shutil.rmtree(clip.store, ignore_errors=True)
            except OSError as e:  # e.g. an input that cannot be read (no permission)
                report.fail(path, f"{e.filename or path}: {e.strerror or e}")
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: the batch goes on
                first = (str(e).strip().splitlines() or [""])[0]
                report.fail(path, f"{path}: failed ({type(e).__name__}: {first})")


def _write_record(rec_path: Path, rec: dict, out_dir: Path) -> None:
    """Write a still's record last, with its ``provenance`` (facesr version and commit, command
    line, library versions, UTC time: ``facesr.provenance``) after the notice; when that fails,
    remove its images too (all or nothing)."""
    rec = {"notice": rec.get("notice", NOTICE), "provenance": record_provenance(), **rec}
    try:
        atomic_write_text(rec_path, json.dumps(rec, indent=2) + "\n")
    except OSError as e:
        _remove(out_dir, [o["file"] for o in rec["outputs"]])
        raise _WriteError(rec_path, e) from None


def _remove(out_dir: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            (out_dir / name).unlink(missing_ok=True)


# settings that never change the MP4 of --save-video (save_frame, save_lr, compare: which
# images are kept or added; ext: what was asked, ``format`` is what each input got)
_VIDEO_NEUTRAL = frozenset({"threads", "save_frame", "save_video", "save_lr", "compare", "ext"})


def _input_settings(settings: dict, video: bool, save_frame: bool | None) -> dict:
    """One input's settings as its records hold them. --save-frame not given: on for images;
    for video frames ``"faces"`` (the whole x4 frame only where a face was found), or off
    with --save-video (the x4 frames go into the MP4)."""
    if not video or save_frame is not None:
        return settings
    return {**settings, "save_frame": False if settings["save_video"] else "faces"}


def _as_made(rec_path: Path, settings: dict) -> dict:
    """``settings`` with the --save-frame default a video still done earlier was made with
    (when --save-frame is not given): adding or dropping --save-video, which changes that
    default, neither redoes nor fails the stills already done."""
    try:
        made = json.loads(rec_path.read_text(encoding="utf-8"))["settings"]["save_frame"]
    except (OSError, ValueError, KeyError, TypeError):
        return settings
    return {**settings, "save_frame": made} if made in (True, False, "faces") else settings


def _frame_outputs(rec: dict, settings: dict, out_dir: Path, clip: _VideoOut | None,
                   frame: int, at: float) -> list[dict]:
    """A video still's outputs once its whole x4 frame is dealt with: an output with
    --save-frame (``"faces"``: when a face was found), else moved to the MP4's frames
    (--save-video) or removed. Face mode's x4 image is always an output (and the MP4's
    frame)."""
    keep = settings["save_frame"] is True or (settings["save_frame"] == "faces"
                                              and bool(rec["faces"]))
    outputs = []
    for o in rec["outputs"]:
        if o["kind"] == "frame" and not keep:
            if clip is not None:
                clip.add(frame, at, out_dir / o["file"], move=True)
            else:
                _remove(out_dir, [o["file"]])
            continue
        if o["kind"] in ("frame", "image") and clip is not None:
            clip.add(frame, at, out_dir / o["file"])
        outputs.append(o)
    return outputs


class _VideoOut:
    """The x4 MP4 of one video (--save-video): ``<name>_<sfx>.mp4`` and its record
    ``<name>_<sfx>.mp4.json`` in its folder, made of the x4 frame of every sampled frame.

    A still's x4 frame is its output (face mode's image, the whole frame with --save-frame)
    or else a file in the hidden folder ``.<name>_<sfx>.frames`` (removed once the MP4 is
    written), so a killed run resumes with the frames it made; a still done earlier whose x4
    frame is nowhere is made again (its outputs and record untouched). When the record
    matches this run (input, model and settings) and the MP4 its SHA-256, nothing is collected
    and the MP4 is not rebuilt.
    """

    def __init__(self, path: Path, out_dir: Path, name: str, settings: dict, model_rec: dict,
                 fps: float | None, overwrite: bool) -> None:
        base = _join(name, settings["suffix"])
        self.path, self.out_dir, self.model_rec = path, out_dir, model_rec
        self.target = out_dir / f"{base}.mp4"
        self.rec_path = out_dir / f"{base}.mp4.json"
        self.store = out_dir / f".{base}.frames"
        self.info = video_info(path)
        self.digest = sha256_file(path)
        self.settings = {**settings, "fps": fps}
        self.frames: dict[int, tuple[float, Path]] = {}
        self.current = not overwrite and self._current()
        if not self.current:
            self._open_store()

    @staticmethod
    def _key(digest: object, model: object, settings: dict) -> str:
        return json.dumps({"input": digest, "model": model, "settings": {
            k: v for k, v in settings.items() if k not in _VIDEO_NEUTRAL}}, sort_keys=True)

    def key(self) -> str:
        return self._key(self.digest, self.model_rec["sha256"], self.settings)

    def _current(self) -> bool:
        try:
            old = json.loads(self.rec_path.read_text(encoding="utf-8"))
            same = self._key(old["input"]["sha256"], old["model"]["sha256"],
                             old["settings"]) == self.key()
            return same and self.target.is_file() and (
                old["video"]["sha256"] == sha256_file(self.target))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    def _open_store(self) -> None:
        """Keep the frames a killed run of the same input, model and settings left, else none."""
        mark = self.store / "key.json"
        if self.store.exists():
            try:
                same = mark.read_text(encoding="utf-8") == self.key()
            except OSError:
                same = False
            if not same:
                shutil.rmtree(self.store, ignore_errors=True)
        try:
            self.store.mkdir(exist_ok=True)
            if not mark.exists():
                atomic_write_text(mark, self.key())
        except OSError as e:
            raise _WriteError(self.store, e) from None

    def add(self, frame: int, at: float, file: Path, move: bool = False) -> None:
        """``file`` is the x4 frame of ``frame`` (``move``: into the hidden folder)."""
        if self.current:
            if move:
                file.unlink(missing_ok=True)
            return
        if move:
            dst = self.store / f"{frame:06d}{file.suffix}"
            try:
                os.replace(file, dst)
            except OSError as e:
                raise _WriteError(dst, e) from None
            file = dst
        self.frames[frame] = (at, file)

    def add_done(self, frame: int, at: float, rec_path: Path,
                 redo: Callable[[Path], dict]) -> None:
        """The x4 frame of a still done earlier: its output, the hidden folder's file, or
        ``redo(folder)`` (``_process`` into a scratch folder) when neither is there. The
        still's files are in the folder of its record ``rec_path``."""
        if self.current:
            return
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rec = {}
        for o in rec.get("outputs", []) if isinstance(rec, dict) else []:
            name = str(o.get("file", "")) if isinstance(o, dict) else ""
            if (o.get("kind") in ("frame", "image") and name and Path(name).name == name
                    and (rec_path.parent / name).is_file()):
                self.frames[frame] = (at, rec_path.parent / name)
                return
        stored = sorted(self.store.glob(f"{frame:06d}.*"))
        if stored:
            self.frames[frame] = (at, stored[0])
            return
        try:
            folder = Path(tempfile.mkdtemp(prefix="redo-", dir=self.store))
        except OSError as e:
            raise _WriteError(self.store, e) from None
        try:
            made = redo(folder)
            o = next(o for o in made["outputs"] if o["kind"] in ("frame", "image"))
            self.add(frame, at, folder / o["file"], move=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _assemble_video(clip: _VideoOut, bar) -> str:
    """Write ``clip``'s MP4 and then its record (an up-to-date one is left as it is); returns
    the line for the summary. The MP4 runs at the source frame rate (or --fps): each x4 frame
    is shown from its own time until the next sampled frame's, the last one until the time
    the run covered ends (the source's end, or the frame after it with --max-frames)."""
    if clip.current:
        shutil.rmtree(clip.store, ignore_errors=True)
        return (f"{clip.path}: video {clip.target.name} unchanged (its record matches this "
                "run; not rebuilt)")
    frames = sorted(clip.frames.items())
    info, settings = clip.info, clip.settings
    src = info.fps if info.fps > 0 else 25.0
    rate = video_rate(settings["fps"] or src)
    end = frames[-1][1][0] + settings["stride"] / src
    if info.duration > 0:
        end = min(end, info.duration)
    starts = [0]  # the MP4 frame where each sampled frame starts (never back in time)
    for _, (at, _) in frames[1:]:
        starts.append(max(starts[-1], round(at * rate)))
    total = max(round(end * rate), starts[-1] + 1)

    def held() -> Iterator[np.ndarray]:
        shown, img = -1, None
        for k in range(total):
            i = max(shown, 0)
            while i + 1 < len(frames) and starts[i + 1] <= k:
                i += 1
            if i != shown:
                img, shown = read_image_array(frames[i][1][1]), i
            yield img

    notes: list[str] = []
    task = bar.add_task("encode", total=total, note=clip.target.name)
    t0 = time.perf_counter()
    try:
        write_video(clip.target, held(), rate, audio_from=clip.path, notes=notes,
                    on_frame=lambda: bar.advance(task),
                    metadata={"comment": NOTICE, "description": (
                        f"facesr record {clip.rec_path.name}; input sha256 {clip.digest}; "
                        f"model sha256 {clip.model_rec['sha256']}")})
        made = video_info(clip.target)
        rec = {"notice": NOTICE, "provenance": record_provenance(), "input": {
            "path": str(clip.path), "sha256": clip.digest, "fps": info.fps,
            "frames": info.frames, "duration": round(info.duration, 6),
            "size": [info.width, info.height], "audio": info.audio},
            "model": clip.model_rec, "settings": settings, "video": {
            "file": clip.target.name, "sha256": sha256_file(clip.target), "codec": "h264",
            "pix_fmt": "yuv420p", "fps": float(rate), "rate": str(rate), "frames": total,
            "duration": round(float(total / rate), 6), "size": [made.width, made.height],
            "audio": made.audio,
            "held": "each x4 frame is shown from its own time until the next sampled one",
            "samples": [{"frame": f, "time": round(at, 6), "timecode": timecode(at),
                         "first_video_frame": s} for (f, (at, _)), s in zip(frames, starts,
                                                                             strict=True)],
            "notes": notes},
            "timings_ms": {"encode": round(1000 * (time.perf_counter() - t0), 1)}}
        atomic_write_text(clip.rec_path, json.dumps(rec, indent=2) + "\n")
    except OSError as e:
        raise _WriteError(Path(e.filename) if e.filename else clip.target, e) from None
    shutil.rmtree(clip.store, ignore_errors=True)
    audio = next((n for n in notes if "audio" in n), "no audio")
    return (f"{clip.path}: video -> {clip.target.name} (H.264, {total} frames at "
            f"{float(rate):g} fps, {float(total / rate):.2f} s; {audio})")


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

    Every setting the record holds counts (so one added later counts too; one the record
    lacks counts as its ``_ADDED`` value, which made the outputs of the facesr that wrote it),
    except the ``_NEUTRAL`` ones, detection ones when --mode face asks for none, and
    frame-mode ones when the still was made in face mode.
    """
    def shown(value: object) -> str:
        return "default" if value is None else str(value)

    was_model = old.get("model") if isinstance(old.get("model"), dict) else {}
    was = old.get("settings") if isinstance(old.get("settings"), dict) else {}
    was = {**_ADDED, **was}  # made before a setting existed: made with its old behaviour
    changes = [] if was_model.get("sha256") == model_rec["sha256"] else [
        f"model {shown(was_model.get('name'))} -> {model_rec.get('name')}"]
    ignore = _NEUTRAL | (_DETECTION if settings["mode"] == "face" else frozenset()) | (
        _FRAME if old.get("mode") == "face" else frozenset())
    for key in sorted((set(was) | set(settings)) - ignore):
        if was.get(key) != settings.get(key):
            changes.append(f"{key} {shown(was.get(key))} -> {shown(settings.get(key))}")
    return changes


def _process(arr: np.ndarray, runner, det, out_dir: Path, base: str, settings: dict,
             video: bool, stamp: dict[str, str] | None = None) -> dict:
    """Run one still; write its images (each carrying the text ``stamp``, see
    ``facesr.provenance.image_metadata``); return the record's mode, faces, outputs (with
    their SHA-256), timings."""
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
    scale, sfx, fmt = settings["outscale"], settings["suffix"], settings["format"]
    others: list[Face] = []
    if picked == "face":
        with timer("sr"):
            sr = upscale_face(image, runner, tile=tile, overlap=overlap,
                          lock_colors=settings["color_lock"])
        with timer("resample"):
            sr = _rescale(sr, _final_size(size, scale))
        outputs.append((f"{_join(base, sfx)}.{fmt}", "image", sr))
        outputs += _extras(settings, base, image, sr)
    else:
        found = faces if mode == "auto" and not video else None
        whole = settings["save_frame"]
        if found is None and (whole == "faces" or settings["only_center_face"]):
            with timer("detect"):  # detect first: to keep the centre face, to know if any
                found = det.detect(arr)
        if settings["only_center_face"] and len(found) > 1:
            keep = _center_face(found, size)
            found, others = [keep], [f for f in found if f is not keep]
        if whole == "faces":  # the whole x4 frame only where a face is found
            whole = bool(found)
        result = upscale_frame(image, runner, det, margin=settings["margin"],
                               whole_frame=bool(whole), background=settings["background"],
                               tile=tile, overlap=overlap, lock_colors=settings["color_lock"],
                               faces=found, timer=timer)
        face_recs = []
        for k, f in enumerate(result.faces):
            x, y, w, h = f.box
            with timer("resample"):
                crop = _rescale(f.image, _final_size((w, h), scale))
            name = f"{_join(base, f'face{k}', sfx)}.{fmt}"
            outputs.append((name, "face", crop))
            outputs += _extras(settings, f"{base}_face{k}", image[:, y:y + h, x:x + w], crop)
            face_recs.append({**_face_record(f.face), "crop_box": list(f.box), "output": name})
        if result.frame is not None:
            with timer("resample"):
                frame = _rescale(result.frame, _final_size(size, scale))
            outputs.append((f"{_join(base, 'frame', sfx)}.{fmt}", "frame", frame))
    digests = []
    with timer("write"):
        for k, (name, _, img) in enumerate(outputs):
            try:
                write_image(out_dir / name, img, metadata=stamp)
                digests.append(sha256_file(out_dir / name))  # the file as written
            except OSError as e:
                _remove(out_dir, [n for n, _, _ in outputs[:k + 1]])  # all or nothing
                raise _WriteError(out_dir / name, e) from None
            except ValueError:  # e.g. a format that cannot carry the metadata
                _remove(out_dir, [n for n, _, _ in outputs[:k]])
                raise
    timings["total"] = round(1000 * (time.perf_counter() - t0), 1)
    return {"mode": picked, "mode_reason": reason, "faces": face_recs,
            **({"other_faces": [_face_record(f) for f in others]} if others else {}),
            "outputs": [{"file": n, "kind": k, "size": [img.shape[-1], img.shape[-2]],
                         "sha256": digest} for (n, k, img), digest in zip(outputs, digests,
                                                                          strict=True)],
            "timings_ms": timings}


def _center_face(faces: list[Face], size: tuple[int, int]) -> Face:
    """--only-center-face: the face whose box centre is closest to the image centre (GFPGAN's
    rule); the first of equals."""
    cx, cy = size[0] / 2, size[1] / 2
    return min(faces, key=lambda f: (f.x + f.w / 2 - cx) ** 2 + (f.y + f.h / 2 - cy) ** 2)


def _extras(settings: dict, stem: str, lr: torch.Tensor, sr: torch.Tensor
            ) -> list[tuple[str, str, torch.Tensor]]:
    """--save-lr and --compare of one output ``sr`` made from ``lr`` (the pixels the model
    got): ``<stem>_lr.png`` and ``<stem>_compare.png`` (``lr`` enlarged to ``sr``'s height by
    nearest neighbour, a gap, ``sr``; each under a label), as (name, kind, image)."""
    made = []
    if settings["save_lr"]:
        made.append((f"{stem}_lr.png", "lr", lr))
    if settings["compare"]:
        scale = settings["outscale"]
        panel = side_by_side([(f"input {lr.shape[-1]}x{lr.shape[-2]} (nearest)", lr),
                              (f"facesr x{scale:g}: details synthesised", sr)],
                             height=sr.shape[-2])
        made.append((f"{stem}_compare.png", "compare", to_tensor(panel)))
    return made


def _looks_upsampled(path: Path, arr: np.ndarray, max_side: int | None) -> dict | None:
    """Measure an input (``upsampled_factor``); when it looks upsampled, print one warning
    line naming it and return what the record holds, else None."""
    factor, measured = upsampled_factor(arr)
    if factor < 2:
        return None
    h, w = arr.shape[:2]
    side = max(1, round(max(h, w) / factor))
    err.print(f"warning: {path}: looks upsampled about x{factor}: its detail would fit in "
              f"about {max(1, round(w / factor))}x{max(1, round(h / factor))} px of its {w}x{h} "
              f"(halving and restoring it changes it by only {measured[2]:g} dB PSNR; sharp "
              f"photos: about 41 dB or less), and x4 of it costs about {factor * factor}x what "
              f"x4 of that would; try --max-side {side}"
              + ("" if max_side is None else f" (now {max_side})"),
              soft_wrap=True, markup=False)
    return {"factor": factor, "roundtrip_psnr_db": {str(k): v for k, v in measured.items()},
            "suggested_max_side": side}
