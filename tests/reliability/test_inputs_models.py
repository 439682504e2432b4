"""Hardening of input and model files: EXIF, umask, link loops, bounded and checked weights."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from safetensors.torch import load_file, save_file
from safetensors.torch import safe_open as st_open

import facesr.io
from facesr.io import InputError, expand_inputs, read_image_array
from facesr.models import RRDBNet, load_rrdb, save_rrdb, zoo
from facesr.models import rrdb as rrdb_module

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


# ----------------------------------------------------------------------------- 1: EXIF
@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_exif_orientations_match_pillow(tmp_path: Path, orientation: int,
                                                  ext: str) -> None:
    rng = np.random.default_rng(orientation)
    img = (rng.random((12, 20, 3)) * 255).astype(np.uint8)  # no symmetry at all
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{ext}"
    Image.fromarray(img).save(path, exif=exif, **({"quality": 98} if ext == ".jpg" else {}))
    with Image.open(path) as im:
        assert im.getexif().get(0x0112) == orientation
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255.0
    got = read_image_array(path, min_side=1)
    assert got.shape == want.shape
    # PNG is exact; JPEG decoders may differ by a level or two, a wrong turn by ~0.3
    assert np.abs(got - want).mean() < (1e-6 if ext == ".png" else 0.02)
    assert facesr.io.image_size(path) == want.shape[:2]


# ----------------------------------------------------------------------------- 13: umask
def _refuse_umask(*_args: object) -> int:
    raise AssertionError("os.umask was called")


def test_importing_io_leaves_the_umask_alone_and_atomic_files_get_the_usual_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a fresh copy of the module (reloading facesr.io would give other modules a second
    # InputError class)
    spec = importlib.util.spec_from_file_location("facesr_io_fresh", facesr.io.__file__)
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "facesr_io_fresh", fresh)
    linux = Path("/proc/self/status").is_file()
    old = os.umask(0o027)
    try:
        with monkeypatch.context() as m:
            m.setattr(os, "umask", _refuse_umask)
            spec.loader.exec_module(fresh)
            if linux:  # elsewhere the umask can only be read by setting it, when writing
                path = fresh.atomic_write_bytes(tmp_path / "a.bin", b"data")
                text = fresh.atomic_write_text(tmp_path / "b.txt", "text")
        if not linux:
            path = fresh.atomic_write_bytes(tmp_path / "a.bin", b"data")
            text = fresh.atomic_write_text(tmp_path / "b.txt", "text")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data" and text.read_text() == "text"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(text.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".*.part"))


# ----------------------------------------------------------------------------- 14: links
def test_a_looping_symlink_says_so_and_names_the_file(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.symlink_to(b)
    b.symlink_to(a)
    for p in (loop, a):
        with pytest.raises(InputError, match="symbolic link loop") as e:
            expand_inputs([p])
        assert str(p) in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(InputError, match="symbolic link loop"):
            read_image_array(p)
    dangling = tmp_path / "gone.png"
    dangling.symlink_to(tmp_path / "missing.png")
    with pytest.raises(InputError, match="broken symbolic link"):
        expand_inputs([dangling])
    with pytest.raises(InputError, match="no such file or folder"):
        expand_inputs([tmp_path / "absent.png"])


# ----------------------------------------------------------------------------- 6, 7, 14: models
@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_rrdb(tmp_path / "tiny.safetensors", RRDBNet(**TINY))


def _rewrite(src: Path, dst: Path, *, meta: dict[str, str] | None = None,
             tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """A copy of a facesr weight file with metadata fields and tensors replaced."""
    with st_open(str(src), framework="pt") as f:
        old_meta = dict(f.metadata())
    save_file({**load_file(str(src)), **(tensors or {})}, str(dst),
              metadata={**old_meta, **(meta or {})})
    return dst


def _no_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail (instead of hanging) if a network is built before the checks."""
    def refuse(**arch: int) -> None:
        raise AssertionError(f"RRDBNet({arch}) was built before the file was checked")

    monkeypatch.setattr(rrdb_module, "RRDBNet", refuse)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("num_block", "10000000", "num_block 10000000 is outside 1..64"),
    ("num_feat", "100000", "num_feat 100000 is outside 1..256"),
    ("num_grow_ch", "0", "num_grow_ch 0 is outside 1..256"),
    ("scale", "3", "scale 3 is not 1, 2 or 4"),
    ("in_ch", "-1", "in_ch -1 is outside 1..4"),
])
def test_architecture_metadata_is_bounded_before_anything_is_built(
        tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str,
        value: str, message: str) -> None:
    bad = _rewrite(tiny_file, tmp_path / "bad.safetensors", meta={field: value})
    _no_building(monkeypatch)
    for load in (load_rrdb, zoo.load):
        with pytest.raises(ValueError, match=message) as e:
            load(bad)
        assert str(bad) in str(e.value)


