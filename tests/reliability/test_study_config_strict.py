"""Malformed rankings files are skipped one by one; degradation settings are typed strictly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from facesr.cli import app
from facesr.cli.pairs import parse_overrides
from facesr.degrade.degradation import PRESETS, DegradeConfig
from facesr.study import RankingError, Study, decode_rankings, plan_study
from facesr.train.config import ConfigError, load_config

runner = CliRunner()
METHODS = ["bicubicq", "esrganzz", "oursxmodel"]


# ----------------------------------------------------------------------------- 8: study score
@pytest.fixture()
def study() -> Study:
    return plan_study(["face0", "face1"], METHODS, np.random.default_rng(0), study_id="s1")


def _saved(study: Study) -> dict:
    rankings = [{"image": it.image, "ranking": list(it.tokens)} for it in study.items]
    return {"format": "facesr-study-rankings", "version": 1, "study": study.study_id,
            "rater": "ann", "rankings": rankings}


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["rankings"][0].update(image={"name": "face0"}),
     r"rankings entry 1: 'image' must be a name \(text\), got a JSON object"),
    (lambda d: d["rankings"][1].update(image=["face1"]), "rankings entry 2: 'image'.*JSON list"),
    (lambda d: d["rankings"][1].pop("image"), "rankings entry 2: 'image'.*got None"),
    (lambda d: d["rankings"].__setitem__(0, "face0"),
     "rankings entry 1 is not an object with 'image' and 'ranking', got 'face0'"),
    (lambda d: d["rankings"][0].update(ranking=[{"a": 1}, [2], 3]), "incomplete ranking"),
    (lambda d: d.update(study={"id": "s1"}), "rankings are from study a JSON object"),
])
def test_malformed_entries_are_ranking_errors(study, change, message: str) -> None:
    data = _saved(study)
    change(data)
    with pytest.raises(RankingError, match=message):
        decode_rankings(data, study)


def test_score_skips_unhashable_and_deeply_nested_files_and_goes_on(study, tmp_path: Path
                                                                    ) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(study.to_key()))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_saved(study)))
    obj = _saved(study)
    obj["rankings"][0]["image"] = {"nested": "object"}
    unhashable = tmp_path / "unhashable.json"
    unhashable.write_text(json.dumps(obj))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    deep_inside = tmp_path / "deep_inside.json"
    deep_inside.write_text(json.dumps(_saved(study))[:-1] + ', "x": ' + "[" * 200_000
                           + "]" * 200_000 + "}")
    r = runner.invoke(app, ["study", "score", str(unhashable), str(deep), str(deep_inside),
                            str(good), "--key", str(key)])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 3, r.stderr
    assert "unhashable.json" in errors[0] and "rankings entry 1" in errors[0]
    assert "deep.json" in errors[1] and "nested too deeply" in errors[1]
    assert "deep_inside.json" in errors[2] and "nested too deeply" in errors[2]
    assert "1 ranking files done, 0 skipped, 3 failed" in r.stderr
    assert "Mean Opinion Rank" in r.stdout


def test_a_deeply_nested_key_is_one_error_line(study, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_saved(study)))
    key = tmp_path / "key.json"
    key.write_text("[" * 200_000 + "]" * 200_000)
    r = runner.invoke(app, ["study", "score", str(good), "--key", str(key)])
    assert r.exit_code == 2 and "nested too deeply" in r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


# ----------------------------------------------------------------------------- 12: degrade config
@pytest.mark.parametrize(("override", "message"), [
    ("data.degrade={scale: 4.0}", "data.degrade.scale must be an integer, got 4.0"),
    ("data.degrade={jpeg_quality: 30.7}", r"data.degrade.jpeg_quality\[0\] must be an integer"),
    ("data.degrade={jpeg_quality: [20, 40.5]}",
     r"data.degrade.jpeg_quality\[1\] must be an integer"),
    ("data.degrade.quantize='no'", "data.degrade.quantize must be true or false, got 'no'"),
    ("data.degrade.quantize=1", "data.degrade.quantize must be true or false, got 1"),
    ("data.degrade.noise_prob=high", "data.degrade.noise_prob must be a number"),
    ("data.degrade.kernel=gauss", "data.degrade.kernel must be one of"),
    ("data.degrade.blur_sigma=[1, 2, 3]", "data.degrade.blur_sigma must be a list of 2"),
    ("data.degrade.jpeg_prob=1.5", r"data.degrade.jpeg_prob must be in \[0, 1\]"),
    ("data.degrade.blurr=1", "data.degrade: unknown degradation settings"),
])
def test_training_config_types_data_degrade_strictly(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_data_degrade_in_a_yaml_file_is_strict_too(tmp_path: Path) -> None:
    p = tmp_path / "exp.yaml"
    p.write_text("data:\n  degrade:\n    scale: 4.0\n    jpeg_quality: 30.7\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="data.degrade.scale must be an integer") as e:
        load_config(p)
    assert str(e.value).startswith(str(p))


def test_good_degradation_settings_and_the_one_number_shorthand_still_work() -> None:
    cfg = load_config(None, ["data.degrade={jpeg_quality: 40, blur_sigma: 1.5, quantize: false,"
                             " noise_sigma: 6, gaussian_prob: 0.5, gaussian_noise_prob: 0.25}"])
    d = cfg.data.degradation()
    assert d.jpeg_quality == (40, 40) and d.blur_sigma == (1.5, 1.5) and d.quantize is False
    assert d.noise_sigma == 6.0 and d.gaussian_prob == 0.5 and d.gaussian_noise_prob == 0.25
    assert DegradeConfig.from_dict({"jpeg_quality": [20, 40]}).jpeg_quality == (20, 40)
    assert DegradeConfig.from_dict({"jpeg_quality": 30}) == DegradeConfig()
    with pytest.raises(ValueError, match=r"jpeg_quality\[0\] must be an integer, got 30.7"):
        DegradeConfig.from_dict({"jpeg_quality": 30.7})
    with pytest.raises(ValueError, match="quantize must be true or false"):
        DegradeConfig.from_dict({"quantize": "no"})


@pytest.mark.parametrize(("item", "message"), [
    ("jpeg_quality=30.7", r"jpeg_quality\[0\] must be an integer"),
    ("scale=4.0", "scale must be an integer"),
    ("quantize='no'", "quantize must be true or false"),
    ("jpeg_prob", "not key=value"),
    ("blurr=1", "unknown degradation settings"),
])
def test_pairs_set_uses_the_same_strict_override_parser(item: str, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        parse_overrides(PRESETS["paper"], [item])
    ok = parse_overrides(PRESETS["paper"], ["jpeg_quality=50", "quantize=no", "jpeg_prob=1"])
    assert ok.jpeg_quality == (50, 50) and ok.quantize is False and ok.jpeg_prob == 1.0


def test_pairs_command_refuses_a_wrongly_typed_set(tmp_path: Path) -> None:
    r = runner.invoke(app, ["pairs", str(tmp_path), "--out", str(tmp_path / "o"), "--preset",
                            "bicubic", "--set", "quantize='no'"])
    assert r.exit_code == 2 and "quantize must be true or false" in r.output
    assert not (tmp_path / "o").exists()
