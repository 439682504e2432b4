"""Every conversion between files and the package's tensor contract happens here.

Inside facesr an image is a float32 RGB tensor, shape (3, H, W), values in [0, 1].
Files may be PNG/JPEG/WebP/BMP/TIFF, grey, 8- or 16-bit, with or without alpha, with an
EXIF orientation; videos are anything FFmpeg reads (AVI, MP4, GIF, ...), through PyAV (OpenCV
as the fallback reader), and videos are written as H.264 MP4 through PyAV.
Bad files raise :class:`InputError`, whose message is one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from facesr import imagemeta

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


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 weights of R, G, B


def luma(arr: np.ndarray) -> np.ndarray:
    """float RGB HWC -> float32 (H, W) BT.601 luma (same scale as the input)."""
    return np.ascontiguousarray(arr, dtype=np.float32) @ LUMA


def rgb_to_bgr_uint8(arr: np.ndarray) -> np.ndarray:
    """float RGB HWC in [0, 1] -> uint8 BGR HWC, as OpenCV's detectors want."""
    return np.ascontiguousarray(to_uint8(arr)[..., ::-1])


def encode_image(img: np.ndarray | torch.Tensor, ext: str, *, bits: int = 8,
                 jpeg_quality: int = 95, png_compression: int | None = None,
                 metadata: Mapping[str, str] | None = None) -> bytes:
    """Encode an RGB image as the file bytes of format ``ext`` (``".png"``, ``".jpg"``, ...).

    Args:
        img: float RGB, HWC array or (3, H, W) tensor, in [0, 1].
        bits: 8 or 16 (16 only for PNG/TIFF).
        png_compression: zlib level 0-9 for PNG (None: OpenCV's default).
        metadata: text to carry in the file (PNG, JPEG, TIFF and WebP only; see
            :mod:`facesr.imagemeta`, whose ``read_text`` reads it back).

    Raises:
        ValueError: not an RGB image, an unsupported format or bit depth.
        OSError: the encoder failed.
    """
    if isinstance(img, torch.Tensor) and bits == 8 and img.ndim == 3 and img.shape[0] == 3:
        # 8-bit BGR straight from the (3, H, W) tensor: the same bytes as to_uint8(to_array())
        # without the float HWC copies (6x faster on a 14 MP frame)
        t = img.detach().float().cpu().clamp(0, 1).mul(255.0).add_(0.5).to(torch.uint8)
        arr = t.flip(0).permute(1, 2, 0).contiguous().numpy()
    else:
        arr = to_array(img) if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB HWC image, got shape {arr.shape}")
    ext = ext.lower()
    if ext not in IMAGE_EXTS:
        raise ValueError(f"unsupported output format {ext!r}")
    if metadata and ext not in imagemeta.FORMATS:
        raise ValueError(f"cannot write metadata into {ext} files (use .png, .jpg, .tif or "
                         ".webp)")
    if bits == 16:
        if ext not in (".png", ".tif", ".tiff"):
            raise ValueError("16-bit output needs .png or .tif")
        out = (np.clip(arr, 0, 1) * 65535.0 + 0.5).astype(np.uint16)[..., ::-1]
    elif bits == 8:
        out = arr if arr.dtype == np.uint8 else to_uint8(arr)[..., ::-1]  # uint8: BGR already
    else:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    if ext == ".png" and png_compression is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(out), params)
    if not ok:
        raise OSError(f"could not encode image as {ext}")
    return imagemeta.embed_text(enc.tobytes(), ext, metadata) if metadata else enc.tobytes()