def test_every_tensor_is_checked_against_the_metadata_by_name(tiny_file: Path,
                                                              tmp_path: Path) -> None:
    wrong = _rewrite(tiny_file, tmp_path / "shape.safetensors",
                     tensors={"conv_last.weight": torch.zeros(3, 9, 3, 3)})
    with pytest.raises(ValueError, match=r"tensor 'conv_last\.weight' has shape \[3, 9, 3, 3\], "
                                         r"expected \[3, 8, 3, 3\]") as e:
        zoo.load(wrong)
    assert str(wrong) in str(e.value)
    # metadata saying two blocks for a file with one: the missing tensor is named
    short = _rewrite(tiny_file, tmp_path / "short.safetensors", meta={"num_block": "2"})
    with pytest.raises(ValueError, match=r"tensor 'body\.1\.rdb1\.conv1\.weight' is missing"):
        zoo.load(short)
    extra = _rewrite(tiny_file, tmp_path / "extra.safetensors",
                     tensors={"body.0.rdb1.conv6.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected tensor 'body\.0\.rdb1\.conv6\.weight'"):
        load_rrdb(extra)


@pytest.mark.parametrize(("value", "message"), [
    ("8.5", "metadata field 'num_feat' is '8.5', not an integer"),
    ("eight", "metadata field 'num_feat' is 'eight', not an integer"),
])
def test_a_non_integer_metadata_field_names_the_file_and_field(
        tiny_file: Path, tmp_path: Path, value: str, message: str) -> None:
    bad = _rewrite(tiny_file, tmp_path / "meta.safetensors", meta={"num_feat": value})
    with pytest.raises(ValueError, match=message) as e:
        zoo.load(bad)
    assert str(e.value).startswith(f"{bad}: ")


def test_pth_state_dicts_are_bounded_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    wide = {"conv_first.weight": torch.zeros(512, 3, 3, 3),
            "body.0.rdb1.conv1.weight": torch.zeros(4, 512, 3, 3),
            "conv_last.weight": torch.zeros(3, 512, 3, 3)}
    torch.save(wide, tmp_path / "wide.pth")
    deep = {f"body.{i}.rdb1.conv1.weight": torch.zeros(4, 8, 1, 1) for i in range(100)}
    deep |= {"conv_first.weight": torch.zeros(8, 3, 3, 3), "conv_last.weight":
             torch.zeros(3, 8, 3, 3)}
    torch.save({"params_ema": deep}, tmp_path / "deep.pth")
    flat = {"conv_first.weight": torch.zeros(8), "body.0.rdb1.conv1.weight": torch.zeros(4),
            "conv_last.weight": torch.zeros(3)}
    torch.save(flat, tmp_path / "flat.pth")
    _no_building(monkeypatch)
    for name, message in (("wide", "num_feat 512 is outside 1..256"),
                          ("deep", "num_block 100 is outside 1..64"),
                          ("flat", "'conv_first.weight' has shape \\[8\\], not a conv weight")):
        with pytest.raises(ValueError, match=message) as e:
            zoo.load(tmp_path / f"{name}.pth")
        assert f"{name}.pth" in str(e.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_all_finite_are_refused_by_name(tmp_path: Path, bad: float
                                                             ) -> None:
    torch.manual_seed(0)
    net = RRDBNet(**TINY)
    with torch.no_grad():
        net.body[0].rdb2.conv3.weight[0, 0, 1, 1] = bad
    path = save_rrdb(tmp_path / "nan.safetensors", net)
    with pytest.raises(ValueError, match=r"tensor 'body\.0\.rdb2\.conv3\.weight' holds NaN "
                                         "or infinite values") as e:
        zoo.load(path)
    assert str(path) in str(e.value)
    torch.save(net.state_dict(), tmp_path / "nan.pth")
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_rrdb(tmp_path / "nan.pth")


def test_good_files_still_load_exactly(tiny_file: Path, tmp_path: Path) -> None:
    net = load_rrdb(tiny_file)
    shapes = rrdb_module.state_dict_shapes(net.arch())
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes
    torch.save({"params_ema": net.state_dict()}, tmp_path / "g.pth")
    back = load_rrdb(tmp_path / "g.pth")
    assert all(torch.equal(back.state_dict()[k], v) for k, v in net.state_dict().items())
    for scale in (1, 2):
        other = RRDBNet(**TINY, scale=scale)
        assert load_rrdb(save_rrdb(tmp_path / f"s{scale}.safetensors", other)).arch() == \
            other.arch()
