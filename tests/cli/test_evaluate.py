"""``facesr evaluate synthetic|real`` end to end on tiny synthetic faces."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import facesr.infer.pipeline as pipeline
from facesr.cli import app
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool
from facesr.io import sha256_file
from facesr.models import RRDBNet, save_rrdb

runner = CliRunner()
TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
FAST = ["--metrics", "psnr,ssim,ms_ssim"]  # no weight files needed


def _run(*args: object):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _faces(folder: Path, n: int = 3, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """Smooth random colour images (faces stand-ins) whose details survive x4 down."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        img = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"face{i}.png"), img)
    return folder


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pools") / "kernels.safetensors"
    KernelPool(torch.stack([gaussian_kernel(25, 1.2), gaussian_kernel(25, 2.0, 1.0, 0.4)]),
               [{"source": "s0"}, {"source": "s1"}]).save(path)
    return path


def test_synthetic_writes_tables_images_report_and_run_record(tmp_path, kernels, nearest):
    hq = _faces(tmp_path / "hq", n=3)
    out = tmp_path / "out"
    r = _run("synthetic", "--hq", hq, "--kernels", kernels, "--methods",
             f"bicubic,lanczos,{nearest}", "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    methods = ["bicubic", "lanczos", "nearest"]
    table = _csv(out / "table.csv")
    assert [t["method"] for t in table] == methods and all(t["n"] == "3" for t in table)
    for t in table:
        for k in ("psnr", "ssim"):
            assert float(t[f"{k}_ci_low"]) <= float(t[f"{k}_mean"]) <= float(t[f"{k}_ci_high"])
        assert t["ms_ssim_mean"] == "" and t["ms_ssim_n"] == "0"  # 56 px: too small
    assert "ms_ssim: not computed on 9 of 9 outputs" in r.output
    md = (out / "table.md").read_text().split("\n\n")[0].strip().splitlines()
    assert len(md) == 2 + len(methods) and md[0].startswith("| method | n | psnr ↑")
    paired = (out / "paired.md").read_text().strip().splitlines()  # each method vs bicubic
    assert paired[0].startswith("| method | Δpsnr vs bicubic") and len(paired) == 2 + 2
    assert paired[2].startswith("| lanczos |") and "(" in paired[2]
    rows = _csv(out / "per_image.csv")
    assert len(rows) == 9 and list(rows[0])[:5] == ["image", "method", "psnr", "ssim", "ms_ssim"]
    assert all(row["ms_ssim"] == "" and "176" in row["notes"] for row in rows)
    names = sorted({row["image"] for row in rows})
    assert names == ["hq_face0", "hq_face1", "hq_face2"]
    for folder in ("lr", "hr", *methods):
        assert sorted(p.stem for p in (out / "images" / folder).glob("*.png")) == names
    lr = cv2.imread(str(out / "images" / "lr" / "hq_face0.png"))
    sr = cv2.imread(str(out / "images" / "nearest" / "hq_face0.png"))
    assert lr.shape == (16, 12, 3) and sr.shape == (64, 48, 3)
    assert np.array_equal(sr, lr.repeat(4, 0).repeat(4, 1))  # the model ran, exactly x4
    page = (out / "report.html").read_text()
    srcs = set(re.findall(r'<img src="([^"]+)"', page))
    assert srcs == {f"images/{f}/{n}.png" for f in ("lr", "hr", *methods) for n in names}
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and run["settings"]["seed"] == 0
    assert run["settings"]["kernels_sha256"] == sha256_file(kernels)
    assert run["methods"][2]["model"]["sha256"] == sha256_file(nearest)
    assert {"facesr", "torch", "numpy", "opencv", "python"} <= set(run["versions"])
    assert not list(out.rglob(".*.part"))


def test_bicubic_beats_nearest_on_a_clean_downscale(tmp_path, nearest):
    hq = _faces(tmp_path / "hq", n=4, size=(96, 80))
    out = tmp_path / "out"
    r = _run("synthetic", "--hq", hq, "--preset", "bicubic", "--methods",
             f"{nearest},bicubic", "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    rows = _csv(out / "per_image.csv")
    by = {(x["image"], x["method"]): x for x in rows}
    for name in {x["image"] for x in rows}:
        for k in ("psnr", "ssim"):
            assert float(by[(name, "bicubic")][k]) > float(by[(name, "nearest")][k])


def test_scores_reproduce_with_the_seed_whatever_the_order_or_limit(tmp_path, kernels):
    hq = _faces(tmp_path / "hq", n=4)
    base = ["--hq", hq, "--kernels", kernels, "--methods", "bicubic", *FAST]
    assert _run("synthetic", *base, "--out", tmp_path / "a").exit_code == 0
    assert _run("synthetic", *base, "--out", tmp_path / "b").exit_code == 0
    assert (tmp_path / "a" / "per_image.csv").read_text() == (
        tmp_path / "b" / "per_image.csv").read_text()
    listing = tmp_path / "list.txt"  # the same files in reverse order, then only two
    listing.write_text("\n".join(str(hq / f"face{i}.png") for i in (3, 2, 1, 0)))
    r = _run("synthetic", "--hq", listing, "--kernels", kernels, "--methods", "bicubic",
             *FAST, "--limit", "2", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    full = {x["image"]: x for x in _csv(tmp_path / "a" / "per_image.csv")}
    part = _csv(tmp_path / "c" / "per_image.csv")
    assert [x["image"] for x in part] == ["hq_face3", "hq_face2"]
    assert all(x == full[x["image"]] for x in part)
    r = _run("synthetic", *base, "--seed", "1", "--out", tmp_path / "d")
    assert _csv(tmp_path / "d" / "per_image.csv") != list(full.values())


def test_bad_input_gets_one_line_and_the_batch_goes_on(tmp_path, kernels):
    hq = _faces(tmp_path / "hq", n=2)
    (hq / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    r = _run("synthetic", "--hq", hq, "--kernels", kernels, "--methods", "bicubic", "--out",
             out, *FAST)
    assert r.exit_code == 1, r.output
    assert len([ln for ln in r.output.splitlines() if "broken.png" in ln]) == 1
    assert "2 images done, 0 skipped, 1 failed" in r.output
    assert [t["n"] for t in _csv(out / "table.csv")] == ["2"]


def test_resume_recomputes_nothing_and_fills_only_what_is_missing(tmp_path, kernels,
                                                                 monkeypatch):
    hq = _faces(tmp_path / "hq", n=3)
    out = tmp_path / "out"
    args = ["synthetic", "--hq", hq, "--kernels", kernels, "--methods", "bicubic,lanczos",
            "--out", out, *FAST]
    calls = []
    real_resample = pipeline.resample
    monkeypatch.setattr(pipeline, "resample",
                        lambda *a, **k: calls.append(1) or real_resample(*a, **k))
    assert _run(*args).exit_code == 0
    assert len(calls) == 6
    images = sorted((out / "images").rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in images}
    table, scores = (out / "table.csv").read_text(), (out / "per_image.csv").read_text()
    r = _run(*args)
    assert r.exit_code == 0 and "0 images done, 3 skipped" in r.output
    assert len(calls) == 6 and {p: p.stat().st_mtime_ns for p in images} == stamps
    assert (out / "table.csv").read_text() == table
    # a run killed before its last result: that result alone is computed again
    recs = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join(recs[:-1]) + "\n")
    r = _run(*args)
    assert r.exit_code == 0 and len(calls) == 7, r.output
    assert (out / "per_image.csv").read_text() == scores  # timings aside, the same table
    # a new image in the folder: only its results are computed
    _faces(tmp_path / "hq", n=4)
    assert _run(*args).exit_code == 0 and len(calls) == 9
    run = json.loads((out / "run.json").read_text())
    assert [h["images"]["done"] for h in run["history"]] == [3, 0, 1, 1]
    # an input edited after its results were recorded: refused, kept out of the tables
    _faces(tmp_path / "hq", n=1, seed=5)
    r = _run(*args)
    assert r.exit_code == 1 and "face0.png: changed since" in r.output and len(calls) == 9
    assert [t["n"] for t in _csv(out / "table.csv")] == ["3", "3"]


def test_changed_settings_are_refused_unless_overwrite(tmp_path, kernels, nearest):
    hq = _faces(tmp_path / "hq", n=2)
    out = tmp_path / "out"
    args = ["synthetic", "--hq", hq, "--kernels", kernels, "--out", out, *FAST]
    assert _run(*args, "--methods", "bicubic").exit_code == 0
    r = _run(*args, "--methods", "bicubic", "--seed", "3")
    assert r.exit_code == 2 and "seed" in r.output and "--overwrite" in r.output
    # another model file under a name that has results
    other = tmp_path / "m" / "nearest.safetensors"
    other.parent.mkdir()
    torch.manual_seed(1)
    save_rrdb(other, RRDBNet(**TINY))
    assert _run(*args, "--methods", f"bicubic,{nearest}").exit_code == 0  # a method added
    r = _run(*args, "--methods", f"bicubic,{other}")
    assert r.exit_code == 2 and "nearest: recorded" in r.output
    r = _run(*args, "--methods", "bicubic", "--seed", "3", "--overwrite")
    assert r.exit_code == 0 and "2 images done" in r.output
    assert not (out / "images" / "nearest").exists() or not list(
        (out / "images" / "nearest").glob("*.png"))


def test_unknown_method_or_metric_and_missing_weights_stop_at_start(tmp_path, kernels,
                                                                    monkeypatch):
    hq = _faces(tmp_path / "hq", n=1)
    base = ["synthetic", "--hq", hq, "--kernels", kernels, "--out", tmp_path / "out"]
    r = _run(*base, "--methods", "bicubic,bicubicc", *FAST)
    assert r.exit_code == 2 and "unknown method 'bicubicc'" in r.output
    r = _run(*base, "--methods", "bicubic", "--metrics", "psnr,sharpness")
    assert r.exit_code == 2 and "unknown metric" in r.output
    monkeypatch.delenv("FACESR_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    r = _run(*base, "--methods", "bicubic", "--metrics", "psnr,niqe", "--weights",
             tmp_path / "empty")
    assert r.exit_code == 2 and "niqe" in r.output and "weights not available" in r.output
    assert not (tmp_path / "out").exists()


def test_real_scores_no_reference_metrics_on_shrunk_inputs(tmp_path, shared):
    lq = _faces(tmp_path / "lq", n=2, size=(128, 128))
    out = tmp_path / "out"
    r = _run("real", "--lq", lq, "--methods", "bicubic,lanczos", "--out", out, "--weights",
             shared / "weights", "--max-side", "64")
    assert r.exit_code == 0, r.output
    table = _csv(out / "table.csv")
    assert [t["method"] for t in table] == ["bicubic", "lanczos"]
    assert {"niqe_mean", "brisque_mean"} <= set(table[0]) and "psnr_mean" not in table[0]
    assert all(t["n"] == "2" and float(t["niqe_mean"]) > 0 for t in table)
    assert cv2.imread(str(out / "images" / "lr" / "lq_face0.png")).shape == (64, 64, 3)
    assert cv2.imread(str(out / "images" / "bicubic" / "lq_face0.png")).shape == (256, 256, 3)
    assert not (out / "images" / "hr").exists()
    r = _run("real", "--lq", lq, "--methods", "bicubic", "--out", tmp_path / "o2",
             "--metrics", "psnr")
    assert r.exit_code == 2 and "reference" in r.output


def _cell(text: str) -> tuple[float, int, int, int]:
    """``+1.02 [+0.95, +1.09] (5/6)`` -> (mean, its decimals, won, n)."""
    m = re.fullmatch(r"([+-][\d.]+)(?: \[[^]]+\])? \((\d+)/(\d+)\)", text.strip())
    assert m, text
    mean = m.group(1)
    return float(mean), len(mean.partition(".")[2]), int(m.group(2)), int(m.group(3))


def test_baseline_sets_the_paired_tables_and_a_resume_may_change_it(tmp_path, kernels,
                                                                    nearest):
    hq = _faces(tmp_path / "hq", n=3)
    out = tmp_path / "out"
    args = ["synthetic", "--hq", hq, "--kernels", kernels, "--methods",
            f"bicubic,lanczos,{nearest}", "--out", out, "--metrics", "psnr,ssim"]
    assert _run(*args).exit_code == 0
    assert (out / "paired.md").read_text().startswith("| method | Δpsnr vs bicubic |")
    r = _run(*args, "--baseline", "lanczos")  # tables only: every result is reused
    assert r.exit_code == 0 and "0 images done, 3 skipped" in r.output, r.output
    lines = (out / "paired.md").read_text().strip().splitlines()
    assert lines[0] == "| method | Δpsnr vs lanczos | Δssim vs lanczos |"
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    assert [row[0] for row in rows] == ["bicubic", "nearest"]  # each minus lanczos
    scores = {(x["image"], x["method"]): x for x in _csv(out / "per_image.csv")}
    images = sorted({i for i, _ in scores})
    for row in rows:
        for k, cell in zip(("psnr", "ssim"), row[1:], strict=True):
            d = [float(scores[(i, row[0])][k]) - float(scores[(i, "lanczos")][k])
                 for i in images]
            mean, decimals, won, n = _cell(cell)
            assert abs(mean - sum(d) / len(d)) <= 0.5 * 10 ** -decimals + 1e-12
            assert (won, n) == (sum(x > 0 for x in d), 3)
    assert "minus lanczos" in (out / "table.md").read_text()
    assert "baseline lanczos" in (out / "report.html").read_text()
    assert json.loads((out / "run.json").read_text())["baseline"] == "lanczos"


def test_unknown_baseline_stops_at_start_naming_the_labels(tmp_path, kernels):
    hq = _faces(tmp_path / "hq", n=1)
    r = _run("synthetic", "--hq", hq, "--kernels", kernels, "--methods", "bicubic,lanczos",
             "--baseline", "nearest", "--out", tmp_path / "out", *FAST)
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert r.exit_code == 2 and "--baseline" in text and "one of bicubic, lanczos" in text
    assert not (tmp_path / "out").exists()


def test_real_pairs_no_reference_scores_with_the_baseline(tmp_path):
    lq = _faces(tmp_path / "lq", n=2, size=(32, 32))
    out = tmp_path / "out"
    r = _run("real", "--lq", lq, "--methods", "lanczos,bicubic", "--metrics", "piqe",
             "--baseline", "lanczos", "--out", out)
    assert r.exit_code == 0, r.output
    lines = (out / "paired.md").read_text().strip().splitlines()
    assert lines[0] == "| method | Δpiqe vs lanczos |" and lines[2].startswith("| bicubic |")
