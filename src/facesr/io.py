"""Every conversion between files and the package's tensor contract happens here.

Inside facesr an image is a float32 RGB tensor, shape (3, H, W), values in [0, 1].
Files may be PNG/JPEG/WebP/BMP/TIFF, grey, 8- or 16-bit, with or without alpha, with an
EXIF orientation; videos are anything OpenCV's FFmpeg backend opens (AVI, MP4, GIF, ...).
Bad files raise :class:`InputError`, whose message is one line naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".avi", ".mp4", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg"})
MAX_PIXELS = 100_000_000  # refuse decompression bombs before decoding
MIN_SIDE = 8

# EXIF orientation -> (cv2 rotate code or None, flip horizontally first);
# 5 = transpose (main diagonal), 7 = transverse (anti-diagonal), as Pillow's exif_transpose
_EXIF_OPS: dict[int, tuple[int | None, bool]] = {
    2: (None, True),
    3: (cv2.ROTATE_180, False),
    4: (cv2.ROTATE_180, True),
    5: (cv2.ROTATE_90_COUNTERCLOCKWISE, True),
    6: (cv2.ROTATE_90_CLOCKWISE, False),
    7: (cv2.ROTATE_90_CLOCKWISE, True),
    8: (cv2.ROTATE_90_COUNTERCLOCKWISE, False),
}


class InputError(ValueError):
    """A file that cannot be used; ``str(err)`` is one line that names the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _missing_reason(p: Path, default: str = "no such file or folder") -> str:
    """Why ``p``, named but absent, cannot be opened: a link loop, a broken link or ``default``."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if p.is_symlink():
            return f"broken symbolic link (its target {os.readlink(p)} does not exist)"
    return default


# ----------------------------------------------------------------------------- images
def read_image_array(
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Decode an image file to float32 RGB HWC in [0, 1] (alpha dropped, EXIF applied).

    Raises:
        InputError: missing, empty, truncated, corrupt, too large or too small files.
    """
    rgba = read_image_rgba(path, max_pixels=max_pixels, min_side=min_side)
    return np.ascontiguousarray(rgba[..., :3])


def read_image_rgba(
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Decode an image file to float32 RGBA HWC in [0, 1]; alpha is 1 where the file has none."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, _missing_reason(p, "file not found"))
    if p.is_dir():
        raise InputError(p, "is a folder, not an image")
    data = p.read_bytes()
    if not data:
        raise InputError(p, "file is empty (0 bytes)")
    orientation = _check_header(p, max_pixels)
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(p, "cannot decode image (corrupt, truncated or unsupported format)")
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        raise InputError(p, f"unsupported channel count {img.shape[2]}")
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        raise InputError(p, f"image {w}x{h} px is smaller than the {min_side} px minimum")
    arr = _to_float(img, p)
    arr = _to_rgba(arr)
    op = _EXIF_OPS.get(orientation)
    if op is not None:
        rot, flip = op
        if flip:
            arr = arr[:, ::-1]
        if rot is not None:
            arr = cv2.rotate(np.ascontiguousarray(arr), rot)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_header(p: Path, max_pixels: int) -> int:
    """Size check from the header (no full decode); returns the EXIF orientation (1 = none)."""
    try:
        with Image.open(p) as im:
            w, h = im.size
            try:
                orientation = int(im.getexif().get(0x0112, 1))
            except Exception:  # noqa: BLE001 - broken EXIF must not block decoding
                orientation = 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1  # let OpenCV try; it gives the decode error if it also fails
    except Image.DecompressionBombError:
        raise InputError(p, f"image is larger than the {max_pixels // 10**6} MP limit") from None
    if w * h > max_pixels:
        raise InputError(p, f"image {w}x{h} is larger than the {max_pixels // 10**6} MP limit")
    return orientation


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) as ``read_image`` will return it (EXIF orientation applied), from the header only.

    Raises:
        InputError: the header cannot be read.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = int(im.getexif().get(0x0112, 1))
            except Exception:  # noqa: BLE001 - broken EXIF: sizes as stored
                orientation = 1
    except Exception as e:  # noqa: BLE001 - any header failure is a bad input file
        raise InputError(path, f"cannot read image header ({e.__class__.__name__})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _to_float(img: np.ndarray, p: Path) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype in (np.float32, np.float64):
        return np.clip(np.nan_to_num(img.astype(np.float32)), 0.0, 1.0)
    raise InputError(p, f"unsupported pixel type {img.dtype}")


def _to_rgba(arr: np.ndarray) -> np.ndarray:
    """OpenCV's grey/BGR/BGRA -> RGBA."""
    if arr.ndim == 2 or arr.shape[2] == 1:
        g = arr.reshape(arr.shape[0], arr.shape[1])
        return np.stack([g, g, g, np.ones_like(g)], axis=-1)
    if arr.shape[2] == 3:
        rgb = arr[..., ::-1]
        return np.concatenate([rgb, np.ones_like(arr[..., :1])], axis=-1)
    return arr[..., [2, 1, 0, 3]]


def read_image(path: str | os.PathLike, **kwargs) -> torch.Tensor:
    """Read an image file as the package's tensor: float32 RGB, shape (3, H, W), in [0, 1]."""
    return to_tensor(read_image_array(path, **kwargs))


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """float RGB HWC array in [0, 1] -> float32 tensor (3, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t.permute(2, 0, 1).contiguous()


def to_array(t: torch.Tensor) -> np.ndarray:
    """float tensor (3, H, W) -> float32 RGB HWC array (a copy, on the CPU)."""
    return t.detach().float().cpu().permute(1, 2, 0).numpy().copy()


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """float array in [0, 1] -> uint8 with rounding."""
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def rgb_to_bgr_uint8(arr: np.ndarray) -> np.ndarray:
    """float RGB HWC in [0, 1] -> uint8 BGR HWC, as OpenCV's detectors want."""
    return np.ascontiguousarray(to_uint8(arr)[..., ::-1])


def encode_image(img: np.ndarray | torch.Tensor, ext: str, *, bits: int = 8,
                 jpeg_quality: int = 95, png_compression: int | None = None) -> bytes:
    """Encode an RGB image as the file bytes of format ``ext`` (``".png"``, ``".jpg"``, ...).

    Args:
        img: float RGB, HWC array or (3, H, W) tensor, in [0, 1].
        bits: 8 or 16 (16 only for PNG/TIFF).
        png_compression: zlib level 0-9 for PNG (None: OpenCV's default).

    Raises:
        ValueError: not an RGB image, an unsupported format or bit depth.
        OSError: the encoder failed.
    """
    arr = to_array(img) if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB HWC image, got shape {arr.shape}")
    ext = ext.lower()
    if ext not in IMAGE_EXTS:
        raise ValueError(f"unsupported output format {ext!r}")
    if bits == 16:
        if ext not in (".png", ".tif", ".tiff"):
            raise ValueError("16-bit output needs .png or .tif")
        out = (np.clip(arr, 0, 1) * 65535.0 + 0.5).astype(np.uint16)[..., ::-1]
    elif bits == 8:
        out = to_uint8(arr)[..., ::-1]
    else:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    if ext == ".png" and png_compression is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(out), params)
    if not ok:
        raise OSError(f"could not encode image as {ext}")
    return enc.tobytes()


