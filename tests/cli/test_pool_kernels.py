"""`facesr pool kernels` end to end: valid kernels with their sources, bad files, resume."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facesr.cli import app
from facesr.degrade import kernelgan
from facesr.degrade.kernels import center_of_mass, gaussian_kernel
from facesr.degrade.pools import KernelPool

runner = CliRunner()


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8), (0, 0), 1.0)
        paths.append(folder / f"img{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


def _run(*args: object) -> object:
    return runner.invoke(app, ["pool", "kernels", *map(str, args), "--iters", "3"])


def test_one_centred_kernel_per_source_and_bad_files_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    good = _images(src, 2)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cv2.imwrite(str(src / "tiny.png"), np.zeros((20, 20, 3), np.uint8))
    before = {p: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "k.safetensors"
    r = _run(src, "--out", out)
    assert r.exit_code == 1, r.output  # two bad files: non-zero, but the pool is written
    assert "broken.png" in r.output and "tiny.png" in r.output and "32 px minimum" in r.output
    pool = KernelPool.load(out)
    assert pool.kernels.shape == (2, kernelgan.X4_SIZE, kernelgan.X4_SIZE) and pool.scale == 4
    assert sorted(Path(s["source"]).name for s in pool.sources) == [p.name for p in good]
    for k in pool.kernels:
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-5) and float(k.min()) >= 0
        c = kernelgan.X4_SIZE / 2
        assert center_of_mass(k) == pytest.approx((c, c), abs=0.02)
    assert {p: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched


def test_a_rerun_resumes_and_skips_finished_sources(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _images(tmp_path / "src", 3)
    out = tmp_path / "k.safetensors"
    assert _run(paths[0], "--out", out).exit_code == 0  # as if killed after the first source
    first = KernelPool.load(out).kernels[0].clone()
    calls: list[int] = []
    real = kernelgan.estimate_kernel

    def counting(*a: object, **kw: object) -> kernelgan.KernelEstimate:
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(kernelgan, "estimate_kernel", counting)
    r = _run(*paths, "--out", out)
    assert r.exit_code == 0, r.output
    assert len(calls) == 2 and "skipped 1" in r.output
    pool = KernelPool.load(out)
    assert [Path(s["source"]).name for s in pool.sources] == [p.name for p in paths]
    assert torch.equal(pool.kernels[0], first)  # finished work is kept as it was
    r = _run(*paths, "--out", out)
    assert r.exit_code == 0 and len(calls) == 2 and "nothing new" in r.output


def test_a_file_that_is_not_a_kernel_pool_is_not_overwritten(tmp_path: Path) -> None:
    paths = _images(tmp_path / "src", 1)
    out = tmp_path / "k.safetensors"
    out.write_bytes(b"not a pool")
    r = _run(*paths, "--out", out)
    assert r.exit_code == 2 and "not overwriting" in r.output
    assert out.read_bytes() == b"not a pool"


def test_resuming_with_other_settings_is_refused_unless_allowed(tmp_path: Path) -> None:
    paths = _images(tmp_path / "src", 3)
    out = tmp_path / "k.safetensors"
    assert _run(paths[0], "--out", out).exit_code == 0  # --iters 3, --seed 0
    before = out.read_bytes()
    r = runner.invoke(app, ["pool", "kernels", *map(str, paths), "--out", str(out),
                            "--iters", "4", "--seed", "1"])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0] == (f"{out} was made with --iters 3 and --seed 0, this run asks for "
                        "--iters 4 and --seed 1: use another --out or --allow-mixed")
    assert out.read_bytes() == before  # untouched, byte for byte
    r = runner.invoke(app, ["pool", "kernels", str(paths[1]), "--out", str(out),
                            "--iters", "4", "--allow-mixed"])
    assert r.exit_code == 0 and "warning" in r.output and "--iters 3" in r.output, r.output
    pool = KernelPool.load(out)
    assert [(s["iters"], s["seed"]) for s in pool.sources] == [(3, 0), (4, 0)]
    assert pool.settings["mixed"] == ["iters"] and "iters" not in pool.settings
    assert pool.settings["seed"] == 0 and pool.settings["estimator"] == "kernelgan"
    before = out.read_bytes()
    r = _run(*paths, "--out", out)  # now mixed: any one setting differs from the pool's
    assert r.exit_code == 2 and "--iters 3/4, this run asks for --iters 3" in r.output
    assert out.read_bytes() == before


def test_a_pool_of_the_first_format_resumes_with_its_settings(tmp_path: Path) -> None:
    """Pools written before the settings check keep iters/seed in the records only."""
    paths = _images(tmp_path / "src", 2)
    out = tmp_path / "k.safetensors"
    KernelPool(gaussian_kernel(kernelgan.X4_SIZE, 2.0)[None],
               [{"source": str(paths[0]), "frame": None, "iters": 3, "seed": 0}], 4,
               {"estimator": "kernelgan", "x2_size": kernelgan.X2_SIZE}).save(out)
    r = _run(*paths, "--out", out)
    assert r.exit_code == 0 and "skipped 1" in r.output, r.output
    pool = KernelPool.load(out)
    assert len(pool) == 2 and pool.settings["iters"] == 3 and "mixed" not in pool.settings
    assert _run(*paths, "--out", out, "--seed", "2").exit_code == 2


def test_kernel_prior_thin_is_passed_recorded_and_checked_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _images(tmp_path / "src", 2)
    out = tmp_path / "k.safetensors"
    assert _run(paths[0], "--out", out).exit_code == 0  # the default setting
    before = out.read_bytes()
    r = _run(*paths, "--out", out, "--kernel-prior", "thin")
    assert r.exit_code == 2, r.output
    assert "made with --kernel-prior default, this run asks for --kernel-prior thin" in r.output
    assert out.read_bytes() == before
    seen: list[dict] = []
    real = kernelgan.estimate_kernel

    def spy(*a: object, **kw: object) -> kernelgan.KernelEstimate:
        seen.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(kernelgan, "estimate_kernel", spy)
    thin = tmp_path / "thin.safetensors"
    r = _run(*paths, "--out", thin, "--kernel-prior", "thin")
    assert r.exit_code == 0, r.output
    options = kernelgan.preset("thin")[1]
    assert len(seen) == 2 and all(kw.items() >= options.items() for kw in seen)
    assert all(kw["iters"] == 3 for kw in seen)  # --iters still wins over the preset's
    pool = KernelPool.load(thin)
    assert pool.settings == kernelgan.pool_settings(3, 0, "thin")
    assert all(s["prior"] == "thin" for s in pool.sources)
    r = _run(*paths, "--out", thin, "--kernel-prior", "thin")  # same setting: resumes
    assert r.exit_code == 0 and "nothing new" in r.output, r.output


def test_limit_uses_only_the_first_stills(tmp_path: Path) -> None:
    paths = _images(tmp_path / "src", 3)
    out = tmp_path / "k.safetensors"
    r = _run(tmp_path / "src", "--out", out, "--limit", "2", "--threads", "1")
    assert r.exit_code == 0 and "first 2 of 3 stills (--limit)" in r.output, r.output
    assert [Path(s["source"]).name for s in KernelPool.load(out).sources] == \
        [p.name for p in paths[:2]]
