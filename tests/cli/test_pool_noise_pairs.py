"""`facesr pool noise` and `facesr pairs` end to end on small synthetic files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facesr.cli import app
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.io import read_jsonl

runner = CliRunner()


def _noisy_flat(path: Path, sigma: float = 5.0) -> None:
    """A flat image whose noise is the same in every 8x8 window (checkerboard), so eq. 5 holds."""
    checker = ((np.indices((96, 128)).sum(0) % 2) * 2 - 1)[..., None]
    cv2.imwrite(str(path), np.clip(120 + sigma * checker, 0, 255).astype(np.uint8).repeat(3, 2))


def test_pool_noise_writes_zero_mean_patches_and_reports_bad_files(tmp_path: Path) -> None:
    _noisy_flat(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    out = tmp_path / "noise.safetensors"
    r = runner.invoke(app, ["pool", "noise", str(tmp_path / "a.png"), str(tmp_path / "bad.png"),
                            "--out", str(out)])
    assert r.exit_code == 1, r.output  # one bad file: non-zero, but the pool is written
    assert "bad.png" in r.output and "cannot decode" in r.output
    pool = NoisePool.load(out)
    assert len(pool) > 0 and pool.patches.shape[1:] == (3, 32, 32)
    assert pool.patches.mean(dim=(2, 3)).abs().max() < 1e-6
    assert float(pool.patches.std()) * 255 == pytest.approx(5.0, rel=0.02)
    assert pool.sources[0]["source"].endswith("a.png") and pool.settings["gamma"] == 0.25
    r = runner.invoke(app, ["pool", "noise", str(tmp_path / "a.png"), "--out", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.output


def test_pool_noise_shows_statistics_warns_on_a_small_pool_and_says_what_to_try(
        tmp_path: Path) -> None:
    _noisy_flat(tmp_path / "a.png")
    out = tmp_path / "noise.safetensors"
    r = runner.invoke(app, ["pool", "noise", str(tmp_path / "a.png"), "--out", str(out),
                            "--max-per-source", "5"])
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "R/G/B std 5.00/5.00/5.00" in text, r.output
    assert "warning: only" in text and "fewer than 16" in text
    rng = np.random.default_rng(0)  # pure texture: nothing is smooth
    cv2.imwrite(str(tmp_path / "busy.png"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    r = runner.invoke(app, ["pool", "noise", str(tmp_path / "busy.png"), "--out",
                            str(tmp_path / "none.safetensors"), "--phi", "1e9"])
    text = " ".join(r.output.split())
    assert r.exit_code == 1 and "--gamma 0.5" in text and "--phi 1000000000" in text, r.output


def test_pool_noise_limit_uses_only_the_first_stills(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        _noisy_flat(src / f"{name}.png")
    out = tmp_path / "noise.safetensors"
    r = runner.invoke(app, ["pool", "noise", str(src), "--out", str(out), "--limit", "2",
                            "--threads", "1"])
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "used the first 2 of 3 stills (--limit)" in text, r.output
    pool = NoisePool.load(out)
    assert [Path(s["source"]).name for s in pool.sources] == ["a.png", "b.png"]
    assert set(pool.source_index.tolist()) == {0, 1} and pool.settings["limit"] == 2
    r = runner.invoke(app, ["pool", "noise", str(src), "--out", str(out), "--overwrite",
                            "--limit", "5"])
    assert r.exit_code == 0 and "--limit" not in r.output  # did not cut anything
    assert len(NoisePool.load(out).sources) == 3


def _setup_pairs(tmp_path: Path) -> tuple[Path, Path, Path]:
    hq = tmp_path / "hq"
    hq.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = cv2.GaussianBlur(rng.integers(0, 256, (128, 96, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(hq / f"face{i}.png"), img)
    kp = tmp_path / "k.safetensors"
    KernelPool(torch.stack([gaussian_kernel(25, 1.5), gaussian_kernel(25, 2.5, 1.0, 0.5)]),
               [{"source": "s0"}, {"source": "s1"}]).save(kp)
    npath = tmp_path / "n.safetensors"
    patches = torch.randn(5, 3, 32, 32) * 0.02
    NoisePool(patches - patches.mean((2, 3), keepdim=True), torch.zeros(5, dtype=torch.long),
              [{"source": "n"}]).save(npath)
    return hq, kp, npath


def _pairs(hq: Path, kp: Path, npath: Path, out: Path, seed: int = 5, *extra: str):
    return runner.invoke(app, ["pairs", str(hq), "--kernels", str(kp), "--noise", str(npath),
                               "--out", str(out), "--seed", str(seed), *extra])


def test_pairs_are_reproducible_and_logged(tmp_path: Path) -> None:
    hq, kp, npath = _setup_pairs(tmp_path)
    r = _pairs(hq, kp, npath, tmp_path / "a")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "a" / "lr").iterdir())
    # 128x96 at 1 and 0.75; at 0.5 (64x48) it is under the 64 px minimum and skipped
    assert names[:2] == ["hq_face0_s075.png", "hq_face0_s100.png"]
    for n in names:
        lr = cv2.imread(str(tmp_path / "a" / "lr" / n))
        hr = cv2.imread(str(tmp_path / "a" / "hr" / n))
        assert hr.shape[0] == 4 * lr.shape[0] and hr.shape[1] == 4 * lr.shape[1]
    recs = read_jsonl(tmp_path / "a" / "manifest.jsonl")
    assert sorted(r["name"] + ".png" for r in recs) == names
    assert all(r["degradation"]["kernel"] in (0, 1) for r in recs)
    assert all(r["kernel_source"]["source"] in ("s0", "s1") for r in recs)
    # same seed -> byte-identical pairs; another seed -> different ones
    assert _pairs(hq, kp, npath, tmp_path / "b").exit_code == 0
    assert _pairs(hq, kp, npath, tmp_path / "c", 6).exit_code == 0
    for n in names:
        a = (tmp_path / "a" / "lr" / n).read_bytes()
        assert a == (tmp_path / "b" / "lr" / n).read_bytes()
    assert any((tmp_path / "a" / "lr" / n).read_bytes() != (tmp_path / "c" / "lr" / n).read_bytes()
               for n in names)


def test_pairs_resume_and_bad_files(tmp_path: Path) -> None:
    hq, kp, npath = _setup_pairs(tmp_path)
    (hq / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "p"
    r = _pairs(hq, kp, npath, out)
    assert r.exit_code == 1 and "broken.jpg" in r.output
    first = read_jsonl(out / "manifest.jsonl")
    r = _pairs(hq, kp, npath, out)
    assert "3 skipped" in r.output
    assert read_jsonl(out / "manifest.jsonl") == first  # nothing redone, nothing duplicated
    # a killed run: drop the last pair and its record; the rerun makes exactly the same pair
    lost = first[-1]["name"]
    lr_bytes = (out / "lr" / f"{lost}.png").read_bytes()
    (out / "lr" / f"{lost}.png").unlink()
    lines = (out / "manifest.jsonl").read_text().splitlines()[:-1]
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    _pairs(hq, kp, npath, out)
    assert (out / "lr" / f"{lost}.png").read_bytes() == lr_bytes
    # other settings into the same folder are refused
    r = _pairs(hq, kp, npath, out, 9)
    assert r.exit_code == 2 and "other settings" in r.output
    assert json.loads((out / "run.json").read_text())["seed"] == 5


def test_pairs_needs_its_pools(tmp_path: Path) -> None:
    hq, kp, _ = _setup_pairs(tmp_path)
    r = runner.invoke(app, ["pairs", str(hq), "--kernels", str(kp), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--noise" in r.output
    r = runner.invoke(app, ["pairs", str(hq), "--out", str(tmp_path / "y"), "--preset", "bicubic"])
    assert r.exit_code == 0, r.output
