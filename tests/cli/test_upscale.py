"""``facesr upscale``: sizes, records, resume, overwrite, bad inputs, video, auto mode."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facesr.cli import app
from facesr.infer.detectors import Face
from facesr.infer.pipeline import NOTICE, choose_mode
from facesr.io import iter_video_frames, read_image_array, video_info, write_image
from facesr.models import RRDBNet, save_rrdb

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
SETTINGS = {"mode", "backend", "device", "precision", "tile", "overlap", "stride", "max_frames",
            "save_frame", "margin", "detector", "detector_weights", "background", "threads",
            "format", "scale", "min_size", "score_threshold", "save_video", "color_lock"}
runner = CliRunner()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_rrdb(tmp_path_factory.mktemp("model") / "tiny.safetensors", RRDBNet(**TINY))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    return read_image_array(str(path))  # 512x512, one face about 90 px wide


def _run(*args: object):
    return runner.invoke(app, ["upscale", *map(str, args)])


def _records(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_face_mode_outputs_exactly_4x_for_odd_sizes_with_a_complete_record(tmp_path,
                                                                           model_file):
    for h, w in ((37, 29), (51, 45), (9, 170)):
        write_image(tmp_path / "in" / f"f{h}x{w}.png", _noise(h, w))
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "--out", out, "--model", model_file, "--mode", "face",
             "--tile", "40")
    assert r.exit_code == 0, r.output
    records = _records(out)
    assert len(records) == 3
    for rec in records.values():
        src = Path(rec["input"]["path"])
        w, h = rec["input"]["size"]
        assert rec["input"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert rec["model"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
        assert rec["model"]["arch"]["num_block"] == 1 and rec["notice"] == NOTICE
        assert set(rec["settings"]) == SETTINGS and rec["settings"]["tile"] == 40
        assert rec["mode"] == "face" and rec["mode_reason"] == "--mode face"
        assert rec["faces"] == [] and {"sr", "write", "read", "total"} <= set(rec["timings_ms"])
        (output,) = rec["outputs"]
        img = read_image_array(out / output["file"])
        assert img.shape == (4 * h, 4 * w, 3) and output["size"] == [4 * w, 4 * h]
        assert f"{src}: face mode (--mode face)" in r.output.replace("\n", "")
    assert "not evidence" in r.output


def test_frame_mode_writes_4x_face_crops_frame_and_boxes(tmp_path, model_file, astronaut):
    frame = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    write_image(tmp_path / "in" / "photo.png", frame)
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "--out", out, "--model", model_file)  # auto: frame mode
    assert r.exit_code == 0, r.output
    (rec,) = _records(out).values()
    assert rec["mode"] == "frame" and rec["mode_reason"] == "1 face(s) detected"
    (face,) = rec["faces"]
    assert 0.9 <= face["score"] <= 1 and len(face["box"]) == 4 and len(face["landmarks"]) == 5
    x, y, w, h = face["crop_box"]
    crop = read_image_array(out / face["output"])
    assert crop.shape == (4 * h, 4 * w, 3)
    assert read_image_array(out / rec["outputs"][-1]["file"]).shape == (800, 800, 3)
    assert {"detect", "sr", "paste"} <= set(rec["timings_ms"])
    out2 = tmp_path / "out2"
    r = _run(tmp_path / "in", "--out", out2, "--model", model_file, "--mode", "frame",
             "--no-save-frame")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out2).values()
    assert [o["kind"] for o in rec["outputs"]] == ["face"] and len(list(out2.glob("*.png"))) == 1
    out3 = tmp_path / "out3"  # the face is ~100 px wide: a larger --min-size drops it
    r = _run(tmp_path / "in", "--out", out3, "--model", model_file, "--mode", "frame",
             "--min-size", "190")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out3).values()
    assert rec["faces"] == [] and rec["settings"]["min_size"] == 190


def test_resume_skips_done_stills_and_overwrite_redoes_them(tmp_path, model_file):
    for k in range(3):
        write_image(tmp_path / "in" / f"img{k}.png", _noise(20, 24, k))
    out = tmp_path / "out"
    assert _run(tmp_path / "in", "--out", out, "--model", model_file).exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    victim = sorted(out.glob("img1_*.json"))[0]
    victim.unlink()  # as if the run had been killed before finishing img1
    r = _run(tmp_path / "in", "--out", out, "--model", model_file)
    assert r.exit_code == 0 and "1 images/frames done, 2 skipped, 0 failed" in r.output
    for p in out.iterdir():
        if not p.name.startswith("img1_"):
            assert p.stat().st_mtime_ns == stamps[p.name], p.name  # nothing rewritten
    assert victim.exists()
    r = _run(tmp_path / "in", "--out", out, "--model", model_file, "--overwrite")
    assert r.exit_code == 0 and "3 images/frames done, 0 skipped" in r.output
    assert all(p.stat().st_mtime_ns != stamps[p.name] for p in out.glob("img0_*"))


def test_other_model_in_the_same_out_needs_overwrite(tmp_path, model_file):
    write_image(tmp_path / "in" / "a.png", _noise(16, 16))
    out = tmp_path / "out"
    assert _run(tmp_path / "in", "--out", out, "--model", model_file).exit_code == 0
    other = save_rrdb(tmp_path / "other.safetensors", RRDBNet(**TINY))
    r = _run(tmp_path / "in", "--out", out, "--model", other)
    assert r.exit_code == 1
    assert "made with another model or settings; pass --overwrite" in r.output.replace("\n", "")
    assert _run(tmp_path / "in", "--out", out, "--model", other, "--overwrite").exit_code == 0
    (rec,) = _records(out).values()
    assert rec["model"]["name"] == "other.safetensors"


def test_each_bad_input_gets_one_clear_line_and_the_batch_goes_on(tmp_path, model_file):
    src = tmp_path / "in"
    write_image(src / "good.png", _noise(24, 20))
    png = (src / "good.png").read_bytes()
    (src / "corrupt.png").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 500,
                                                                              np.uint8)))
    (src / "empty.png").write_bytes(b"")
    (src / "truncated.png").write_bytes(png[: len(png) // 3])
    (src / "notes.txt").write_text("not an image")
    (src / "text.jpg").write_text("not an image either")
    (src / "tiny.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1])
    deep = src / "sub" / "deeper"
    deep.mkdir(parents=True)
    cv2.imwrite(str(deep / "grey.png"), (_noise(21, 23)[..., 0] * 255).astype(np.uint8))
    cv2.imwrite(str(deep / "sixteen.png"), (_noise(19, 17) * 65535).astype(np.uint16))
    rgba = (np.concatenate([_noise(18, 22), _noise(18, 22)[..., :1] * 0.5], -1) * 255)
    cv2.imwrite(str(deep / "alpha.png"), rgba.astype(np.uint8))
    out = tmp_path / "out"
    files = [src / n for n in ("corrupt.png", "empty.png", "truncated.png", "notes.txt",
                               "text.jpg", "tiny.png", "good.png")]
    r = _run(*files, src / "sub", tmp_path / "missing.png", "--out", out, "--model", model_file)
    text = r.output.replace("\n", "")
    assert r.exit_code == 1
    for name, reason in (("corrupt.png", "cannot decode image"), ("empty.png", "file is empty"),
                         ("truncated.png", "cannot decode image"),
                         ("notes.txt", "not an image or video file"),
                         ("text.jpg", "cannot decode image"),
                         ("tiny.png", "image 4x4 px is smaller than the 8 px minimum"),
                         ("missing.png", "no such file or folder")):
        assert f"{name}: {reason}" in text, name
    assert "4 images/frames done, 0 skipped, 7 failed" in text
    records = {Path(rec["input"]["path"]).name: rec for rec in _records(out).values()}
    assert set(records) == {"good.png", "grey.png", "sixteen.png", "alpha.png"}
    assert records["alpha.png"]["input"]["notes"] == ["alpha channel ignored"]
    for rec in records.values():
        w, h = rec["input"]["size"]
        assert read_image_array(out / rec["outputs"][0]["file"]).shape == (4 * h, 4 * w, 3)


def test_video_frames_with_stride_get_their_own_outputs(tmp_path, model_file):
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 30))
    for k in range(5):
        vw.write((_noise(30, 40, k) * 255).astype(np.uint8))
    vw.release()
    out = tmp_path / "out"
    r = _run(path, "--out", out, "--model", model_file, "--stride", "2", "--mode", "face")
    assert r.exit_code == 0, r.output
    records = _records(out)
    assert sorted(rec["input"]["frame"] for rec in records.values()) == [0, 2, 4]
    for name, rec in records.items():
        assert f"_f{rec['input']['frame']:06d}" in name
        assert read_image_array(out / rec["outputs"][0]["file"]).shape == (120, 160, 3)
    r = _run(path, "--out", tmp_path / "auto", "--model", model_file, "--max-frames", "1")
    (rec,) = _records(tmp_path / "auto").values()
    assert rec["mode"] == "frame" and rec["mode_reason"] == "video frame"


def test_save_video_writes_the_x4_frames_in_order_and_resumes(tmp_path, nearest):
    model_file = nearest
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 32))
    for k in range(6):
        vw.write(np.full((32, 40, 3), 30 + 40 * k, np.uint8))  # one grey level per frame
    vw.release()
    out = tmp_path / "out"
    args = [path, "--out", out, "--model", model_file, "--mode", "face", "--stride", "2"]
    r = _run(*args, "--max-frames", "2", "--save-video")
    assert r.exit_code == 0, r.output
    (video,) = out.glob("*_x4.mp4")
    info = video_info(video)  # the source's 10 fps; frames 0 and 2 held until frame 4's time
    assert (info.width, info.height, info.frames) == (160, 128, 4) and info.fps == 10
    r = _run(*args, "--save-video")  # resumed: frames 0 and 2 skipped, 4 added
    assert r.exit_code == 0 and "skipped" in r.output
    recs = _records(out)
    sr = [read_image_array(out / recs[video.name.replace("_x4.mp4", f"_f{k:06d}.json")]
                           ["outputs"][0]["file"]) for k in (0, 2, 4)]
    frames = [f for _, f in iter_video_frames(video)]
    assert len(frames) == 6 and frames[0].shape == sr[0].shape
    for k, frame in enumerate(frames):  # lossy H.264, but each is closest to its own frame
        diffs = [float(np.abs(frame - s).mean()) for s in sr]
        assert int(np.argmin(diffs)) == k // 2, diffs
    assert not list(out.glob(".*"))  # no temporary files left


def test_auto_mode_rules():
    assert choose_mode((160, 120), []) == ("face", "both sides <= 160 px")
    assert choose_mode((300, 200), [])[0] == "face"  # no face found: treat it as one
    assert choose_mode((1280, 720), [])[0] == "frame"  # ... unless it is large
    big = Face(50, 20, 150, 160, 0.99)
    small = Face(10, 10, 40, 40, 0.99)
    assert choose_mode((300, 260), [small, big]) == ("face", "a face covers 31% of the image")
    assert choose_mode((800, 600), [small, small]) == ("frame", "2 face(s) detected")


def test_bad_options_are_refused(tmp_path, model_file):
    r = _run(tmp_path, "--out", tmp_path / "o", "--model", model_file, "--mode", "faces")
    assert r.exit_code == 2 and "--mode" in r.output
    r = _run(tmp_path, "--out", tmp_path / "o", "--model", tmp_path / "nope.safetensors")
    assert r.exit_code == 2 and "no such model file" in r.output
    if not torch.cuda.is_available():
        r = _run(tmp_path, "--out", tmp_path / "o", "--model", model_file, "--device", "cuda")
        assert r.exit_code == 2 and "no usable CUDA GPU" in r.output


def test_ctrl_c_says_what_was_kept_and_redirected_lines_are_not_lost(nearest, tmp_path):
    """stdout to a file: each finished still's line is there as it finishes, and SIGINT ends
    the run with exit 130 and one line saying how to resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    for i in range(400):
        write_image(src / f"c{i:03d}.png", rng.random((24, 24, 3)))
    out, log = tmp_path / "out", tmp_path / "stdout.txt"
    cmd = [sys.executable, "-c", "from facesr.cli import main; main()", "upscale", str(src),
           "--out", str(out), "--model", str(nearest), "--mode", "face", "--threads", "1"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 60
        while log.read_text().count("\n") < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode() and "Traceback" not in stderr.decode()
    lines = [ln for ln in log.read_text().splitlines() if ": face mode" in ln]
    records = sorted(out.glob("*.json"))
    assert 3 <= len(lines) <= len(records) <= len(lines) + 1 < 400  # at most one unannounced
