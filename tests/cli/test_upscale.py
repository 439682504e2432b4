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

from facesr import imagemeta, provenance
from facesr.cli import app
from facesr.cli._common import source_tag
from facesr.cli.upscale import command as upscale_cli
from facesr.cli.upscale.upsampled import UPSAMPLED_DB
from facesr.infer.detectors import Face
from facesr.infer.pipeline import NOTICE, choose_mode
from facesr.io import iter_video_frames, read_image_array, video_info, write_image
from facesr.models import RRDBNet, save_rrdb

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
SETTINGS = {"mode", "backend", "device", "precision", "tile", "overlap", "stride", "max_frames",
            "save_frame", "margin", "detector", "detector_weights", "background", "threads",
            "format", "scale", "min_size", "score_threshold", "save_video", "color_lock",
            "ext", "outscale", "suffix", "max_side", "only_center_face", "save_lr", "compare",
            "fuse"}
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


def _records(out: Path, deep: bool = False) -> dict:
    """Records by file name (``deep``: by path, subfolders too)."""
    if deep:
        return {p: json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}
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
    victim = out / "img1.json"
    victim.unlink()  # as if the run had been killed before finishing img1
    r = _run(tmp_path / "in", "--out", out, "--model", model_file)
    assert r.exit_code == 0 and "1 images/frames done, 2 skipped, 0 failed" in r.output
    for p in out.iterdir():
        if not p.name.startswith("img1"):
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
    records = {Path(rec["input"]["path"]).name: (path, rec)
               for path, rec in _records(out, deep=True).items()}
    assert set(records) == {"good.png", "grey.png", "sixteen.png", "alpha.png"}
    assert records["alpha.png"][1]["input"]["notes"] == ["alpha channel ignored"]
    assert records["alpha.png"][0].parent == out / "deeper"  # the folder given: sub/
    for path, rec in records.values():
        w, h = rec["input"]["size"]
        img = read_image_array(path.parent / rec["outputs"][0]["file"])
        assert img.shape == (4 * h, 4 * w, 3)


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
        # SIGINT back to its default: a job started in the background of a script (as CI may
        # be) inherits it ignored, and Python then installs no KeyboardInterrupt handler
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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


# ----------------------------------------------------------------------------- Real-ESRGAN-style
# options (issue 14 items 4-5): short flags, --outscale, --suffix, --ext, mirrored folders,
# --only-center-face, --save-lr, --compare, --max-side and the upsampled-input warning
def _verify(out: Path):
    return runner.invoke(app, ["verify", str(out)])


def test_short_flags_outscale_and_suffix_name_and_size_the_outputs(tmp_path, nearest):
    for h, w in ((37, 29), (9, 170)):
        write_image(tmp_path / "in" / f"f{h}x{w}.png", _noise(h, w))
    for scale, suffix in (("2", "x2"), ("3.5", "x3.5")):
        out = tmp_path / f"out{scale}"
        r = _run("-i", tmp_path / "in", "-o", out, "-n", nearest, "-s", scale, "--mode", "face")
        assert r.exit_code == 0, r.output
        for rec in _records(out).values():
            w, h = rec["input"]["size"]
            (o,) = rec["outputs"]
            want = (round(float(scale) * w), round(float(scale) * h))
            assert o["file"] == f"{Path(rec['input']['path']).stem}_{suffix}.png"
            assert tuple(o["size"]) == want
            assert read_image_array(out / o["file"]).shape == (want[1], want[0], 3)
            assert rec["settings"]["outscale"] == float(scale)
            assert rec["settings"]["suffix"] == suffix
        assert _verify(out).exit_code == 0
    out = tmp_path / "named"
    r = _run(tmp_path / "in" / "f37x29.png", "-o", out, "-n", nearest, "--suffix", "sr")
    assert r.exit_code == 0 and (out / "f37x29_sr.png").is_file(), r.output
    r = _run(tmp_path / "in" / "f37x29.png", "-o", tmp_path / "bare", "-n", nearest,
             "--suffix", "")
    assert r.exit_code == 0 and (tmp_path / "bare" / "f37x29.png").is_file(), r.output
    r = _run(tmp_path / "in", "-o", tmp_path / "x", "-n", nearest, "--suffix", "lr")
    assert r.exit_code == 2 and "--suffix" in r.output


