"""``facesr study create``: top methods by the metric's direction, a blind page, key, manifest."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import write_image
from facesr.study import Study

runner = CliRunner()
METHODS = ("bicubicq", "esrganzz", "oursxmodel")  # as in conftest.py


def _create(results: Path, out: Path, *args: str):
    return runner.invoke(app, ["study", "create", "--results", str(results), "--out", str(out),
                               *args])


def test_page_is_blind_and_the_key_decodes_it(results, tmp_path):
    out = tmp_path / "study"
    res = _create(results, out, "--top", "3")
    assert res.exit_code == 0, res.output
    page = (out / "study.html").read_text()
    assert not [m for m in METHODS if m in page]
    assert not re.search(r"(src|href)=\"https?:", page)  # nothing fetched from elsewhere
    data = json.loads(re.search(r'id="study-data">(.*?)</script>', page, re.S).group(1))
    study = Study.from_key(json.loads((out / "key.json").read_text()))
    assert data["study"] == study.study_id and len(data["items"]) == 2
    for shown, item in zip(data["items"], study.items, strict=True):
        assert [o["token"] for o in shown["options"]] == list(item.tokens)
        assert shown["lr"].startswith("data:image/png;base64,")
        png = base64.b64decode(shown["options"][0]["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"tEXt" not in png
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["study"] == study.study_id
    assert sorted(manifest["images"]) == ["face0", "face1"]
    assert manifest["methods"] == ["oursxmodel", "esrganzz", "bicubicq"]  # NIQE: lower first


def test_top_k_follows_the_metric_direction(results_with, tmp_path):
    results = results_with(tmp_path / "r", methods={"aa1": 1.0, "bb2": 2.0, "cc3": 3.0})
    table = results / "table.csv"
    table.write_text(table.read_text().replace("niqe", "nima"))  # NIMA: higher is better
    res = _create(results, tmp_path / "s", "--top", "2", "--metric", "nima")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["methods"] == ["cc3", "bb2"]
    table.write_text("method,nima\naa1,9\nbb2,nan\ncc3,5\n")  # a plain <metric> column
    res = _create(results, tmp_path / "t", "--top", "2", "--metric", "nima")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["methods"] == ["aa1", "cc3"]
    res = _create(results, tmp_path / "u", "--metric", "psnr")
    assert res.exit_code == 2 and "no 'method' and 'psnr_mean' (or 'psnr') columns" in res.stderr


def test_methods_option_images_and_seed(results_with, tmp_path):
    results = results_with(tmp_path / "r", n_images=6)
    res = _create(results, tmp_path / "a", "--methods", "esrganzz,bicubicq", "--images", "4",
                  "--no-lr", "--seed", "7")
    assert res.exit_code == 0, res.output
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert a["methods"] == ["esrganzz", "bicubicq"] and len(a["images"]) == 4
    _create(results, tmp_path / "b", "--methods", "esrganzz,bicubicq", "--images", "4",
            "--no-lr", "--seed", "7")
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    ka, kb = (Study.from_key(json.loads((tmp_path / d / "key.json").read_text())) for d in "ab")
    assert a["images"] == b["images"]
    assert [i.methods for i in ka.items] == [i.methods for i in kb.items]  # same seed, same page
    assert ka.study_id != kb.study_id  # but fresh tokens
    assert '"lr":null' in (tmp_path / "a" / "study.html").read_text()


def test_errors_are_one_line_and_nothing_is_overwritten(results, tmp_path):
    res = _create(results, tmp_path / "s", "--methods", "esrganzz,lr")
    assert res.exit_code == 2 and "no method folder for lr" in res.stderr
    res = _create(results, tmp_path / "s", "--metric", "sharpness")
    assert res.exit_code == 2 and "unknown metric 'sharpness'" in res.stderr
    assert _create(results, tmp_path / "s").exit_code == 0
    res = _create(results, tmp_path / "s")
    assert res.exit_code == 2 and "pass --overwrite" in res.stderr
    # an output of another size would give its method away
    write_image(results / "images" / "esrganzz" / "face1.png", np.full((16, 16, 3), 0.5))
    res = _create(results, tmp_path / "t")
    assert res.exit_code == 1 and "differ in size" in res.stderr
