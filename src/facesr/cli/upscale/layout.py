"""Where each input's outputs go and what they are called: its folder under ``--out`` (source
folders' subfolders mirrored) and name (``<stem>_<hash>`` where two inputs would share one), a
still's base name (older facesr's ``<stem>_<hash>`` names too), name parts joined without an
empty ``--suffix``, the format of ``--ext auto``, the size at ``--outscale``, and the check of
an input's header.

Whole x4 images (face mode's image, frame mode's whole frame with ``--save-frame``) are at most
``facesr.infer.pipeline.MAX_OUTPUT_PIXELS`` (140 MP, a 4K video frame fits; with ``--outscale``
above 4 the final image too): a larger input fails from its header, before it is decoded
(``--no-save-frame`` writes only the face crops).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path

from facesr.cli._common import BatchReport, collect_sourced_inputs, source_tag
from facesr.infer.pipeline import MAX_OUTPUT_PIXELS, check_output_size
from facesr.io import MAX_PIXELS, InputError, image_size, kind_of, video_info

# the output format of --ext auto by the input's suffix (anything else, and video frames: png)
_AUTO_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp", ".tif": "tif",
                ".tiff": "tif"}
SCALE = 4  # the network's


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
