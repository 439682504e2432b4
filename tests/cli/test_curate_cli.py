"""``facesr data curate``: the list holds exactly the kept files; bad files do not stop a batch."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import write_image

runner = CliRunner()


def _scene(seed: int) -> np.ndarray:
    """A sharp, clean, colourful 256 px image (anti-aliased rectangles on a gradient)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:1024, 0:1024] / 1024
    img = np.stack([0.3 + 0.4 * xx, 0.5 - 0.2 * yy, 0.4 + 0.3 * xx * yy], -1).astype(np.float32)
    for _ in range(40):
        x0, y0 = rng.integers(0, 1024, 2)
        w, h = rng.integers(50, 256, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0.2, 0.8, 3)
    return cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture()
def hq(tmp_path: Path) -> Path:
    """a/: sharp.png, soft.png; b/: sharp2.png, grey.png, bad.png (not an image), notes.txt."""
    root = tmp_path / "hq"
    write_image(root / "a" / "sharp.png", _scene(0))
    write_image(root / "a" / "soft.png", cv2.GaussianBlur(_scene(1), (0, 0), 3.0))
    write_image(root / "b" / "sharp2.png", _scene(2))
    write_image(root / "b" / "grey.png", np.repeat(_scene(3).mean(2, keepdims=True), 3, 2))
    (root / "b" / "bad.png").write_bytes(b"this is not a PNG")
    (root / "b" / "notes.txt").write_text("not an image\n")
    return root


def _run(*args: object):
    return runner.invoke(app, ["data", "curate", *map(str, args)])


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_list_holds_exactly_the_kept_files_and_a_bad_file_fails_the_batch(hq, tmp_path):
    out, scores = tmp_path / "kept.txt", tmp_path / "scores.csv"
    res = _run(hq, "--out", out, "--scores", scores)
    assert res.exit_code == 1, res.output
    assert _lines(out) == [str((hq / "a" / "sharp.png").absolute()),
                           str((hq / "b" / "sharp2.png").absolute())]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "bad.png" in errors[0] and "cannot decode" in errors[0]
    rows = {Path(r["path"]).name: r for r in csv.DictReader(scores.open(encoding="utf-8"))}
    assert set(rows) == {"sharp.png", "soft.png", "sharp2.png", "grey.png", "bad.png"}
    assert {n: r["reason"] for n, r in rows.items()} == {
        "sharp.png": "ok", "sharp2.png": "ok", "soft.png": "soft", "grey.png": "grey",
        "bad.png": "error"}
    assert [n for n, r in rows.items() if r["keep"] == "1"] == ["sharp.png", "sharp2.png"]
    assert "kept 2 of 5 images" in res.stdout


def test_thresholds_change_the_list(hq, tmp_path):
    out = tmp_path / "kept.txt"
    res = _run(hq / "a", hq / "b" / "grey.png", "--out", out, "--allow-grey",
               "--min-sharpness", "0")
    assert res.exit_code == 0, res.output
    assert [Path(p).name for p in _lines(out)] == ["sharp.png", "soft.png", "grey.png"]
    res = _run(hq / "a", "--out", out, "--min-side", "512")
    assert res.exit_code == 0, res.output
    assert _lines(out) == []


def test_missing_input_is_reported_and_the_rest_is_curated(hq, tmp_path):
    out = tmp_path / "kept.txt"
    res = _run(tmp_path / "nowhere", hq / "a", "--out", out)
    assert res.exit_code == 1
    assert "nowhere" in res.stderr
    assert [Path(p).name for p in _lines(out)] == ["sharp.png"]


def test_no_images_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "kept.txt"
    res = _run(tmp_path / "empty", "--out", out)
    assert res.exit_code == 1
    assert "no images" in res.stderr
    assert not out.exists()


def test_near_duplicates_are_dropped_one_kept_and_reported(hq, tmp_path):
    """Copies of sharp.png: a JPEG (same size; sorts after it) and a smaller PNG (sorts before
    it): sharp.png stays, as the largest and then the first path."""
    img = _scene(0)
    write_image(hq / "c" / "sharp-q90.jpg", img, jpeg_quality=90)
    write_image(hq / "a" / "a-small.png", cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA))
    out, scores = tmp_path / "kept.txt", tmp_path / "scores.csv"
    res = _run(hq, "--out", out, "--scores", scores)
    assert res.exit_code == 1, res.output  # bad.png
    sharp = str((hq / "a" / "sharp.png").absolute())
    assert _lines(out) == [sharp, str((hq / "b" / "sharp2.png").absolute())]
    rows = {Path(r["path"]).name: r for r in csv.DictReader(scores.open(encoding="utf-8"))}
    for name in ("sharp-q90.jpg", "a-small.png"):
        assert (rows[name]["keep"], rows[name]["reason"]) == ("0", "duplicate")
        assert rows[name]["duplicate_of"] == sharp
    assert rows["sharp.png"]["duplicate_of"] == ""
    assert "kept 2 of 7 images (2 near-duplicates dropped, one kept of each of 1 groups)" \
        in " ".join(res.stdout.split())

    res = _run(hq, "--out", out, "--scores", scores, "--keep-duplicates")
    assert [Path(p).name for p in _lines(out)] == ["a-small.png", "sharp.png", "sharp2.png",
                                                   "sharp-q90.jpg"]
    assert "near-duplicates" not in res.stdout


def test_limit_scores_only_the_first_files_in_input_order_and_says_so(tmp_path):
    folder = tmp_path / "six"
    for i in range(6):
        write_image(folder / f"img{i}.png", cv2.resize(_scene(10 + i), (128, 128),
                                                       interpolation=cv2.INTER_AREA))
    out, scores = tmp_path / "kept.txt", tmp_path / "scores.csv"
    res = _run(folder, "--out", out, "--scores", scores, "--limit", "3", "--threads", "1")
    assert res.exit_code == 0, res.output
    scored = [Path(r["path"]).name for r in csv.DictReader(scores.open(encoding="utf-8"))]
    assert scored == ["img0.png", "img1.png", "img2.png"]  # sorted listing, cut
    kept = _lines(out)
    assert len(kept) <= 3 and {Path(p).name for p in kept} <= set(scored)
    assert "used 3 of 6 files (--limit)" in " ".join(res.stdout.split())
    # no cut: no note; the limited list is the full run's list of those files
    full = tmp_path / "full.txt"
    res = _run(folder, "--out", full, "--limit", "6")
    assert res.exit_code == 0 and "--limit" not in res.stdout
    assert [p for p in _lines(full) if Path(p).name in scored] == kept