def write_image(path: str | os.PathLike, img: np.ndarray | torch.Tensor, *, bits: int = 8,
                jpeg_quality: int = 95) -> Path:
    """Write an RGB image atomically (temp file + rename); the format follows the suffix.

    Args:
        img: float RGB, HWC array or (3, H, W) tensor, in [0, 1].
        bits: 8 or 16 (16 only for PNG/TIFF).
    """
    p = Path(path)
    try:
        data = encode_image(img, p.suffix, bits=bits, jpeg_quality=jpeg_quality)
    except (ValueError, OSError) as e:
        raise type(e)(f"{p}: {e}") from None
    atomic_write_bytes(p, data)
    return p


# ----------------------------------------------------------------------------- atomic files
# the temporary names of the atomic writers below: ``.<name>.<8 random chars>.part``
# (atomic_write_bytes, through mkstemp) and ``.<stem>.<pid>.part.mp4`` (write_video)
_PARTIAL = re.compile(r"\..+\.(?:[a-z0-9_]{8}\.part|[0-9]+\.part\.mp4)")


def is_partial(name: str) -> bool:
    """True for a temporary name of this module's atomic writers (a killed writer leaves such
    a file behind; ``facesr upscale`` removes them from its --out)."""
    return _PARTIAL.fullmatch(name) is not None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc).

    ``os.umask`` can only read the mask by setting it, which races with other threads that
    create files meanwhile; it is the fallback where /proc is unavailable.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and flush it to disk (a manifest survives a kill between records)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL manifest; a torn last line (killed writer) is ignored."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


