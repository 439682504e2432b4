"""``facesr upscale`` when things go wrong: nothing to do, read-only or full output folders,
two runs into one folder, resume after a settings change, stale temporary files, truncated
videos. Every case ends in clear lines, a summary and an exit code, never a traceback."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import write_image

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, ["upscale", *map(str, args)])


def _text(r) -> str:
    return r.output.replace("\n", "")


def _clean_exit(r) -> bool:
    """The command ended itself (typer.Exit or return), no exception reached the user."""
    return r.exception is None or isinstance(r.exception, SystemExit)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _images(folder: Path, n: int, size: int = 24) -> Path:
    for k in range(n):
        write_image(folder / f"img{k}.png", _noise(size, size, k))
    return folder


def _partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".part" in p.name]


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[[str], Path]]:
    """``mount(options) -> folder``: a fresh tmpfs (root only), unmounted after the test."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# ----------------------------------------------------------------------------- nothing to do
def test_nothing_to_do_fails_and_makes_no_out_folder(tmp_path, nearest):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    r = _run(empty, "--out", out, "--model", nearest)
    assert r.exit_code == 2 and _clean_exit(r), r.output
    assert f"nothing to do: no images or videos in {empty}" in _text(r)
    assert "done" not in r.output and not out.exists()

    _run(_images(tmp_path / "in", 1), "--out", out, "--model", nearest)
    assert len(list(out.glob("*.png"))) == 1
    r = _run(out, "--out", out, "--model", nearest)  # its own outputs are never inputs
    assert r.exit_code == 2 and "files inside --out" in _text(r)

    gone = tmp_path / "out-of-a-missing-input"
    r = _run(tmp_path / "missing.png", "--out", gone, "--model", nearest)
    assert r.exit_code == 1 and "missing.png: no such file or folder" in _text(r)
    assert "0 images/frames done, 0 skipped, 1 failed" in _text(r)
    assert not gone.exists()