def test_outscale_resamples_frame_crops_and_the_whole_frame(tmp_path, nearest, monkeypatch):
    write_image(tmp_path / "in" / "frame.png", _noise(90, 130))
    monkeypatch.setattr(upscale_cli, "make_detector", lambda *a, **k: _Stub(
        [Face(20, 15, 31, 27, 0.9)]))
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "-o", out, "-n", nearest, "-s", "2.5", "--mode", "frame")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out).values()
    (face,) = rec["faces"]
    x, y, w, h = face["crop_box"]
    sizes = {o["kind"]: tuple(o["size"]) for o in rec["outputs"]}
    assert sizes == {"face": (round(2.5 * w), round(2.5 * h)), "frame": (325, 225)}
    assert face["output"] == "frame_face0_x2.5.png"


def test_ext_auto_keeps_the_input_format_and_webp_carries_its_metadata(tmp_path, nearest):
    src = tmp_path / "in"
    for name in ("a.jpg", "b.webp", "c.bmp"):
        write_image(src / name, _noise(20, 24))
    out = tmp_path / "out"
    r = _run(src, "-o", out, "-n", nearest, "--mode", "face")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".json") == [
        "a_x4.jpg", "b_x4.webp", "c_x4.png"]
    recs = _records(out)
    assert recs["a.json"]["settings"]["format"] == "jpg"
    assert recs["a.json"]["settings"]["ext"] == "auto"
    meta = imagemeta.read_text(out / "b_x4.webp")
    assert meta[provenance.RECORD] == "b.json" and meta[provenance.DISCLAIMER] == NOTICE
    assert read_image_array(out / "b_x4.webp").shape == (80, 96, 3)
    assert _verify(out).exit_code == 0
    data = bytearray((out / "b_x4.webp").read_bytes())
    data[40] ^= 1  # verify sees a changed WebP like any other output
    (out / "b_x4.webp").write_bytes(bytes(data))
    assert _verify(out).exit_code == 1
    out2 = tmp_path / "out2"  # --ext and its deprecated alias --format
    r = _run(src / "a.jpg", "-o", out2, "-n", nearest, "--ext", "webp")
    assert r.exit_code == 0 and (out2 / "a_x4.webp").is_file(), r.output
    r = _run(src / "a.jpg", "-o", out2, "-n", nearest, "--format", "png", "--ext", "jpg")
    assert r.exit_code == 2 and "--format" in r.output
    r = _run(src / "a.jpg", "-o", tmp_path / "out3", "-n", nearest, "--format", "tiff")
    assert r.exit_code == 0 and "--format is deprecated" in r.output, r.output
    assert (tmp_path / "out3" / "a_x4.tif").is_file()


def test_source_folders_are_mirrored_and_only_clashing_names_get_a_hash(tmp_path, nearest):
    src = tmp_path / "in"
    write_image(src / "top.png", _noise(16, 16, 1))
    write_image(src / "cam1" / "day" / "p.png", _noise(16, 16, 2))
    write_image(src / "cam2" / "p.png", _noise(16, 16, 3))
    write_image(src / "cam2" / "q.png", _noise(16, 16, 4))
    write_image(src / "cam2" / "q.jpg", _noise(16, 16, 5))
    out = tmp_path / "out"
    r = _run(src, "-o", out, "-n", nearest, "--mode", "face", "--ext", "png")
    assert r.exit_code == 0, r.output
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    tags = {n: source_tag((src / "cam2" / n).resolve()) for n in ("q.png", "q.jpg")}
    assert names == sorted(["top.json", "top_x4.png", "cam1/day/p.json", "cam1/day/p_x4.png",
                            "cam2/p.json", "cam2/p_x4.png",
                            *(f"cam2/q_{t}{e}" for t in tags.values()
                              for e in (".json", "_x4.png"))])
    text = r.output.replace("\n", "")
    assert f"other inputs would share the name cam2/q; _{tags['q.png']} is 8 hex digits" in text
    assert _verify(out).exit_code == 0
    r = _run(src / "cam2" / "p.png", "-o", tmp_path / "direct", "-n", nearest)
    assert r.exit_code == 0 and (tmp_path / "direct" / "p_x4.png").is_file(), r.output
    r = _run(src, "-o", out, "-n", nearest, "--mode", "face", "--ext", "png")  # resumes
    assert r.exit_code == 0 and "0 images/frames done, 5 skipped" in r.output, r.output