# ----------------------------------------------------------------------------- video
@dataclass(frozen=True)
class VideoInfo:
    path: str
    frames: int  # as reported by the container; may be 0 or approximate
    fps: float
    width: int
    height: int


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Open a video and report its size; raises InputError if it cannot be read."""
    p = Path(path)
    cap = _open_video(p)
    try:
        return VideoInfo(
            str(p),
            int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        cap.release()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write RGB HWC frames (float in [0, 1]) as an MP4 video (MPEG-4 part 2), atomically.

    All frames must have the first frame's size. Raises ValueError when there is no frame,
    OSError when OpenCV cannot write the file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.{os.getpid()}.part.mp4")  # OpenCV picks the container by suffix
    writer = None
    size = None
    try:
        for frame in frames:
            bgr = rgb_to_bgr_uint8(frame)
            if writer is None:
                size = (bgr.shape[1], bgr.shape[0])
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                         max(float(fps), 1e-3), size)
                if not writer.isOpened():
                    raise OSError(f"{p}: OpenCV cannot write an MP4 video here")
            if (bgr.shape[1], bgr.shape[0]) != size:
                raise ValueError(f"{p}: frame size {bgr.shape[1]}x{bgr.shape[0]} differs from "
                                 f"the first frame's {size[0]}x{size[1]}")
            writer.write(bgr)
        if writer is None:
            raise ValueError(f"{p}: no frames to write")
        writer.release()
        writer = None
        os.replace(tmp, p)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    return p


def _open_video(p: Path) -> cv2.VideoCapture:
    if not p.exists():
        raise InputError(p, _missing_reason(p, "file not found"))
    if p.stat().st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise InputError(p, "cannot open video (corrupt or unsupported format)")
    return cap


def iter_video_frames(
    path: str | os.PathLike, *, stride: int = 1, max_frames: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb_float_hwc)`` for every ``stride``-th frame.

    Raises:
        InputError: the video cannot be opened or yields no frame at all.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    p = Path(path)
    cap = _open_video(p)
    try:
        idx = 0
        yielded = 0
        while True:
            if idx % stride == 0:
                ok, frame = cap.read()
                if not ok:
                    break
                if frame.dtype != np.uint8 or frame.ndim != 3:
                    raise InputError(p, f"unexpected frame format {frame.dtype} {frame.shape}")
                yield idx, frame[..., ::-1].astype(np.float32) / 255.0
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
            elif not cap.grab():
                break
            idx += 1
        if yielded == 0:
            raise InputError(p, "video has no readable frames")
    finally:
        cap.release()


# ----------------------------------------------------------------------------- inputs
def kind_of(path: str | os.PathLike) -> str:
    """'image', 'video' or 'other' by file suffix."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return "other"


def expand_inputs(paths: Iterable[str | os.PathLike], kinds: tuple[str, ...] = ("image", "video")
                  ) -> list[Path]:
    """Files named directly, plus files of the wanted kinds found recursively in folders.

    Files named directly are kept whatever their suffix (so a bad one gets its own error);
    folder contents are filtered by suffix and sorted. A missing path raises InputError.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and kind_of(f) in kinds
                           and not f.name.startswith("."))
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise InputError(p, _missing_reason(p))
    return out


def still_key(path: str | os.PathLike, frame: int | None) -> str:
    """The name of one still: the path of an image, ``path#frame`` for a video frame (resume
    bookkeeping, messages)."""
    return f"{path}" if frame is None else f"{path}#{frame}"


@dataclass(frozen=True)
class SourceImage:
    """One still from ``iter_sources``: an image file, or one frame of a video."""

    path: Path
    frame: int | None
    image: np.ndarray | None  # float RGB HWC in [0, 1]; None when ``error`` is set
    error: InputError | None = None
    notes: tuple[str, ...] = ()  # e.g. "alpha channel ignored"

    @property
    def key(self) -> str:
        """A stable name for this still (:func:`still_key`), e.g. for resume bookkeeping."""
        return still_key(self.path, self.frame)


def iter_sources(paths: Iterable[str | os.PathLike], *, frame_stride: int = 1,
                 max_frames: int | None = None, skip: Iterable[str] = ()) -> Iterator[SourceImage]:
    """Every still in images, folders (recursive) and videos, with per-file errors yielded.

    A file that cannot be read gives one ``SourceImage`` with ``error`` set and the iteration
    goes on. Stills whose ``key`` is in ``skip`` are not decoded (videos are still scanned).
    """
    skip = set(skip)
    for p in expand_inputs(paths):
        kind = kind_of(p)
        if kind == "video":
            try:
                for idx, frame in iter_video_frames(p, stride=frame_stride, max_frames=max_frames):
                    if still_key(p, idx) not in skip:
                        yield SourceImage(p, idx, frame)
            except InputError as e:
                yield SourceImage(p, None, None, e)
        elif still_key(p, None) in skip:
            continue
        elif kind == "image":
            try:
                rgba = read_image_rgba(p)
            except InputError as e:
                yield SourceImage(p, None, None, e)
                continue
            notes = ("alpha channel ignored",) if float(rgba[..., 3].min()) < 1.0 else ()
            yield SourceImage(p, None, np.ascontiguousarray(rgba[..., :3]), notes=notes)
        else:
            yield SourceImage(p, None, None, InputError(p, "not an image or video file "
                                                           f"(suffix {p.suffix or 'none'})"))
