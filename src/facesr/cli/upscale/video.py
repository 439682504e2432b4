"""``--save-video``: the x4 MP4 of a video (``_VideoOut``: its frames, collected or found
again on a re-run; ``_assemble_video``: the H.264 file and its record) and which of a video
still's images stay outputs (``_frame_outputs``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from facesr.cli.upscale.layout import _join
from facesr.cli.upscale.still import _remove, _WriteError
from facesr.infer.pipeline import NOTICE
from facesr.io import (
    atomic_write_text,
    read_image_array,
    sha256_file,
    timecode,
    video_info,
    video_rate,
    write_video,
)
from facesr.provenance import record_provenance

# settings that never change the MP4 of --save-video (save_frame, save_lr, compare: which
# images are kept or added; ext: what was asked, ``format`` is what each input got)
_VIDEO_NEUTRAL = frozenset({"threads", "save_frame", "save_video", "save_lr", "compare", "ext"})


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
