"""``facesr upscale VIDEO --fuse N``: each still super-resolved from N frames around it, with
the frames used, rejected and their registration scores in its record."""

from __future__ import annotations

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from facesr.cli import app
from facesr.cli.upscale.batch import _stills

runner = CliRunner()


def _still_records(out):
    return {json.loads(p.read_text())["input"]["frame"]: json.loads(p.read_text())
            for p in out.glob("*.json") if not p.name.endswith(".mp4.json")}


def _textured_video(path, tiny_video, frames=12):
    """A moving texture (sub-pixel shifts): frames that register onto one another."""
    import av

    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur((rng.random((80, 96, 3)) * 255).astype(np.float32), (0, 0), 5.0)
    big = np.clip((big - big.mean()) * 6 + 128, 0, 255).astype(np.uint8)  # contrast back
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=6)
        v.width, v.height, v.pix_fmt = 48, 40, "yuv420p"
        v.options = {"crf": "1"}
        for i in range(frames):
            m = np.float32([[1, 0, -8 - 0.4 * i], [0, 1, -8 - 0.3 * i]])
            img = cv2.warpAffine(big, m, (48, 40), flags=cv2.INTER_CUBIC)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def test_windows_hold_the_frames_around_each_still(tiny_video, tmp_path):
    v = tiny_video(tmp_path / "v.mp4", frames=12, audio=None)
    got = {f: [i for i, _ in nbs] for f, _, _, _, nbs in _stills(v, 4, None, None, 3)}
    assert got == {0: [1], 4: [3, 5], 8: [7, 9]}
    got = {f: [i for i, _ in nbs] for f, _, _, _, nbs in _stills(v, 4, None, None, 4)}
    assert got == {0: [1, 2], 4: [3, 5, 6], 8: [7, 9, 10]}
    got = {f: [i for i, _ in nbs] for f, _, _, _, nbs in _stills(v, 4, None, (1, 2), 3)}
    assert got == {4: [3, 5]}  # a Ray range: only its stills
    got = {f: [i for i, _ in nbs] for f, _, _, _, nbs in _stills(v, 5, 2, None, 5)}
    assert got == {0: [1, 2], 5: [3, 4, 6, 7]}  # --max-frames counts stills
    # the still itself is the frame decoded without --fuse
    plain = {f: a for f, _, a, _, _ in _stills(v, 4, None, None, 1)}
    for f, _, a, _, _ in _stills(v, 4, None, None, 3):
        assert np.array_equal(a, plain[f])


def test_fuse_records_frames_used_and_registration(tiny_video, tmp_path, nearest):
    v = _textured_video(tmp_path / "t.mp4", tiny_video)
    out = tmp_path / "out"
    r = runner.invoke(app, ["upscale", str(v), "--out", str(out), "--model", str(nearest),
                            "--mode", "face", "--stride", "4", "--fuse", "3"])
    assert r.exit_code == 0, r.output
    recs = _still_records(out)
    assert sorted(recs) == [0, 4, 8]
    for f, rec in recs.items():
        assert rec["settings"]["fuse"] == 3
        fused = rec["fused"]
        frames = [x["frame"] for x in fused["registration"]]
        assert frames[0] == f and set(frames[1:]) == ({1} if f == 0 else {f - 1, f + 1})
        assert fused["frames_used"][0] == f
        assert set(fused["frames_used"]) | {x["frame"] for x in fused["rejected"]} == set(frames)
        assert len(fused["frames_used"]) > 1  # a smooth pan registers


def test_fuse_changes_the_output_and_is_a_setting_for_resume(tiny_video, tmp_path, nearest):
    v = _textured_video(tmp_path / "t.mp4", tiny_video)
    a, b = tmp_path / "a", tmp_path / "b"
    base = ["--model", str(nearest), "--mode", "face", "--stride", "4"]
    assert runner.invoke(app, ["upscale", str(v), "--out", str(a), *base]).exit_code == 0
    assert runner.invoke(app, ["upscale", str(v), "--out", str(b), *base, "--fuse", "1"]
                         ).exit_code == 0
    ra, rb = _still_records(a), _still_records(b)
    for f in ra:  # --fuse 1 is the single-frame run
        assert ra[f]["outputs"][0]["sha256"] == rb[f]["outputs"][0]["sha256"]
        assert "fused" not in ra[f]
    r = runner.invoke(app, ["upscale", str(v), "--out", str(a), *base, "--fuse", "3"])
    assert r.exit_code == 1 and "fuse 1 -> 3" in r.output  # not mixed into the old folder


def test_images_ignore_fuse(tmp_path, nearest):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((24, 24, 3), 120, np.uint8))
    out = tmp_path / "o"
    r = runner.invoke(app, ["upscale", str(img), "--out", str(out), "--model", str(nearest),
                            "--mode", "face", "--fuse", "5"])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "face.json").read_text())
    assert rec["settings"]["fuse"] == 1 and "fused" not in rec