class _Stub:
    """A detector that finds the same boxes in every image."""

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def detect(self, _arr) -> list[Face]:
        return list(self.faces)


def test_only_center_face_keeps_the_face_nearest_the_centre(tmp_path, nearest, monkeypatch):
    write_image(tmp_path / "in" / "group.png", _noise(120, 200))
    faces = [Face(5, 5, 30, 30, 0.9), Face(95, 50, 24, 24, 0.8), Face(160, 80, 30, 30, 0.99)]
    monkeypatch.setattr(upscale_cli, "make_detector", lambda *a, **k: _Stub(faces))
    out = tmp_path / "out"
    args = [tmp_path / "in", "-o", out, "-n", nearest, "--mode", "frame", "--no-save-frame"]
    r = _run(*args, "--only-center-face")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out).values()
    (face,) = rec["faces"]
    assert face["box"] == [95, 50, 24, 24] and len(rec["other_faces"]) == 2
    assert [o["file"] for o in rec["outputs"]] == ["group_face0_x4.png"]
    r = _run(*args)  # the setting changed: refused until --overwrite
    assert r.exit_code == 1 and "only_center_face True -> False" in r.output.replace("\n", "")
    r = _run(*args, "--overwrite")
    assert r.exit_code == 0 and len(_records(out)["group.json"]["faces"]) == 3
    assert sorted(p.name for p in out.glob("*.png")) == [f"group_face{k}_x4.png"
                                                          for k in range(3)]


def test_save_lr_and_compare_are_outputs_of_the_record(tmp_path, nearest, monkeypatch):
    lr = _noise(18, 22, 7)
    write_image(tmp_path / "in" / "crop.png", lr)
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "-o", out, "-n", nearest, "--mode", "face", "-s", "2",
             "--save-lr", "--compare")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out).values()
    kinds = {o["kind"]: o for o in rec["outputs"]}
    assert set(kinds) == {"image", "lr", "compare"}
    assert kinds["lr"]["file"] == "crop_lr.png" and kinds["compare"]["file"] == "crop_compare.png"
    got = read_image_array(out / "crop_lr.png")
    assert np.abs(got - np.round(lr * 255) / 255).max() < 1e-6  # the pixels the model got
    panel = read_image_array(out / "crop_compare.png")
    assert panel.shape[0] == 36 + 22 and panel.shape[1] >= 2 * 44  # label bar over both
    for o in rec["outputs"]:
        assert hashlib.sha256((out / o["file"]).read_bytes()).hexdigest() == o["sha256"]
    assert _verify(out).exit_code == 0
    write_image(tmp_path / "f" / "frame.png", _noise(80, 100))
    monkeypatch.setattr(upscale_cli, "make_detector", lambda *a, **k: _Stub(
        [Face(30, 20, 20, 20, 0.9)]))
    out2 = tmp_path / "out2"
    r = _run(tmp_path / "f", "-o", out2, "-n", nearest, "--mode", "frame", "--save-lr",
             "--compare")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out2).values()
    assert [o["file"] for o in rec["outputs"]] == [
        "frame_face0_x4.png", "frame_face0_lr.png", "frame_face0_compare.png",
        "frame_frame_x4.png"]
    x, y, w, h = rec["faces"][0]["crop_box"]
    assert read_image_array(out2 / "frame_face0_lr.png").shape == (h, w, 3)
    assert _verify(out2).exit_code == 0
    r = _run(tmp_path / "f", "-o", out2, "-n", nearest, "--mode", "frame", "--save-lr")
    assert r.exit_code == 1 and "compare True -> False" in r.output.replace("\n", "")


def test_max_side_shrinks_first_and_is_recorded(tmp_path, nearest):
    write_image(tmp_path / "in" / "big.png", _noise(60, 80))
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "-o", out, "-n", nearest, "--mode", "face", "--max-side", "40")
    assert r.exit_code == 0, r.output
    (rec,) = _records(out).values()
    assert rec["input"]["size"] == [80, 60] and rec["input"]["shrunk_to"] == [40, 30]
    assert rec["settings"]["max_side"] == 40 and "--max-side 40" in rec["input"]["notes"][0]
    assert rec["outputs"][0]["size"] == [160, 120]
    r = _run(tmp_path / "in", "-o", out, "-n", nearest, "--mode", "face", "--max-side", "40")
    assert r.exit_code == 0 and "1 skipped" in r.output  # same settings: resumed
    r = _run(tmp_path / "in", "-o", out, "-n", nearest, "--mode", "face")
    assert r.exit_code == 1 and "max_side 40 -> default" in r.output.replace("\n", "")


