"""facesr models pack: fp16 shipping files that load and behave like their source."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from facesr.cli import app
from facesr.models.rrdb import RRDBNet, load_rrdb, save_rrdb
from facesr.models.zoo import load

runner = CliRunner()


def _model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    return save_rrdb(tmp_path / "g.safetensors", g, source="unit test G")


def test_pack_fp16_loads_and_matches(tmp_path: Path) -> None:
    src = _model(tmp_path)
    out = tmp_path / "ship.safetensors"
    r = runner.invoke(app, ["models", "pack", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size < src.stat().st_size * 0.7  # conv weights halved
    a, b = load_rrdb(src).eval(), load(out)[0]
    assert b.arch() == a.arch()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert (a(x) - b(x)).abs().max() < 5e-3
    assert "unit test G" in load(out)[1].source
    before = out.read_bytes()
    r = runner.invoke(app, ["models", "pack", str(src), "--out", str(out)])
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert out.read_bytes() == before


def test_pack_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    r = runner.invoke(app, ["models", "pack", str(bad), "--out", str(tmp_path / "o.safetensors")])
    assert r.exit_code == 1 and "bad.safetensors" in r.output
    assert not (tmp_path / "o.safetensors").exists()
