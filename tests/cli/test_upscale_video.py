"""``facesr upscale`` on videos: --save-video's H.264 MP4 (source frame rate, held frames,
audio, record, no rebuild), --save-frame's defaults for video, frame times in the records."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.cli.upscale import batch as upscale_batch
from facesr.cli.upscale import video as upscale_video
from facesr.io import iter_video_frames, read_image_array, sha256_file, write_video

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, ["upscale", *map(str, args)])


def _mp4(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        return {"codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt,
                "frames": v.frames, "fps": float(v.average_rate),
                "duration": float(v.duration * v.time_base),
                "size": (v.codec_context.width, v.codec_context.height),
                "audio": None if a is None else (a.codec_context.name,
                                                 float(a.duration * a.time_base))}


def _stills(out: Path) -> dict[int, dict]:
    """The still records of a folder by frame (the MP4's record left out)."""
    recs = [json.loads(p.read_text()) for p in out.glob("*_f[0-9]*.json")]
    return {r["input"]["frame"]: r for r in recs}


def test_save_video_round_trip_with_audio_and_no_rebuild(tmp_path, nearest, tiny_video):
    """12 frames at 6 fps with AAC, every 3rd frame upscaled in frame mode: an H.264 MP4 of
    12 frames at 6 fps, 2 s, with the audio; no PNG per frame; a re-run rebuilds nothing."""
    src = tiny_video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    args = [src, "--out", out, "--model", nearest, "--mode", "frame", "--stride", "3",
            "--save-video"]
    r = _run(*args)
    assert r.exit_code == 0, r.output
    (video,) = out.glob("*_x4.mp4")
    got = _mp4(video)
    assert got["codec"] == "h264" and got["pix_fmt"] == "yuv420p" and got["size"] == (128, 96)
    assert got["frames"] == 12 and got["fps"] == 6.0
    assert got["duration"] == pytest.approx(2.0, abs=1 / 6)
    assert got["audio"][0] == "aac" and got["audio"][1] == pytest.approx(2.0, abs=0.1)
    assert f"video -> {video.name} (H.264, 12 frames at 6 fps, 2.00 s; audio: aac copied" \
        in r.output
    assert not list(out.glob("*.png"))  # no face anywhere: no whole-frame PNG at all
    assert not list(out.glob(".*"))  # the frames it kept meanwhile are gone
    stills = _stills(out)
    assert sorted(stills) == [0, 3, 6, 9]
    for k, rec in stills.items():
        assert rec["input"]["time"] == pytest.approx(k / 6)
        assert rec["input"]["fps"] == 6.0 and rec["outputs"] == []
        assert rec["settings"]["save_frame"] is False  # the default with --save-video
    assert stills[9]["input"]["timecode"] == "00:00:01.500"
    vrec = json.loads(video.with_name(video.name + ".json").read_text())
    assert vrec["input"]["sha256"] == sha256_file(src)
    assert vrec["video"]["sha256"] == sha256_file(video)
    assert (vrec["video"]["frames"], vrec["video"]["fps"], vrec["video"]["audio"]) == (
        12, 6.0, "aac")
    assert [s["frame"] for s in vrec["video"]["samples"]] == [0, 3, 6, 9]
    assert [s["first_video_frame"] for s in vrec["video"]["samples"]] == [0, 3, 6, 9]
    assert vrec["settings"]["stride"] == 3 and vrec["settings"]["fps"] is None
    decoded = [f for _, f in iter_video_frames(video)]
    reds = [round(float(f[60:, 60:, 0].mean()) * 255) for f in decoded]
    assert reds == pytest.approx([60 * (k // 3) for k in range(12)], abs=4)  # held frames

    stamp = (video.stat().st_mtime_ns, sha256_file(video))
    r = _run(*args)
    assert r.exit_code == 0 and "4 skipped" in r.output, r.output
    assert f"video {video.name} unchanged (its record matches this run; not rebuilt)" in r.output
    assert (video.stat().st_mtime_ns, sha256_file(video)) == stamp

    r = _run(*args, "--fps", "12")  # another rate: rebuilt, its frames made again
    assert r.exit_code == 0 and "4 skipped" in r.output, r.output
    got = _mp4(video)
    assert (got["frames"], got["fps"]) == (24, 12.0)
    assert got["duration"] == pytest.approx(2.0, abs=1 / 12)
    assert not list(out.glob("*.png")) and not list(out.glob(".*"))


def test_save_video_resumes_with_the_frames_a_failed_run_made(tmp_path, nearest, tiny_video,
                                                              monkeypatch):
    src = tiny_video(tmp_path / "clip.mp4", audio=None)
    out = tmp_path / "out"
    args = [src, "--out", out, "--model", nearest, "--mode", "frame", "--no-save-frame",
            "--stride", "4", "--save-video"]

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(upscale_video, "write_video", disk_full)
    r = _run(*args)
    assert r.exit_code == 1 and "No space left on device" in r.output, r.output
    assert len(list(out.glob(".*_x4.frames/0000*.png"))) == 3  # kept for the re-run
    monkeypatch.undo()

    def no_work(*_a, **_k):
        raise AssertionError("a frame was upscaled again")

    monkeypatch.setattr(upscale_batch, "_process", no_work)
    r = _run(*args)
    assert r.exit_code == 0 and "3 skipped" in r.output, r.output
    assert "no audio" in r.output
    (video,) = out.glob("*_x4.mp4")
    assert _mp4(video)["frames"] == 12 and _mp4(video)["audio"] is None
    assert not list(out.glob(".*"))


def test_adding_save_video_later_keeps_the_done_stills(tmp_path, nearest, tiny_video):
    """--save-video changes --save-frame's default for video; stills done without it are
    skipped, not failed as made with other settings, and their x4 frames are made again."""
    src = tiny_video(tmp_path / "clip.mp4", audio=None)
    out = tmp_path / "out"
    args = [src, "--out", out, "--model", nearest, "--mode", "frame", "--stride", "4"]
    r = _run(*args)
    assert r.exit_code == 0 and not list(out.glob("*.mp4")), r.output
    assert {rec["settings"]["save_frame"] for rec in _stills(out).values()} == {"faces"}
    r = _run(*args, "--save-video")
    assert r.exit_code == 0 and "3 skipped" in r.output, r.output
    (video,) = out.glob("*_x4.mp4")
    assert _mp4(video)["frames"] == 12 and not list(out.glob("*.png"))


def test_save_frame_on_writes_every_frame_and_the_video_uses_them(tmp_path, nearest,
                                                                  tiny_video):
    src = tiny_video(tmp_path / "clip.mp4", frames=4)
    out = tmp_path / "out"
    r = _run(src, "--out", out, "--model", nearest, "--mode", "frame", "--save-frame",
             "--save-video", "--stride", "2")
    assert r.exit_code == 0, r.output
    frames = sorted(out.glob("*_frame_x4.png"))
    assert len(frames) == 2
    (video,) = out.glob("*_x4.mp4")
    decoded = [f for _, f in iter_video_frames(video)]
    assert len(decoded) == 4
    first = read_image_array(frames[0])
    assert float(np.abs(decoded[1] - first).mean()) < 4 / 255  # frame 0 held at 1


def test_video_frames_without_a_face_get_no_whole_frame_png(tmp_path, nearest):
    """Default --save-frame for video: the whole x4 frame only where a face was found; the
    face crops' record carries the frame's index, time, timecode and fps."""
    path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    face = (read_image_array(str(path))[::2, ::2] * 255).astype(np.uint8)  # 256 px, one face
    blank = np.full_like(face, 90)
    src = write_video(tmp_path / "clip.mp4", [face, blank, face], 5)
    out = tmp_path / "out"
    r = _run(src, "--out", out, "--model", nearest, "--mode", "frame")
    assert r.exit_code == 0, r.output
    stills = _stills(out)
    assert sorted(stills) == [0, 1, 2]
    assert [o["kind"] for o in stills[1]["outputs"]] == []
    for k in (0, 2):
        kinds = [o["kind"] for o in stills[k]["outputs"]]
        assert "face" in kinds and "frame" in kinds, kinds
        assert stills[k]["settings"]["save_frame"] == "faces"
    assert stills[2]["input"]["time"] == pytest.approx(0.4)
    assert stills[2]["input"]["timecode"] == "00:00:00.400" and stills[2]["input"]["fps"] == 5
    assert len(list(out.glob("*_frame_x4.png"))) == 2
    assert "#1: frame mode (--mode frame); 0 face(s) found -> no image" in r.output


def test_a_corrupt_video_fails_in_one_line_and_the_batch_goes_on(tmp_path, nearest,
                                                                 tiny_video):
    good = tiny_video(tmp_path / "in" / "good.mp4", frames=4)
    bad = tmp_path / "in" / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    cut = tmp_path / "in" / "cut.avi"
    vw = cv2.VideoWriter(str(cut), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 30))
    for k in range(10):
        vw.write(np.random.default_rng(k).integers(0, 255, (30, 40, 3), np.uint8))
    vw.release()
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    out = tmp_path / "out"
    r = _run(bad, good, cut, "--out", out, "--model", nearest, "--mode", "face",
             "--save-video")
    assert r.exit_code == 1, r.output
    text = r.output.replace("\n", " ")
    assert f"{bad}: cannot open video (corrupt or unsupported format)" in text
    assert f"{cut}: decoded 3 of 10 promised frames; the file looks truncated" in text
    assert "Traceback" not in r.output
    (video,) = out.glob("good_x4.mp4")  # the good one is done, the truncated one has none
    assert _mp4(video)["frames"] == 4
    assert not list(out.glob(".*"))  # nor frames kept for an MP4 that a re-run cannot make


def test_fps_needs_save_video(tmp_path, nearest, tiny_video):
    src = tiny_video(tmp_path / "clip.mp4", frames=2)
    r = _run(src, "--out", tmp_path / "out", "--model", nearest, "--fps", "10")
    assert r.exit_code == 2 and "--save-video" in r.output


def test_verify_checks_the_video_against_its_record(tmp_path, nearest, tiny_video):
    src = tiny_video(tmp_path / "clip.mp4", frames=4, audio=None)
    out = tmp_path / "out"
    assert _run(src, "--out", out, "--model", nearest, "--mode", "face",
                "--save-video").exit_code == 0
    (video,) = out.glob("*.mp4")
    r = runner.invoke(app, ["verify", str(out)])
    assert r.exit_code == 0 and "not checked" not in r.output, r.output
    video.write_bytes(video.read_bytes() + b"x")
    r = runner.invoke(app, ["verify", str(out)])
    assert r.exit_code == 1 and f"{video.name}: changed" in r.output
