"""Methods, synthetic inputs, scoring, records and the HTML page, each on its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from facesr.degrade.degradation import PRESETS, Pools
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool
from facesr.eval.inputs import shrink, synthetic_pair
from facesr.eval.methods import method_name, resolve_methods
from facesr.eval.records import identity_conflicts, index_records, settings_diff
from facesr.eval.report import Tile, report_html
from facesr.eval.scoring import MetricSet, check_metrics, default_metrics
from facesr.eval.tables import summarize
from facesr.metrics import METRICS
from facesr.models import RRDBNet, save_rrdb

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def _pools() -> Pools:
    k = torch.stack([gaussian_kernel(25, 1.2), gaussian_kernel(25, 2.0, 1.0, 0.4)])
    return Pools(KernelPool(k, [{"source": "a"}, {"source": "b"}]))


def test_classical_and_model_methods_upscale_any_size_exactly_x4(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = save_rrdb(tmp_path / "tiny net.safetensors", RRDBNet(**TINY))
    meths = resolve_methods(["bicubic", "lanczos", str(path), f"{path}:raw"], tile=16)
    assert [m.name for m in meths] == ["bicubic", "lanczos", "tiny_net", "tiny_net-raw"]
    sha = meths[2].record["model"]["sha256"]
    assert meths[2].identity == f"{sha}:color_lock=2.0" and len(sha) == 64
    assert meths[3].identity == f"{sha}:color_lock=None" and meths[3].record["color_lock"] is None
    # label=spec names a method: two runs' model.safetensors side by side
    a, b = resolve_methods([f"run_a={path}", f"run_b={path}:raw"], tile=16)
    assert (a.name, b.name) == ("run_a", "run_b") and b.identity.endswith("color_lock=None")
    for h, w in ((9, 13), (37, 20)):
        x = torch.rand(3, h, w)
        for m in meths:
            y = m.run(x)
            assert y.shape == (3, 4 * h, 4 * w) and 0 <= float(y.min()) <= float(y.max()) <= 1


def test_unknown_and_clashing_methods_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown method 'nearest'.*bicubic, lanczos"):
        resolve_methods(["bicubic", "nearest"])
    a = save_rrdb(tmp_path / "a" / "ema.safetensors", RRDBNet(**TINY))
    b = save_rrdb(tmp_path / "b" / "ema.safetensors", RRDBNet(**TINY))
    with pytest.raises(ValueError, match="two methods are named ema"):
        resolve_methods([str(a), str(b)])
    assert method_name("realesrgan-x4plus") == "realesrgan-x4plus"


def test_synthetic_pairs_depend_on_seed_and_name_only() -> None:
    pools, cfg = _pools(), PRESETS["synthetic"]
    img = torch.rand(3, 50, 43)
    hr, lr, params = synthetic_pair(img, "face_1", seed=0, pools=pools, cfg=cfg)
    assert hr.shape == (3, 48, 40) and lr.shape == (3, 12, 10)
    assert torch.equal(hr, img[:, :48, :40])
    assert params.record["jpeg_quality"] == 30 and params.record["noise"]["sigma"] == 8.0
    _, again, _ = synthetic_pair(img.clone(), "face_1", seed=0, pools=pools, cfg=cfg)
    assert torch.equal(lr, again)
    _, other, _ = synthetic_pair(img, "face_2", seed=0, pools=pools, cfg=cfg)
    _, reseeded, _ = synthetic_pair(img, "face_1", seed=1, pools=pools, cfg=cfg)
    assert not torch.equal(lr, other) and not torch.equal(lr, reseeded)
    with pytest.raises(ValueError, match="smaller than the x4"):
        synthetic_pair(torch.rand(3, 3, 40), "tiny", seed=0, pools=pools, cfg=cfg)


def test_shrink_keeps_small_images_and_aspect() -> None:
    x = torch.rand(3, 60, 40)
    assert shrink(x, None) is x and shrink(x, 60) is x
    y = shrink(x, 30)
    assert y.shape == (3, 30, 20) and torch.equal(y, torch.round(y * 255) / 255)


def test_metric_that_cannot_be_computed_gives_none_and_a_note() -> None:
    ms = MetricSet.load(["psnr", "ms_ssim"])
    x = torch.rand(3, 64, 64)
    scores, notes = ms.score(x, x.clamp(0.1, 0.9))
    assert scores["ms_ssim"] is None and "176" in notes["ms_ssim"] and "\n" not in notes["ms_ssim"]
    assert scores["psnr"] > 10 and "psnr" not in notes


def test_metric_checks_follow_the_registry() -> None:
    assert set(default_metrics(True)) <= set(METRICS) and "psnr" in default_metrics(True)
    assert all(not METRICS[n].needs_reference for n in default_metrics(False))
    with pytest.raises(ValueError, match="need"):
        check_metrics(["niqe", "psnr"], with_reference=False)
    with pytest.raises(ValueError, match="unknown metric"):
        check_metrics(["psnr", "sharpness"], with_reference=True)
    with pytest.raises(ValueError, match="twice"):
        check_metrics(["psnr", "psnr"], with_reference=True)


def test_records_index_and_conflicts() -> None:
    recs = [{"type": "input", "image": "a", "sha256": "1"},
            {"type": "result", "image": "a", "method": "m", "identity": "x" * 64},
            {"type": "result", "image": "a", "method": "bicubic", "identity": "classical:bicubic"},
            {"type": "result", "image": "a", "method": "m", "identity": "y" * 64}]
    inputs, results = index_records(recs)
    assert set(inputs) == {"a"} and results[("a", "m")]["identity"] == "y" * 64
    assert identity_conflicts(results.values(), {"m": "y" * 64, "bicubic": "classical:bicubic"}
                              ) == []
    (line,) = identity_conflicts(results.values(), {"m": "z" * 64})
    assert line.startswith("m: recorded yyyy")
    assert settings_diff({"seed": 0, "metrics": ["psnr"]}, {"seed": 1, "metrics": ["psnr"]}
                         ) == ["seed"]


def test_report_links_every_tile_and_escapes_names() -> None:
    res = [{"image": "a<b", "method": m, "scores": {"psnr": 30.0}, "seconds": 1.0}
           for m in ("bicubic", "x&y")]
    rows = summarize(res, ["bicubic", "x&y"], ["psnr"])
    tiles = [Tile("LR", "images/lr/a<b.png", kind="lr"), Tile("x&y", "images/x&y/a<b.png"),
             Tile("HR", "images/hr/a<b.png", kind="hr")]
    page = report_html(title="t", facts=["f"], rows=rows, metrics=["psnr"],
                       directions={"psnr": "higher"}, images=[("a<b", tiles)])
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == ["images/lr/a%3Cb.png", "images/x%26y/a%3Cb.png", "images/hr/a%3Cb.png"]
    assert "<b>x&amp;y</b>" in page and "a<b" not in page
    assert "http" not in page and "<script" not in page  # nothing fetched


def test_paired_table_against_bicubic_counts_wins_and_zero_direction() -> None:
    from facesr.eval.tables import best_methods, paired, paired_markdown, summarize

    res = []
    for i in range(5):
        res.append({"image": f"i{i}", "method": "bicubic", "seconds": 0.0,
                    "scores": {"psnr": 20.0 + i, "color_r": 0.5}})
        res.append({"image": f"i{i}", "method": "m", "seconds": 0.0,
                    "scores": {"psnr": 21.0 + i + (0.1 if i else -2.0), "color_r": -0.2}})
    dirs = {"psnr": "higher", "color_r": "zero"}
    (row,) = paired(res, ["bicubic", "m"], ["psnr", "color_r"], "bicubic", dirs)
    assert row.wins["psnr"] == (4, 5) and row.wins["color_r"] == (5, 5)
    assert abs(row.diffs["psnr"].mean - 0.68) < 1e-9 and row.diffs["psnr"].low < 0
    md = paired_markdown([row], ["psnr", "color_r"], "bicubic")
    assert "(4/5)" in md and "Δpsnr vs bicubic" in md
    rows = summarize(res, ["bicubic", "m"], ["color_r"])
    assert best_methods(rows, "color_r", "zero") == {"m"}
