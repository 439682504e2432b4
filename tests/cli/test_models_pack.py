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


def test_interpolate_blends_every_weight_and_refuses_other_architectures(tmp_path: Path) -> None:
    a = _model(tmp_path)
    torch.manual_seed(1)
    b = save_rrdb(tmp_path / "b.safetensors", RRDBNet(num_feat=8, num_block=1, num_grow_ch=4))
    sa, sb = load_rrdb(a).state_dict(), load_rrdb(b).state_dict()
    for alpha in (0.0, 0.3, 1.0, 2.0, -0.5):  # beyond [0, 1]: extrapolation
        out = tmp_path / f"i{alpha}.safetensors"
        r = runner.invoke(app, ["models", "interpolate", str(a), str(b), "--alpha", str(alpha),
                                "--out", str(out), "--dtype", "fp32"])
        assert r.exit_code == 0, r.output
        g, info = load(out)
        for k, v in g.state_dict().items():
            assert torch.allclose(v, alpha * sa[k] + (1 - alpha) * sb[k], atol=1e-6), k
        assert f"{alpha:g} x g.safetensors" in info.source  # names the files it read
        assert f"{1 - alpha:g} x b.safetensors" in info.source
    other = save_rrdb(tmp_path / "c.safetensors", RRDBNet(num_feat=8, num_block=2, num_grow_ch=4))
    r = runner.invoke(app, ["models", "interpolate", str(a), str(other), "--alpha", "0.5",
                            "--out", str(tmp_path / "x.safetensors")])
    assert r.exit_code == 1 and "different architectures" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.safetensors").exists()
    r = runner.invoke(app, ["models", "interpolate", str(a), str(b), "--alpha", "2.5",
                            "--out", str(tmp_path / "y.safetensors")])
    assert r.exit_code == 2 and not (tmp_path / "y.safetensors").exists()


def test_interpolate_alpha_2_takes_the_other_end_back_out_of_a_mix(tmp_path: Path) -> None:
    a = _model(tmp_path)
    torch.manual_seed(2)
    c = save_rrdb(tmp_path / "c.safetensors", RRDBNet(num_feat=8, num_block=1, num_grow_ch=4))
    mix, back = tmp_path / "mix.safetensors", tmp_path / "back.safetensors"
    for args in ([str(a), str(c), "--alpha", "0.5", "--out", str(mix)],
                 [str(mix), str(a), "--alpha", "2", "--out", str(back)]):
        r = runner.invoke(app, ["models", "interpolate", *args, "--dtype", "fp32"])
        assert r.exit_code == 0, r.output
    sc = load_rrdb(c).state_dict()
    for k, v in load_rrdb(back).state_dict().items():
        assert torch.allclose(v, sc[k], atol=1e-5), k
