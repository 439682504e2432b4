"""``facesr pairs --limit/--threads``: a limited run is the full run's first sources."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import read_jsonl

runner = CliRunner()


def _hq(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(folder / f"face{i}.png"), img)
    return folder


def _pairs(hq: Path, out: Path, *extra: str):
    return runner.invoke(app, ["pairs", str(hq), "--preset", "bicubic", "--factors", "1",
                               "--out", str(out), "--seed", "3", *extra])


def _sources(out: Path) -> list[str]:
    return [Path(r["hq"]).name for r in read_jsonl(out / "manifest.jsonl")]


def test_limit_writes_pairs_of_exactly_the_first_sources_and_says_so(tmp_path):
    hq = _hq(tmp_path / "hq", 3)
    out = tmp_path / "lim"
    r = _pairs(hq, out, "--limit", "2", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert _sources(out) == ["face0.png", "face1.png"]
    assert len(list((out / "lr").glob("*.png"))) == 2
    assert "used 2 of 3 files (--limit)" in " ".join(r.output.split())
    # the same pairs as a full run; a re-run without the limit adds only the rest
    assert _pairs(hq, tmp_path / "full").exit_code == 0
    for p in (out / "lr").glob("*.png"):
        assert p.read_bytes() == (tmp_path / "full" / "lr" / p.name).read_bytes()
    r = _pairs(hq, out)
    assert r.exit_code == 0 and "1 HQ images done, 2 skipped" in r.output
    assert "--limit" not in r.output
    assert _sources(out) == ["face0.png", "face1.png", "face2.png"]