def write_image(path: str | os.PathLike, img: np.ndarray | torch.Tensor, *, bits: int = 8,
                jpeg_quality: int = 95, metadata: Mapping[str, str] | None = None) -> Path:
    """Write an RGB image atomically (temp file + rename); the format follows the suffix.

    Args:
        img: float RGB, HWC array or (3, H, W) tensor, in [0, 1].
        bits: 8 or 16 (16 only for PNG/TIFF).
        metadata: text the file carries (PNG, JPEG, TIFF, WebP; :func:`encode_image`).
    """
    p = Path(path)
    try:
        data = encode_image(img, p.suffix, bits=bits, jpeg_quality=jpeg_quality,
                            metadata=metadata)
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
    with _signals_deferred():  # Ctrl-C / SIGTERM handlers that raise wait for the write
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
        try:
            os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return p


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back in the main thread for the block, then act on them: a
    handler that raises between ``mkstemp`` and the ``try`` would leave a ``.part`` file behind.

    Blocking the signals (``pthread_sigmask``) is not enough: a signal that arrived just before
    the block has already been taken by the OS, and Python runs the handler installed *when it
    gets round to it*, which can be inside the block. So Python handlers are swapped for one
    that only records the signal, and the original handlers are called after the block; the
    mask keeps default-action signals (SIG_DFL) from killing the process mid-write.
    """
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "pthread_sigmask"):
        yield
        return
    caught: list[tuple[int, object]] = []
    swapped: dict[int, Callable] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):
                swapped[signum] = handler
                signal.signal(signum, lambda n, frame: caught.append((n, frame)))
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    finally:
        for signum, handler in swapped.items():
            signal.signal(signum, handler)
        for signum, frame in caught:  # also after an error: a Ctrl-C is never lost; the
            swapped[signum](signum, frame)  # first handler that raises ends the replay


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
# Videos are read and written through PyAV (FFmpeg in its wheel, with libx264 and AAC); a file
# PyAV cannot open is given to OpenCV's FFmpeg backend before it is called unreadable.
@dataclass(frozen=True)
class VideoInfo:
    path: str
    frames: int  # as reported by the container (else duration x fps); may be 0 or approximate
    fps: float  # the average frame rate
    width: int  # as displayed (a rotation in the file applied)
    height: int
    duration: float = 0.0  # seconds of the video stream; 0 when unknown
    audio: str | None = None  # the codec of the first audio stream; None: no audio


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Open a video and report its size; raises InputError if it cannot be read."""
    p = Path(path)
    video = _open_video(p)
    try:
        return video.info()
    finally:
        video.close()


class _AvVideo:
    """A video opened with PyAV: its first video stream, decoded with each frame's time."""

    MAX_BAD_PACKETS = 1000  # packets in a row that fail to decode before the rest is given up

    def __init__(self, p: Path, container: av.container.InputContainer) -> None:
        self.p, self.container = p, container
        self.stream = container.streams.video[0]

    def close(self) -> None:
        self.container.close()

    def fps(self) -> float:
        s = self.stream
        rate = s.average_rate or s.base_rate or s.guessed_rate
        return float(rate) if rate else 0.0

    def duration(self) -> float:
        s, c = self.stream, self.container
        if s.duration and s.time_base:
            return float(s.duration * s.time_base)
        return c.duration / av.time_base if c.duration else 0.0

    def info(self) -> VideoInfo:
        s, c = self.stream, self.container
        fps = self.fps()
        # the frame count as OpenCV's FFmpeg backend gives it: the header's, else duration x fps
        seconds = c.duration / av.time_base if c.duration else self.duration()
        frames = s.frames or int(seconds * fps + 0.5)
        w, h = s.codec_context.width, s.codec_context.height
        if self._quarter_turns() % 2:
            w, h = h, w
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return VideoInfo(str(self.p), int(frames), fps, w, h, self.duration(), audio)

    def _quarter_turns(self) -> int:
        """Counter-clockwise quarter turns that display the frames upright (the file's display
        matrix); PyAV gives it per decoded frame, so the header's is read from the first one."""
        if not hasattr(self, "_turns"):
            self._turns = 0
            try:
                with av.open(str(self.p), metadata_errors="ignore") as c:
                    for frame in c.decode(video=0):
                        self._turns = round((frame.rotation or 0) / 90) % 4
                        break
            except (av.FFmpegError, OSError, ValueError):
                pass
        return self._turns

    def frames(self, stride: int, max_frames: int | None,
               want: Callable[[int], bool] | None = None
               ) -> Iterator[tuple[int, float, np.ndarray | None]]:
        """(index, seconds from the video's start, RGB float HWC) of every ``stride``-th frame;
        the image is None where ``want(index)`` is false (decoded, not converted)."""
        s = self.stream
        s.thread_type = "AUTO"
        start = s.start_time or 0
        fps = self.fps() or 25.0
        yielded = 0
        for idx, frame in enumerate(self._decoded()):
            if idx % stride:
                continue
            t = idx / fps if frame.pts is None else float((frame.pts - start) * s.time_base)
            arr = None
            if want is None or want(idx):
                rgb = frame.to_ndarray(format="rgb24")
                turns = round((frame.rotation or 0) / 90) % 4
                if turns:
                    rgb = np.rot90(rgb, turns)
                arr = rgb.astype(np.float32) / 255.0
            yield idx, max(t, 0.0), arr
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                return

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Every frame that decodes; a packet that fails to decode is skipped (as OpenCV does),
        and where the file cannot be read on (truncated, corrupt) the decoder is flushed."""
        packets = self.container.demux(self.stream)
        bad = 0
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError:
                packet = None  # unreadable from here on: flush the frames the decoder holds
            try:
                frames = self.stream.codec_context.decode(packet)
            except av.FFmpegError:
                bad += 1
                if packet is None or bad > self.MAX_BAD_PACKETS:
                    return
                continue
            bad = 0
            yield from frames
            if packet is None:
                return


class _CvVideo:
    """The fallback: a video that only OpenCV's FFmpeg backend opens (times from the fps)."""

    def __init__(self, p: Path, cap: cv2.VideoCapture) -> None:
        self.p, self.cap = p, cap

    def close(self) -> None:
        self.cap.release()

    def info(self) -> VideoInfo:
        cap = self.cap
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return VideoInfo(str(self.p), frames, fps, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         frames / fps if fps > 0 else 0.0)

    def frames(self, stride: int, max_frames: int | None,
               want: Callable[[int], bool] | None = None
               ) -> Iterator[tuple[int, float, np.ndarray | None]]:
        cap = self.cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
        idx = yielded = 0
        while True:
            if idx % stride == 0:
                ok, frame = cap.read()
                if not ok:
                    return
                if frame.dtype != np.uint8 or frame.ndim != 3:
                    raise InputError(self.p, f"unexpected frame format {frame.dtype} "
                                     f"{frame.shape}")
                arr = None
                if want is None or want(idx):
                    arr = frame[..., ::-1].astype(np.float32) / 255.0
                yield idx, idx / fps, arr
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
            elif not cap.grab():
                return
            idx += 1