# ----------------------------------------------------------------------------- write errors
def test_read_only_out_folder_is_one_line_and_the_summary(tmp_path, tmpfs, nearest):
    src = _images(tmp_path / "in", 2)
    if os.geteuid() == 0:
        out = tmpfs("ro,size=1m")
    else:  # permissions bind everyone but root
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(0o555)
    r = _run(src, "--out", out, "--model", nearest)
    if os.geteuid():
        out.chmod(0o755)
    assert r.exit_code == 1 and _clean_exit(r), r.exception
    errors = [line for line in r.output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and f"{out}: cannot use the output folder (" in errors[0], r.output
    assert "0 images/frames done, 0 skipped, 1 failed, 2 not attempted" in _text(r)


def test_a_write_error_stops_the_batch_cleanly_and_a_rerun_resumes(tmp_path, nearest,
                                                                   monkeypatch):
    src = _images(tmp_path / "in", 3)
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:  # the 3rd file written (the 2nd image) meets a full disk
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    r = _run(src, "--out", out, "--model", nearest, "--mode", "face")
    monkeypatch.undo()
    assert r.exit_code == 1 and _clean_exit(r), r.exception
    text = _text(r)
    assert "img1_" in text and "cannot write (No space left on device); stopped" in text
    assert "1 images/frames done, 0 skipped, 1 failed, 1 not attempted" in text
    assert not _partial_files(out) and not (out / ".facesr.lock").exists()
    assert len(list(out.glob("*.png"))) == len(list(out.glob("*.json"))) == 1
    r = _run(src, "--out", out, "--model", nearest, "--mode", "face")
    assert r.exit_code == 0 and "2 images/frames done, 1 skipped, 0 failed" in _text(r)


def test_a_full_disk_stops_cleanly_and_a_rerun_resumes(tmp_path, tmpfs, nearest):
    src = tmp_path / "in"
    write_image(src / "img0.png", _noise(48, 48))
    for k in range(1, 5):  # five equal images: equal output sizes
        shutil.copy(src / "img0.png", src / f"img{k}.png")
    probe = tmp_path / "probe"
    assert _run(src / "img0.png", "--out", probe, "--model", nearest, "--mode", "face"
                ).exit_code == 0
    pages = sum(-(-p.stat().st_size // 4096) for p in probe.iterdir())  # tmpfs: whole pages
    out = tmpfs(f"size={4 * (1 + 2 * pages + pages // 2)}k")  # the lock, 2.5 stills
    r = _run(src, "--out", out, "--model", nearest, "--mode", "face")
    assert r.exit_code == 1 and _clean_exit(r), r.exception
    errors = [line for line in r.output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "img2_" in errors[0], r.output
    assert "cannot write (No space left on device); stopped" in _text(r)
    assert "2 images/frames done, 0 skipped, 1 failed, 2 not attempted" in _text(r)
    assert not _partial_files(out)  # nothing half-written
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(
        p.stem.removesuffix("_x4") for p in out.glob("*.png"))
    subprocess.run(["mount", "-o", "remount,size=8m", str(out)], check=True)
    r = _run(src, "--out", out, "--model", nearest, "--mode", "face")
    assert r.exit_code == 0 and "3 images/frames done, 2 skipped, 0 failed" in _text(r)


# ----------------------------------------------------------------------------- one run per --out
def test_a_run_into_a_folder_another_run_holds_is_refused(tmp_path, nearest):
    src = _images(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".facesr.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("4242\n")
        f.flush()
        r = _run(src, "--out", out, "--model", nearest)
    assert r.exit_code == 1 and _clean_exit(r), r.output
    assert f"{out} is in use by another facesr run (process 4242)" in _text(r)
    assert not list(out.glob("*.json"))
    r = _run(src, "--out", out, "--model", nearest)  # released: the next run goes ahead
    assert r.exit_code == 0 and len(list(out.glob("*.json"))) == 1
    assert not (out / ".facesr.lock").exists()


# ----------------------------------------------------------------------------- resume rules
def test_resume_refuses_records_made_with_other_output_settings(tmp_path, nearest):
    src = _images(tmp_path / "in", 1, size=40)
    out = tmp_path / "out"
    args = [src, "--out", out, "--model", nearest, "--mode", "frame"]
    assert _run(*args).exit_code == 0
    (rec_path,) = out.glob("*.json")
    stamp = rec_path.stat().st_mtime_ns
    r = _run(*args, "--score-threshold", "0.5")
    assert r.exit_code == 1 and _clean_exit(r)
    from facesr.infer.faces import DEFAULT_DETECTOR, make_detector

    default = make_detector(DEFAULT_DETECTOR).score_threshold  # in effect, so recorded
    assert ("made with another model or settings; pass --overwrite or use another --out "
            f"(score_threshold {default} -> 0.5)") in _text(r)
    r = _run(*args, "--min-size", "20", "--tile", "16")
    assert "(min_size 10 -> 20, tile 256 -> 16)" in _text(r)
    assert rec_path.stat().st_mtime_ns == stamp  # nothing redone behind the user's back
    r = _run(*args, "--threads", "1", "--stride", "3")  # speed and frame choice: same outputs
    assert r.exit_code == 0 and "0 images/frames done, 1 skipped" in _text(r)
    r = _run(*args, "--score-threshold", "0.5", "--overwrite")
    assert r.exit_code == 0 and json.loads(rec_path.read_text())["settings"][
        "score_threshold"] == 0.5
    rec = json.loads(rec_path.read_text())  # a setting added in a later version counts too
    rec["settings"]["sharpen"] = 1
    rec_path.write_text(json.dumps(rec))
    r = _run(*args, "--score-threshold", "0.5")
    assert r.exit_code == 1 and "(sharpen 1 -> default)" in _text(r)


# ----------------------------------------------------------------------------- stale .part files
def test_stale_temporary_files_of_a_killed_run_are_removed(tmp_path, nearest):
    src = _images(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    stale = [".img0_x4.png.k3j_9zq0.part", ".img0.json.abcdefgh.part", ".clip_x4.812.part.mp4"]
    kept = [".notes.part", "mine.part", ".x.ABCDEFGH.part"]  # not facesr's temporary names
    for name in stale + kept:
        (out / name).write_bytes(b"half")
    r = _run(src, "--out", out, "--model", nearest)
    assert r.exit_code == 0, r.output
    assert f"removed 3 unfinished temporary file(s) (*.part) of an interrupted run from {out}" \
        in _text(r)
    assert sorted(p.name for p in _partial_files(out)) == sorted(kept)


# ----------------------------------------------------------------------------- truncated videos
def _avi(path: Path, frames: int) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 30))
    for k in range(frames):
        vw.write((_noise(30, 40, k) * 255).astype(np.uint8))
    vw.release()
    return path


def _first_half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def test_a_truncated_video_fails_in_one_line_and_decoders_stay_quiet(tmp_path, nearest,
                                                                     capfd):
    clip = _first_half(_avi(tmp_path / "full.avi", 10), tmp_path / "clip.avi")
    out = tmp_path / "out"
    r = _run(clip, "--out", out, "--model", nearest, "--mode", "face")
    assert r.exit_code == 1 and _clean_exit(r), r.output
    assert f"{clip}: decoded 3 of 10 promised frames; the file looks truncated" in _text(r)
    assert "3 images/frames done, 0 skipped, 1 failed" in _text(r)
    assert len(list(out.glob("*.json"))) == 3  # the frames that were there are kept
    r = _run(clip, "--out", out, "--model", nearest, "--mode", "face", "--stride", "4")
    assert f"{clip}: decoded 1 of 3 promised frames (--stride 4)" in _text(r)
    raw = "".join(capfd.readouterr())  # FFmpeg and OpenCV write to the process's own fds
    assert "overread" not in raw and "mjpeg" not in raw and "WARN" not in raw, raw


def test_the_first_half_of_a_real_mp4_is_reported_as_truncated(tmp_path, shared, nearest,
                                                               capfd):
    clip = _first_half(shared / "data" / "video" / "intel_one_by_one.mp4", tmp_path / "half.mp4")
    r = _run(clip, "--out", tmp_path / "out", "--model", nearest, "--mode", "frame",
             "--no-save-frame", "--stride", "200")  # face crops only: quick
    assert r.exit_code == 1 and _clean_exit(r), r.output
    assert (f"{clip}: decoded 4 of 7 promised frames (--stride 200); the file looks truncated"
            in _text(r))
    assert "4 images/frames done, 0 skipped, 1 failed" in _text(r)
    raw = "".join(capfd.readouterr())
    assert "h264" not in raw and "partial file" not in raw, raw
