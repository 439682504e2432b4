"""``facesr faces extract``: track ids in the manifest, kept across a resumed run."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import iter_video_frames, read_jsonl

WALKING = "data/video/intel_face-demographics-walking.gif"  # 35 frames, two faces ~15 px
PHOTO = "data/frames/vqfr_example.jpg"  # three faces
HIDE = (195, 95, 290, 150)  # x0, y0, x1, y1: the left walker's face in frames 9-20
runner = CliRunner()


def _masked_clip(src: Path, dst: Path) -> Path:
    """``src`` as H.264 with the left walker's face blacked out in frames 9-20 (sampled
    frames 9, 12, 15, 18 at stride 3: a gap of 4)."""
    x0, y0, x1, y1 = HIDE
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "12"}
        for i, img in iter_video_frames(src):
            if i == 0:
                stream.width, stream.height = img.shape[1], img.shape[0]
            img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
            if 9 <= i <= 20:
                img[y0:y1, x0:x1] = 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def clip(shared: Path, tmp_path_factory) -> Path:
    return _masked_clip(shared / WALKING, tmp_path_factory.mktemp("clip") / "walk.mp4")


def _run(*args: object):
    return runner.invoke(app, ["faces", "extract", *map(str, args)])


def _tracks(records: list[dict]) -> dict[int | None, list[int | None]]:
    frames = defaultdict(list)
    for r in records:
        frames[r["track"]].append(r["frame"])
    return {k: sorted(v) for k, v in frames.items()}


def test_the_manifest_has_track_ids_and_a_gap_longer_than_max_gap_ends_a_track(
        clip, shared, tmp_path):
    out = tmp_path / "out"
    res = _run(clip, shared / PHOTO, "--out", out, "--stride", "3")
    assert res.exit_code == 0, res.output
    records = read_jsonl(out / "manifest.jsonl")
    photo = [r for r in records if r["frame"] is None]
    assert len(photo) == 3 and all(r["track"] is None for r in photo)  # images: no tracks
    sampled = list(range(0, 35, 3))
    tracks = _tracks([r for r in records if r["frame"] is not None])
    assert tracks == {0: [0, 3, 6], 1: sampled, 2: [21, 24, 27, 30, 33]}
    # with a longer allowed gap the hidden face keeps its id
    res = _run(clip, "--out", tmp_path / "gap4", "--stride", "3", "--max-gap", "4")
    assert res.exit_code == 0, res.output
    tracks = _tracks(read_jsonl(tmp_path / "gap4" / "manifest.jsonl"))
    assert tracks == {0: [0, 3, 6, 21, 24, 27, 30, 33], 1: sampled}
    # another --max-gap in the same --out is refused: the ids would not agree
    res = _run(clip, "--out", out, "--stride", "3", "--max-gap", "4")
    assert res.exit_code == 2 and "max_gap" in res.output


def test_a_resumed_run_gives_the_ids_of_an_uninterrupted_one(clip, tmp_path):
    out = tmp_path / "out"
    args = (clip, "--out", out, "--stride", "3")
    assert _run(*args).exit_code == 0
    full = read_jsonl(out / "manifest.jsonl")
    # simulate a kill at frame 24: later records and crops gone, the last record torn, the
    # clip not finished. Restarting the tracker at frame 24 would number the faces 0 and 1.
    kept = [r for r in full if r["frame"] <= 24]
    for r in full[len(kept) - 1:]:
        (out / r["crop"]).unlink()
    text = "".join(json.dumps(r) + "\n" for r in kept)
    (out / "manifest.jsonl").write_text(text[:-30])
    (out / "sources.jsonl").write_text("")
    res = _run(*args)
    assert res.exit_code == 0, res.output
    again = read_jsonl(out / "manifest.jsonl")
    assert len(again) == len(full)
    assert {r["crop"]: r["track"] for r in again} == {r["crop"]: r["track"] for r in full}
    assert {r["track"] for r in full if r["frame"] >= 24} == {1, 2}