# audio codecs copied into the MP4 as they are (MP4 carries them and browsers play them);
# any other audio is re-encoded as AAC
MP4_AUDIO = frozenset({"aac", "mp3"})


def video_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as the exact fraction a container stores (29.97... -> 30000/1001)."""
    rate = fps if isinstance(fps, Fraction) else Fraction(float(fps)).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"the frame rate must be > 0, got {fps}")
    return rate


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float | Fraction,
                *, audio_from: str | os.PathLike | None = None, crf: int = 18,
                preset: str = "veryfast", notes: list[str] | None = None,
                on_frame: Callable[[], object] | None = None,
                metadata: Mapping[str, str] | None = None) -> Path:
    """Write RGB HWC frames (float in [0, 1], or uint8) as a browser-playable MP4, atomically.

    The video is H.264 (libx264, ``crf``, ``preset``; yuv420p, BT.709, limited range) at
    ``fps`` frames a second, with its index at the front (``+faststart``: playback starts
    before the whole file is loaded). yuv420p needs an even width and height: an odd side is
    padded by 1 px (its last row or column repeated) and ``notes`` says so. Passing the same
    array object again repeats that frame: it is converted once (how a frame is held).

    ``audio_from``: a media file whose first audio stream is copied for the time the video
    covers (0 to frames / fps, counted from the start of that file's video): its packets as
    they are when the codec is in ``MP4_AUDIO``, else re-encoded as AAC. Audio that cannot be
    read is left out, and ``notes`` says what happened to the audio. ``on_frame()`` is called
    after each frame (progress); ``metadata``: the MP4's tags (e.g. ``comment``,
    ``description``). The file appears complete or not at all (temporary file +
    rename; its temporary name is one of ``is_partial``'s).

    Raises:
        ValueError: no frame, frames of different sizes, a frame rate <= 0.
        OSError: the file cannot be written.
        RuntimeError: the encoder failed.
    """
    p = Path(path)
    rate = video_rate(fps)
    notes = [] if notes is None else notes
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.{os.getpid()}.part.mp4")
    out = audio = None
    try:
        out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        out.metadata.update(metadata or {})
        stream, last, picture, n, size = None, None, None, 0, (0, 0)
        for frame in frames:
            if frame is not last or picture is None:
                rgb = np.asarray(frame)
                rgb = rgb if rgb.dtype == np.uint8 else to_uint8(rgb)
                if rgb.ndim != 3 or rgb.shape[2] != 3:
                    raise ValueError(f"{p}: expected RGB HWC frames, got shape {rgb.shape}")
                if stream is None:
                    size = (rgb.shape[1], rgb.shape[0])
                    stream = _h264_stream(out, rate, size, crf, preset, notes)
                    if audio_from is not None:
                        audio = _AudioCopy.open(Path(audio_from), out, notes)
                elif (rgb.shape[1], rgb.shape[0]) != size:
                    raise ValueError(f"{p}: frame size {rgb.shape[1]}x{rgb.shape[0]} differs "
                                     f"from the first frame's {size[0]}x{size[1]}")
                picture = _yuv_frame(rgb, stream.width, stream.height)
                last = frame
            picture.pts = n
            _mux_video(out, stream.encode(picture), audio)
            n += 1
            if on_frame is not None:
                on_frame()
        if stream is None:
            raise ValueError(f"{p}: no frames to write")
        _mux_video(out, stream.encode(None), audio)
        if audio is not None:
            audio.finish(float(n / rate))
        out.close()
        out = None
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:  # PyAV's errno errors are OSErrors too
        raise OSError(e.errno, e.strerror or str(e), str(p)) from None
    except av.FFmpegError as e:
        raise RuntimeError(f"{p}: the H.264 encoder failed ({e})") from None
    finally:
        for c in (audio, out):  # after an error: close without hiding it
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001, S110 - the first error is the one to report
                pass
        tmp.unlink(missing_ok=True)
    return p


def _h264_stream(out: av.container.OutputContainer, rate: Fraction, size: tuple[int, int],
                 crf: int, preset: str, notes: list[str]) -> av.VideoStream:
    from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

    w, h = size
    even = (w + w % 2, h + h % 2)
    if even != size:
        notes.append(f"frames padded from {w}x{h} to {even[0]}x{even[1]} px (H.264 4:2:0 "
                     "needs an even width and height; the last row/column is repeated)")
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height = even
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": str(int(crf)), "preset": preset}
    cc = stream.codec_context
    cc.colorspace, cc.color_range = Colorspace.ITU709, ColorRange.MPEG
    cc.color_primaries, cc.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
    return stream


def _yuv_frame(rgb: np.ndarray, width: int, height: int) -> av.VideoFrame:
    from av.video.reformatter import ColorRange, Colorspace

    h, w = rgb.shape[:2]
    if (w, h) != (width, height):
        rgb = np.pad(rgb, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709,
                          dst_color_range=ColorRange.MPEG)


def _mux_video(out: av.container.OutputContainer, packets: Iterable[av.Packet],
               audio: _AudioCopy | None) -> None:
    """Mux video packets, each after the audio that comes before it (interleaved: a player
    reading the file front to back needs no big buffer)."""
    for packet in packets:
        if audio is not None and packet.dts is not None:
            audio.until(float(packet.dts * packet.time_base))
        out.mux(packet)


class _AudioCopy:
    """The first audio stream of a file, muxed into an MP4 in step with its video: the packets
    as they are (``MP4_AUDIO``), else decoded and re-encoded as AAC. Times are counted from the
    start of the source's video, so that sound and picture stay in sync."""

    def __init__(self, src: Path, container: av.container.InputContainer,
                 out: av.container.OutputContainer, notes: list[str]) -> None:
        self.src, self.container, self.out, self.notes = src, container, out, notes
        self.ist = container.streams.audio[0]
        video = container.streams.video
        ref = video[0] if video and video[0].start_time is not None else self.ist
        self.t0 = float((ref.start_time or 0) * ref.time_base)
        self.name = self.ist.codec_context.name
        self.copy = self.name in MP4_AUDIO
        if self.copy:
            self.ost = out.add_stream_from_template(self.ist)
        else:
            self.ist.thread_type = "AUTO"
            rate = self.ist.codec_context.sample_rate or 48000
            self.ost = out.add_stream("aac", rate=rate)
            self.ost.layout = "mono" if self.ist.codec_context.channels == 1 else "stereo"
            self.ost.bit_rate = 128_000
        self.packets = container.demux(self.ist)
        self.pending: av.Packet | None = None
        self.ended = False
        self.stopped_at: float | None = None  # where a read error cut the audio short

    @classmethod
    def open(cls, src: Path, out: av.container.OutputContainer, notes: list[str]
             ) -> _AudioCopy | None:
        try:
            container = av.open(str(src), metadata_errors="ignore")
        except (av.FFmpegError, OSError, ValueError) as e:
            notes.append(f"audio left out: {src} cannot be read ({e})")
            return None
        if not container.streams.audio:
            container.close()
            notes.append("no audio: the source has none")
            return None
        try:
            audio = cls(src, container, out, notes)
        except (av.FFmpegError, ValueError) as e:
            container.close()
            notes.append(f"audio left out: its stream cannot be set up ({e})")
            return None
        notes.append(f"audio: {audio.name} copied from the source" if audio.copy else
                     f"audio: the source's {audio.name} re-encoded as AAC")
        return audio

    def until(self, t: float) -> None:
        """Mux the audio that starts before ``t`` seconds."""
        while not self.ended:
            if self.pending is None:
                try:
                    packet = next(self.packets)
                except StopIteration:
                    self.ended = True
                    return
                except av.FFmpegError:
                    self.ended, self.stopped_at = True, t
                    return
                if packet.pts is None and packet.dts is None:
                    continue  # the demuxer's end-of-stream packet
                self.pending = packet
            packet = self.pending
            start = float((packet.pts if packet.pts is not None else packet.dts)
                          * packet.time_base) - self.t0
            if start >= t:
                return
            self.pending = None
            if start >= 0:  # audio before the video's first frame is left out
                self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        if self.copy:
            shift = round(self.t0 / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.ost
            self.out.mux(packet)
            return
        try:
            frames = self.ist.codec_context.decode(packet)
        except av.FFmpegError:
            return  # a damaged packet: a gap, as a player would have
        for frame in frames:
            frame.pts = round((frame.time - self.t0) * frame.sample_rate) if frame.time is not \
                None else None
            frame.time_base = Fraction(1, frame.sample_rate)
            self.out.mux(self.ost.encode(frame))

    def finish(self, end: float) -> None:
        """Mux the audio up to ``end`` seconds and flush the AAC encoder."""
        self.until(end)
        if self.stopped_at is not None:
            self.notes.append(f"audio stops near {self.stopped_at:.2f} s: the source's audio "
                              "cannot be read further")
        if not self.copy:
            self.out.mux(self.ost.encode(None))

    def close(self) -> None:
        self.container.close()


def _open_video(p: Path) -> _AvVideo | _CvVideo:
    if not p.exists():
        raise InputError(p, _missing_reason(p, "file not found"))
    if p.stat().st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError):
        container = None
    if container is not None:
        if container.streams.video:
            return _AvVideo(p, container)
        container.close()
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)  # the fallback, for what PyAV cannot open
    if not cap.isOpened():
        cap.release()
        raise InputError(p, "cannot open video (corrupt or unsupported format)")
    return _CvVideo(p, cap)


