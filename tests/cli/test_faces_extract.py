"""``facesr faces extract``: crops, manifest, resume, bad inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.infer.faces import crop
from facesr.io import iter_video_frames, read_image_array, read_jsonl, write_image

GIF = "data/video/intel_head-pose-face-detection-male.gif"  # 480x270, one face ~70 px
PHOTO = "data/frames/vqfr_example.jpg"  # 800x450, three faces
FIELDS = {"source", "frame", "box", "score", "crop", "crop_box", "crop_size", "detector"}
runner = CliRunner()


@pytest.fixture()
def inputs(shared: Path, tmp_path: Path) -> dict[str, Path]:
    """Two folders holding a face photo under the same name, plus a real clip by path."""
    photo = read_image_array(shared / PHOTO)
    small = cv2.resize(photo, (400, 225), interpolation=cv2.INTER_AREA)
    a, b = tmp_path / "in" / "a", tmp_path / "in" / "b"
    write_image(a / "face.png", small)
    write_image(b / "face.png", small[:, ::-1].copy())
    return {"root": tmp_path / "in", "a": a, "b": b / "face.png", "gif": shared / GIF}


def _run(*args: object):
    return runner.invoke(app, ["faces", "extract", *map(str, args)])


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _frame(source: str, frame: int | None) -> np.ndarray:
    if frame is None:
        return read_image_array(source)
    return next(f for i, f in iter_video_frames(source) if i == frame)


def test_crops_equal_the_source_regions_with_one_record_each(inputs, tmp_path):
    before = _digest(inputs["root"])
    out = tmp_path / "out"
    res = _run(inputs["a"], inputs["b"], inputs["gif"], "--out", out, "--stride", "5",
               "--max-frames", "2", "--margin", "0.3")
    assert res.exit_code == 0, res.output
    records = read_jsonl(out / "manifest.jsonl")
    crops = sorted(p.name for p in out.glob("*.png"))
    assert sorted(r["crop"] for r in records) == crops  # one record per crop, no extras
    assert all(r.keys() >= FIELDS for r in records)
    by_source = {r["source"] for r in records}
    assert by_source == {str((inputs["a"] / "face.png").resolve()), str(inputs["b"].resolve()),
                         str(inputs["gif"].resolve())}
    # two sources with the same stem: 3 faces each, under different names
    assert sum(r["source"].endswith("face.png") for r in records) == 6
    assert {r["frame"] for r in records if r["source"].endswith(".gif")} == {0, 5}
    for r in records:
        img = read_image_array(out / r["crop"])
        x, y, w, h = r["crop_box"]
        assert r["crop_size"] == [w, h] == [img.shape[1], img.shape[0]]
        bx, by, bw, bh = r["box"]  # the crop holds the face box (clipped to the frame)
        fw, fh = r["image_size"]
        assert x <= max(bx, 0) and y <= max(by, 0)
        assert x + w >= min(bx + bw, fw) and y + h >= min(by + bh, fh)
        expected = crop(_frame(r["source"], r["frame"]), tuple(r["crop_box"]))
        np.testing.assert_array_equal(img, expected)
    assert _digest(inputs["root"]) == before  # inputs untouched


def test_a_rerun_skips_finished_sources_without_duplicates(inputs):
    out = inputs["root"] / "a" / "crops"  # inside an input folder: must not become input
    assert _run(inputs["a"], "--out", out).exit_code == 0
    first, files = read_jsonl(out / "manifest.jsonl"), _digest(out)
    res = _run(inputs["a"], "--out", out)
    assert res.exit_code == 0, res.output
    assert "1 skipped" in res.output
    assert read_jsonl(out / "manifest.jsonl") == first
    assert _digest(out) == files
    assert not any("crops" in r["source"] for r in first)


def test_an_interrupted_run_resumes_without_duplicates(inputs, tmp_path):
    out = tmp_path / "out"
    args = (inputs["b"], inputs["gif"], "--out", out, "--stride", "5", "--max-frames", "2")
    assert _run(*args).exit_code == 0
    full = read_jsonl(out / "manifest.jsonl")
    # simulate a kill: the gif is not finished, its last record is torn and its crop missing
    (out / "sources.jsonl").write_text(
        "".join(line + "\n" for line in (out / "sources.jsonl").read_text().splitlines()
                if "gif" not in line))
    text = (out / "manifest.jsonl").read_text()
    (out / "manifest.jsonl").write_text(text[: len(text) - 40])
    (out / full[-1]["crop"]).unlink()
    res = _run(*args)
    assert res.exit_code == 0, res.output
    again = read_jsonl(out / "manifest.jsonl")
    assert sorted(r["crop"] for r in again) == sorted(r["crop"] for r in full)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(r["crop"] for r in full)


def test_bad_files_get_one_line_each_and_the_rest_is_processed(inputs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (bad / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 50)
    out = tmp_path / "out"
    res = _run(bad / "corrupt.png", inputs["b"], bad / "broken.mp4", tmp_path / "missing.jpg",
               "--out", out)
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error")]
    for name in ("corrupt.png", "broken.mp4", "missing.jpg"):
        assert sum(name in line for line in errors) == 1, res.stderr
    assert len(errors) == 3
    records = read_jsonl(out / "manifest.jsonl")
    assert len(records) == 3 and all(r["source"] == str(inputs["b"].resolve()) for r in records)


def test_missing_yunet_weights_give_a_clear_error(inputs, tmp_path):
    res = _run(inputs["b"], "--out", tmp_path / "o", "--detector", "yunet")
    assert res.exit_code == 2
    assert "yunet_s_640_640.onnx" in res.output
    res = _run(inputs["b"], "--out", tmp_path / "o", "--detector", "yunet",
               "--detector-weights", tmp_path / "absent.onnx")
    assert res.exit_code == 2
    assert "absent.onnx" in res.output
    assert not (tmp_path / "o").exists()


def test_yunet_from_a_weights_path(inputs, shared, tmp_path):
    res = _run(inputs["b"], "--out", tmp_path / "o", "--detector", "yunet",
               "--detector-weights", shared / "weights/yunet/yunet_s_640_640.onnx")
    assert res.exit_code == 0, res.output
    records = read_jsonl(tmp_path / "o" / "manifest.jsonl")
    assert len(records) == 3 and {r["detector"] for r in records} == {"yunet"}


def test_other_settings_are_refused_and_overwrite_starts_again(inputs, tmp_path):
    out = tmp_path / "out"
    assert _run(inputs["b"], "--out", out, "--margin", "0.2").exit_code == 0
    old = {r["crop"]: r["crop_size"] for r in read_jsonl(out / "manifest.jsonl")}
    res = _run(inputs["b"], "--out", out, "--margin", "0.6")
    assert res.exit_code == 2 and "margin" in res.output
    res = _run(inputs["b"], "--out", out, "--margin", "0.6", "--overwrite")
    assert res.exit_code == 0, res.output
    new = {r["crop"]: r["crop_size"] for r in read_jsonl(out / "manifest.jsonl")}
    assert new.keys() == old.keys()
    assert all(new[k][0] > old[k][0] for k in new)  # bigger margin, bigger crops


def test_limit_uses_only_the_first_sources_and_says_so(inputs, tmp_path):
    out = tmp_path / "out"
    res = _run(inputs["a"], inputs["b"], "--out", out, "--limit", "1", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert {r["source"] for r in read_jsonl(out / "manifest.jsonl")} == {
        str((inputs["a"] / "face.png").resolve())}
    assert "used 1 of 2 files (--limit)" in " ".join(res.output.split())
