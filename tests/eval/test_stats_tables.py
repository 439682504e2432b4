"""Means with t-intervals, and the tables made of them."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from facesr.eval.stats import mean_ci
from facesr.eval.tables import format_cell, per_image_csv, summarize, to_csv, to_markdown


def test_mean_ci_matches_the_t_formula_and_contains_the_mean() -> None:
    r = mean_ci([0.0, 2.0])  # s = sqrt(2), t_{0.975,1} = 12.7062
    assert r.mean == 1.0 and r.n == 2
    assert r.half_width == pytest.approx(12.7062, abs=1e-4)
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 200):
        xs = rng.normal(5.0, 2.0, n)
        r = mean_ci(xs)
        assert r.low < r.mean < r.high and r.mean == pytest.approx(xs.mean())
    wide, narrow = mean_ci(rng.normal(0, 1, 10)), mean_ci(rng.normal(0, 1, 1000))
    assert narrow.half_width < wide.half_width
    assert mean_ci([1.0, 2.0, 3.0], 0.99).half_width > mean_ci([1.0, 2.0, 3.0]).half_width


def test_mean_ci_of_one_value_has_no_interval_and_none_is_an_error() -> None:
    r = mean_ci([3.5])
    assert r.mean == 3.5 and r.n == 1 and math.isnan(r.low) and math.isnan(r.high)
    with pytest.raises(ValueError, match="no values"):
        mean_ci([])


def _results() -> list[dict]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(5):
        for m, base in (("bicubic", 28.0), ("model", 30.0)):
            small = i == 0 and m == "model"  # one empty cell
            out.append({"image": f"im{i}", "method": m, "seconds": 0.5,
                        "scores": {"psnr": base + rng.normal(), "ms_ssim": None if small
                                   else 0.9 + 0.01 * rng.normal()},
                        "notes": {"ms_ssim": "ValueError: too small"} if small else {}})
    return out


def test_summary_has_one_row_per_method_with_n_and_intervals_around_the_mean() -> None:
    res = _results()
    rows = summarize(res, ["bicubic", "model", "absent"], ["psnr", "ms_ssim"])
    assert [r.method for r in rows] == ["bicubic", "model", "absent"]
    assert [r.n for r in rows] == [5, 5, 0]
    for r in rows[:2]:
        for s in r.stats.values():
            assert s.low <= s.mean <= s.high
    assert rows[1].stats["ms_ssim"].n == 4  # the empty cell is left out, not counted as 0
    assert rows[2].stats["psnr"] is None and rows[2].seconds is None
    psnr = [r["scores"]["psnr"] for r in res if r["method"] == "model"]
    assert rows[1].stats["psnr"].mean == pytest.approx(float(np.mean(psnr)))

    table = list(csv.DictReader(io.StringIO(to_csv(rows, ["psnr", "ms_ssim"]))))
    assert [t["method"] for t in table] == ["bicubic", "model", "absent"]
    for t in table[:2]:
        assert float(t["psnr_ci_low"]) <= float(t["psnr_mean"]) <= float(t["psnr_ci_high"])
    assert table[1]["ms_ssim_n"] == "4" and table[2]["psnr_mean"] == ""

    md = to_markdown(rows, ["psnr", "ms_ssim"], {"psnr": "higher", "ms_ssim": "higher"})
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 3 and "psnr ↑" in lines[0]
    assert "**" in lines[3] and "(n=4)" in lines[3]  # the model has the best PSNR


def test_cells_round_to_the_interval_and_per_image_csv_keeps_empty_cells() -> None:
    rows = summarize(_results(), ["bicubic"], ["psnr"])
    cell = format_cell(rows[0].stats["psnr"], 5)
    mean, half = cell.split(" ± ")
    assert len(half.split(".")[1]) == len(mean.split(".")[1])
    assert format_cell(None, 5) == "-"
    table = list(csv.DictReader(io.StringIO(per_image_csv(_results(), ["psnr", "ms_ssim"]))))
    assert len(table) == 10 and list(table[0]) == ["image", "method", "psnr", "ms_ssim",
                                                   "notes"]
    assert table[1]["ms_ssim"] == "" and "too small" in table[1]["notes"]
