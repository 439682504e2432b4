"""`facesr demo` writes its side-by-side PNG from the bundled picture."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import read_image_array


def test_demo_writes_side_by_side(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    panel = read_image_array(tmp_path / "demo_side_by_side.png")
    assert panel.shape[0] == 192 + 22 and panel.shape[1] > 3 * 192
    lr = read_image_array(tmp_path / "demo_lr.png")
    assert lr.shape == (48, 48, 3)
    rec = json.loads((tmp_path / "demo_degradation.json").read_text())
    assert rec["jpeg_quality"] == 35 and rec["noise"]["kind"] == "gaussian"
    assert str(tmp_path / "demo_side_by_side.png") in r.output.replace("\n", "")