def iter_video_frames(
    path: str | os.PathLike, *, stride: int = 1, max_frames: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb_float_hwc)`` for every ``stride``-th frame.

    Raises:
        InputError: the video cannot be opened or yields no frame at all.
    """
    for idx, _, frame in iter_video_frames_timed(path, stride=stride, max_frames=max_frames):
        yield idx, frame


def iter_video_frames_timed(
    path: str | os.PathLike, *, stride: int = 1, max_frames: int | None = None,
    want: Callable[[int], bool] | None = None,
) -> Iterator[tuple[int, float, np.ndarray | None]]:
    """Yield ``(frame_index, seconds, rgb_float_hwc)`` for every ``stride``-th frame; seconds
    is the frame's presentation time from the start of the video. Frames are counted as they
    decode (a packet that fails to decode gives no frame); where ``want(frame_index)`` is
    false the frame is decoded but not converted, and its image is None.

    Raises:
        InputError: the video cannot be opened or yields no frame at all.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    p = Path(path)
    video = _open_video(p)
    try:
        yielded = 0
        for item in video.frames(stride, max_frames, want):
            yield item
            yielded += 1
        if yielded == 0:
            raise InputError(p, "video has no readable frames")
    finally:
        video.close()


def timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm`` of a time in seconds (a frame's place in its video)."""
    ms = max(round(seconds * 1000), 0)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


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
    time: float | None = None  # a video frame's presentation time, seconds from the video start

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
                for idx, t, frame in iter_video_frames_timed(
                        p, stride=frame_stride, max_frames=max_frames,
                        want=lambda i, p=p: still_key(p, i) not in skip):
                    if frame is not None:
                        yield SourceImage(p, idx, frame, time=t)
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
