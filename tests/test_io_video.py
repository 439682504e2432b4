"""facesr.io's videos through PyAV: frame times, H.264 MP4 writing with the source's audio."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from facesr import io


def _streams(path: Path) -> dict:
    """What an MP4 holds, read with PyAV directly."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        out = {"format": c.format.name, "codec": v.codec_context.name,
               "pix_fmt": v.codec_context.pix_fmt, "frames": v.frames,
               "fps": float(v.average_rate), "duration": float(v.duration * v.time_base),
               "size": (v.codec_context.width, v.codec_context.height), "audio": None}
        if c.streams.audio:
            a = c.streams.audio[0]
            out["audio"] = (a.codec_context.name, float(a.duration * a.time_base))
        return out


def test_frames_come_with_their_times(tmp_path: Path, tiny_video) -> None:
    src = tiny_video(tmp_path / "src.mp4")
    info = io.video_info(src)
    assert (info.frames, info.fps, info.width, info.height) == (12, 6.0, 32, 24)
    assert info.duration == pytest.approx(2.0) and info.audio == "aac"
    frames = list(io.iter_video_frames_timed(src, stride=5))
    assert [i for i, _, _ in frames] == [0, 5, 10]
    assert [t for _, t, _ in frames] == pytest.approx([0, 5 / 6, 10 / 6])
    assert abs(frames[1][2][..., 0].mean() * 255 - 100) < 3  # frame 5 really is the 6th
    items = list(io.iter_sources([src], frame_stride=4, skip={f"{src}#4"}))
    assert [(it.frame, round(it.time, 3)) for it in items] == [(0, 0.0), (8, 1.333)]
    assert io.timecode(3723.4567) == "01:02:03.457" and io.timecode(0) == "00:00:00.000"


def test_gif_frames_have_their_own_delays(tmp_path: Path) -> None:
    imgs = [Image.fromarray(np.full((24, 32, 3), v, np.uint8)) for v in (0, 120, 240)]
    imgs[0].save(tmp_path / "a.gif", save_all=True, append_images=imgs[1:],
                 duration=[100, 300, 100])
    frames = list(io.iter_video_frames_timed(tmp_path / "a.gif"))
    assert [round(t, 2) for _, t, _ in frames] == [0.0, 0.1, 0.4]
    assert [round(float(f.mean()) * 255) for _, _, f in frames] == [0, 120, 240]


@pytest.mark.parametrize(("audio", "fmt", "how"), [("aac", None, "aac copied"),
                                                  ("pcm_s16le", "matroska", "re-encoded")])
def test_video_round_trip_with_audio(tmp_path: Path, tiny_video, audio: str, fmt: str | None,
                                     how: str) -> None:
    """x4 frames of a 12-frame 6 fps clip, every 3rd held: an H.264 MP4 of the source's
    frame count, rate and duration, with its audio (copied, or AAC when MP4 cannot carry it)."""
    src = tiny_video(tmp_path / ("src.mkv" if fmt else "src.mp4"), audio=audio, fmt=fmt)
    sampled = {i: np.repeat(np.repeat(f, 4, 0), 4, 1)
               for i, f in io.iter_video_frames(src, stride=3)}
    held = [sampled[i - i % 3] for i in range(12)]
    notes: list[str] = []
    out = io.write_video(tmp_path / "out" / "x4.mp4", held, 6, audio_from=src, notes=notes)
    got = _streams(out)
    assert got["format"].startswith("mov,mp4") and got["codec"] == "h264"
    assert got["pix_fmt"] == "yuv420p" and got["size"] == (128, 96)
    assert got["frames"] == 12 and got["fps"] == 6.0
    assert got["duration"] == pytest.approx(2.0, abs=1 / 6)
    assert got["audio"][0] == "aac" and got["audio"][1] == pytest.approx(2.0, abs=0.1)
    assert any(how in n for n in notes), notes
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first
    back = [f for _, f in io.iter_video_frames(out)]
    assert len(back) == 12
    for k, frame in enumerate(back):  # lossy, but close to the frame held there
        assert float(np.abs(frame - held[k]).mean()) < 4 / 255, k
    assert sorted(p.name for p in out.parent.iterdir()) == ["x4.mp4"]  # no temporary file


def test_write_video_covers_only_the_frames_given_and_pads_odd_sizes(tmp_path: Path,
                                                                     tiny_video) -> None:
    src = tiny_video(tmp_path / "src.mp4")
    notes: list[str] = []
    frame = np.full((15, 17, 3), 0.5, np.float32)
    out = io.write_video(tmp_path / "odd.mp4", [frame] * 3, 6, audio_from=src, notes=notes)
    got = _streams(out)
    assert got["size"] == (18, 16) and got["frames"] == 3
    assert got["audio"][1] == pytest.approx(0.5, abs=0.1)  # the first half second only
    assert any("padded from 17x15 to 18x16" in n for n in notes), notes
    silent = tiny_video(tmp_path / "silent.mp4", audio=None)
    for source, why in ((silent, "no audio: the source has none"),
                        (tmp_path / "nope.mp4", "audio left out: ")):
        notes = []
        out = io.write_video(tmp_path / "mute.mp4", [frame[:8, :8]], 6, audio_from=source,
                             notes=notes)
        assert _streams(out)["audio"] is None and notes[0].startswith(why), notes
    with pytest.raises(ValueError, match="no frames"):
        io.write_video(tmp_path / "none.mp4", [], 6)
    assert not (tmp_path / "none.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if io.is_partial(p.name)] == []


def test_a_write_error_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError) as e:
        io.write_video(tmp_path / "v.mp4", [np.zeros((8, 8, 3), np.float32)], 5)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_videos_give_one_line(tmp_path: Path, tiny_video) -> None:
    full = tiny_video(tmp_path / "full.mp4").read_bytes()
    cases = {"random.mp4": np.random.default_rng(0).bytes(4096), "head.mp4": full[:200],
             "empty.mp4": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(io.InputError) as e:
            list(io.iter_video_frames(tmp_path / name))
        assert str(e.value).startswith(f"{tmp_path / name}: ") and "\n" not in str(e.value)
    noise = np.random.default_rng(1).random((12, 48, 64, 3), dtype=np.float32)
    ours = io.write_video(tmp_path / "ours.mp4", list(noise), 6).read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(ours[: len(ours) // 2])  # its index comes first: some frames decode
    assert io.video_info(half).frames == 12
    assert 0 < len(list(io.iter_video_frames(half))) < 12
