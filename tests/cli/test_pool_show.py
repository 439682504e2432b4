"""`facesr pool show`: what a pool holds (widths of known kernels, noise statistics), the
picture, and one clean error line for anything that is not a pool."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from facesr.cli import app
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool

runner = CliRunner()


def _show(*args: object):
    return runner.invoke(app, ["pool", "show", *map(str, args)])


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by their first cell (continuation lines of wrapped cells are skipped)."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] and cells[0] not in rows:
            rows[cells[0]] = cells
    return rows


def _kernel_pool(path: Path) -> Path:
    kernels = torch.stack([gaussian_kernel(25, 1.0, 2.5),  # wider along y: 90 deg
                           gaussian_kernel(25, 2.5, 1.0, 0.5),  # 0.5 rad = 28.6 deg
                           gaussian_kernel(25, 1.5)])
    sources = [{"source": "cam.mp4", "frame": 25, "iters": 3000, "seed": 0},
               {"source": "cam.mp4", "frame": 50, "iters": 3000, "seed": 0},
               {"source": "still.png", "frame": None, "iters": 3000, "seed": 0}]
    KernelPool(kernels, sources, 4, {"estimator": "kernelgan", "x2_size": 13}).save(path)
    return path


def _noise_pool(path: Path, levels: tuple[float, ...] = (2.0, 4.0, 6.0)) -> Path:
    """5 patches of 16x16 px; channel c is a +-levels[c] checkerboard (on the 0-255 scale)."""
    checker = torch.from_numpy((np.indices((16, 16)).sum(0) % 2) * 2.0 - 1).float()
    patch = torch.stack([checker * lv / 255 for lv in levels])
    sources = [{"source": "a.png", "frame": None, "found": 3, "kept": 3},
               {"source": "v.mp4", "frame": 0, "found": 2, "kept": 2},
               {"source": "v.mp4", "frame": 10, "found": 0, "kept": 0}]
    NoisePool(patch.expand(5, -1, -1, -1).clone(), torch.tensor([0, 0, 0, 1, 1]), sources,
              {"patch": 16, "mu": 0.1, "gamma": 0.25, "phi": 0.5}).save(path)
    return path


def test_kernel_pool_widths_are_the_gaussians_sigmas_and_the_picture_is_written(
        tmp_path: Path) -> None:
    pool = _kernel_pool(tmp_path / "k.safetensors")
    before = pool.read_bytes()
    pic = tmp_path / "pics" / "k.png"
    r = _show(pool, "--picture", pic)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "kernel pool, 3 kernels of 25x25 px, x4" in text
    assert "estimator kernelgan, x2_size 13, iters 3000, seed 0" in text
    rows = _rows(r.output)
    # columns: #, source, frame, major, minor, angle, iters, seed
    assert rows["0"][1:] == ["cam.mp4", "25", "2.50", "1.00", "90", "3000", "0"]
    assert rows["1"][1:6] == ["cam.mp4", "50", "2.50", "1.00", "29"]
    assert rows["2"][1:5] == ["still.png", "-", "1.50", "1.50"]
    assert rows["major"][1:] == ["1.50", "2.50", "2.50"]  # min, median, max
    assert rows["minor"][1:] == ["1.00", "1.00", "1.50"]
    img = cv2.imread(str(pic))
    assert img.shape == (2 * 102 + 2, 2 * 102 + 2, 3)  # 2x2 grid of 100 px tiles, 2 px gaps
    tile = img[2:102, 2:102]  # the first kernel, x4 nearest: its peak is white, corners black
    assert tile.max() == 255 and tile[:8, :8].max() == 0
    assert pool.read_bytes() == before and "wrote" in text


def test_noise_pool_shows_count_size_channel_statistics_settings_and_sources(
        tmp_path: Path) -> None:
    pool = _noise_pool(tmp_path / "n.safetensors")
    pic = tmp_path / "n.png"
    r = _show(pool, "--picture", pic)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "noise pool, 5 patches of 16x16 px from 2 of 3 stills (2 source files)" in text
    assert "mu 0.1, gamma 0.25, phi 0.5" in text
    rows = _rows(r.output)
    assert [rows[c][2] for c in "RGB"] == ["2.00", "4.00", "6.00"]  # std, 0-255 levels
    assert all(float(rows[c][1]) == 0 for c in "RGB")  # zero-mean patches
    assert rows["a.png"][1:] == ["1", "1", "3"]  # stills, stills with patches, patches
    assert rows["v.mp4"][1:] == ["2", "1", "2"]
    img = cv2.imread(str(pic))  # 3x2 grid of 64 px tiles; grey 128 +- the noise
    assert img.shape == (2 * 66 + 2, 3 * 66 + 2, 3)
    assert sorted(np.unique(img[2:66, 2:66, 0])) == [122, 134]  # B = 128 -+ 6


def make_bad_files(folder: Path) -> list[Path]:
    """Files `pool show` must reject with one line: not pools, or damaged ones."""
    folder.mkdir()
    files = {name: folder / name for name in (
        "notes.txt", "empty.safetensors", "truncated.safetensors", "model.safetensors",
        "bad-json.safetensors", "wrong-shape.safetensors", "future.safetensors")}
    files["notes.txt"].write_text("kernels: 3\n")
    files["empty.safetensors"].write_bytes(b"")
    good = _kernel_pool(folder / "good.safetensors").read_bytes()
    files["truncated.safetensors"].write_bytes(good[:-50])
    save_file({"conv.weight": torch.zeros(3, 3)}, str(files["model.safetensors"]))
    meta = {"format": "facesr.noise_pool", "version": "1", "sources": "[{", "settings": "{}"}
    save_file({"patches": torch.zeros(2, 3, 4, 4), "source_index": torch.zeros(2).long()},
              str(files["bad-json.safetensors"]), metadata=meta)
    meta = {"format": "facesr.kernel_pool", "version": "1", "sources": json.dumps([{}])}
    save_file({"kernels": torch.zeros(5, 5)}, str(files["wrong-shape.safetensors"]),
              metadata=meta)
    meta = {"format": "facesr.kernel_pool", "version": "9"}
    save_file({"kernels": torch.zeros(1, 5, 5)}, str(files["future.safetensors"]),
              metadata=meta)
    return [*files.values(), folder / "missing.safetensors", folder]


def test_anything_but_a_pool_is_one_error_line_naming_it(tmp_path: Path) -> None:
    for bad in make_bad_files(tmp_path / "bad"):
        r = _show(bad, "--picture", tmp_path / "pic.png")
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and str(bad) in lines[0], (bad, r.output)
        assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    assert not (tmp_path / "pic.png").exists()


@pytest.mark.parametrize("picture", ["k.safetensors", "k.txt"])
def test_the_picture_must_be_an_image_file(tmp_path: Path, picture: str) -> None:
    pool = _kernel_pool(tmp_path / "k.safetensors")
    before = pool.read_bytes()
    r = _show(pool, "--picture", tmp_path / picture)
    assert r.exit_code == 2 and "--picture" in r.output
    assert pool.read_bytes() == before