def test_an_upsampled_input_gets_one_warning_line_and_a_sharp_one_none(tmp_path, nearest,
                                                                       astronaut):
    face = astronaut[24:216, 128:320]  # 192 px, sharp
    small = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
    write_image(tmp_path / "in" / "sharp.png", face)
    write_image(tmp_path / "in" / "blown_up.png", cv2.resize(small, (192, 192),
                                                             interpolation=cv2.INTER_CUBIC))
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "-o", out, "-n", nearest, "--mode", "face", "-s", "1")
    assert r.exit_code == 0, r.output
    text = r.output.replace("\n", "")
    assert "sharp.png: looks upsampled" not in text
    assert "blown_up.png: looks upsampled about x4" in text and "--max-side 48" in text
    recs = _records(out)
    assert "looks_upsampled" not in recs["sharp.json"]["input"]
    looks = recs["blown_up.json"]["input"]["looks_upsampled"]
    assert looks["factor"] == 4 and looks["roundtrip_psnr_db"]["2"] >= UPSAMPLED_DB
    out2 = tmp_path / "out2"  # undone by --max-side: no warning
    r = _run(tmp_path / "in" / "blown_up.png", "-o", out2, "-n", nearest, "--mode", "face",
             "--max-side", "48")
    assert r.exit_code == 0 and "looks upsampled" not in r.output, r.output


def test_outscale_and_suffix_changes_need_overwrite_and_older_folders_resume(tmp_path,
                                                                            nearest):
    write_image(tmp_path / "in" / "a.png", _noise(16, 20))
    out = tmp_path / "out"
    args = [tmp_path / "in", "-o", out, "-n", nearest, "--mode", "face"]
    assert _run(*args).exit_code == 0
    assert "0 images/frames done, 1 skipped" in _run(*args).output
    r = _run(*args, "-s", "2")
    text = r.output.replace("\n", "")
    assert r.exit_code == 1 and "outscale 4.0 -> 2.0, suffix x4 -> x2" in text
    r = _run(*args, "-s", "2", "--overwrite")
    assert r.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["a.json", "a_x2.png"]
    # a folder an older facesr made: <stem>_<hash> names, no newer settings in the record
    old = tmp_path / "old"
    assert _run(*args[:1], "-o", old, *args[3:]).exit_code == 0
    rec = json.loads((old / "a.json").read_text())
    legacy = f"a_{source_tag((tmp_path / 'in' / 'a.png').resolve())}"
    (old / "a_x4.png").rename(old / f"{legacy}_x4.png")
    rec["outputs"][0]["file"] = f"{legacy}_x4.png"
    for key in ("outscale", "suffix", "max_side", "only_center_face", "save_lr", "compare",
                "ext"):
        del rec["settings"][key]
    (old / f"{legacy}.json").write_text(json.dumps(rec))
    (old / "a.json").unlink()
    r = _run(*args[:1], "-o", old, *args[3:])
    assert r.exit_code == 0 and "0 images/frames done, 1 skipped" in r.output, r.output
    assert not (old / "a.json").exists()  # kept under its old name
    r = _run(*args[:1], "-o", old, *args[3:], "--overwrite")
    assert r.exit_code == 0 and sorted(p.name for p in old.iterdir()) == ["a.json", "a_x4.png"]


def test_sigterm_stops_like_ctrl_c_with_exit_143(nearest, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    rng = np.random.default_rng(1)
    for i in range(400):
        write_image(src / f"t{i:03d}.png", rng.random((24, 24, 3)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from facesr.cli import main; main()", "upscale", str(src),
           "--out", str(out), "--model", str(nearest), "--mode", "face", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.json"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    text = stderr.decode()
    assert proc.returncode == 143, text
    assert "interrupted (SIGTERM)" in text and "Traceback" not in text
    assert not list(out.glob("*.part")) and not (out / ".facesr.lock").exists()
    assert 3 <= len(list(out.glob("*.json"))) < 400
