"""Mean Opinion Rank of known rankings; files from another study or incomplete are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.study import RankingError, Study, decode_rankings, mean_opinion_rank, plan_study

runner = CliRunner()
METHODS = ["bicubicq", "esrganzz", "oursxmodel"]


@pytest.fixture()
def study() -> Study:
    return plan_study(["face0", "face1"], METHODS, np.random.default_rng(0), study_id="s1")


def _saved(study: Study, orders: dict[str, list[str]], rater: str = "ann") -> dict:
    """What the page saves for these orders (method names, best first)."""
    rankings = []
    for item in study.items:
        token = dict(zip(item.methods, item.tokens, strict=True))
        rankings.append({"image": item.image, "ranking": [token[m] for m in orders[item.image]]})
    return {"format": "facesr-study-rankings", "version": 1, "study": study.study_id,
            "rater": rater, "saved": "2026-01-01T00:00:00Z", "rankings": rankings}


def test_mor_of_known_rankings(study):
    ann = decode_rankings(_saved(study, {"face0": ["oursxmodel", "esrganzz", "bicubicq"],
                                         "face1": ["oursxmodel", "bicubicq", "esrganzz"]}), study)
    bob = decode_rankings(_saved(study, {"face0": ["esrganzz", "oursxmodel", "bicubicq"],
                                         "face1": ["oursxmodel", "esrganzz", "bicubicq"]},
                                 "bob"), study)
    assert ann.orders["face1"] == ("oursxmodel", "bicubicq", "esrganzz")
    rows = {r.method: r for r in mean_opinion_rank([ann, bob])}
    assert [r.method for r in mean_opinion_rank([ann, bob])] == ["oursxmodel", "esrganzz",
                                                                  "bicubicq"]
    ours, esr, bic = rows["oursxmodel"], rows["esrganzz"], rows["bicubicq"]
    assert (ours.mor, esr.mor, bic.mor) == (1.25, 2.0, 2.75)
    assert ours.n == esr.n == bic.n == 4
    assert ours.std == pytest.approx(np.std([1, 2, 1, 1], ddof=1))
    assert ours.ci95 == pytest.approx(3.182446 * ours.std / 2, rel=1e-5)  # t(0.975, 3)
    assert ours.best_share == 0.75 and bic.best_share == 0.0
    assert sum(r.mor for r in rows.values()) == pytest.approx(1 + 2 + 3)


def test_rankings_of_another_study_are_refused(study):
    data = _saved(study, {im: METHODS for im in ("face0", "face1")})
    data["study"] = "other"
    with pytest.raises(RankingError, match="from study 'other', but the key is for study 's1'"):
        decode_rankings(data, study)


def test_incomplete_and_malformed_rankings_are_refused(study):
    data = _saved(study, {im: METHODS for im in ("face0", "face1")})
    short = json.loads(json.dumps(data))
    short["rankings"][0]["ranking"].pop()
    with pytest.raises(RankingError, match="incomplete ranking of image 'face0'"):
        decode_rankings(short, study)
    missing = json.loads(json.dumps(data))
    missing["rankings"].pop()
    with pytest.raises(RankingError, match="1 of 2 images not ranked"):
        decode_rankings(missing, study)
    foreign = json.loads(json.dumps(data))
    foreign["rankings"][0]["ranking"][0] = study.items[1].tokens[0]  # another image's token
    with pytest.raises(RankingError, match="incomplete ranking"):
        decode_rankings(foreign, study)
    with pytest.raises(RankingError, match="not a study rankings file"):
        decode_rankings([1, 2], study)


def test_score_command_skips_bad_files_and_fails_at_the_end(study, tmp_path: Path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(study.to_key()))
    good = tmp_path / "ann.json"
    good.write_text(json.dumps(_saved(study, {im: METHODS for im in ("face0", "face1")})))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(good.read_text()), "study": "zzz"}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ')
    table = tmp_path / "mor.csv"
    res = runner.invoke(app, ["study", "score", str(good), str(other), str(broken),
                              str(tmp_path / "absent.json"), str(good), "--key", str(key),
                              "--out", str(table)])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 3
    assert "other.json" in errors[0] and "study 'zzz'" in errors[0]
    assert "broken.json: not valid JSON" in errors[1]
    assert "absent.json: cannot read" in errors[2]
    assert "skipped" in res.stderr and "1 ranking files done, 1 skipped, 3 failed" in res.stderr
    assert "Mean Opinion Rank" in res.stdout and "bicubicq" in res.stdout
    assert table.read_text().splitlines() == [
        "method,mor,std,ci95,n,best_share",
        "bicubicq,1.0000,0.0000,0.0000,2,1.0000",
        "esrganzz,2.0000,0.0000,0.0000,2,0.0000",
        "oursxmodel,3.0000,0.0000,0.0000,2,0.0000"]
    md = tmp_path / "mor.md"
    res = runner.invoke(app, ["study", "score", str(good), "--key", str(key), "--out", str(md)])
    assert res.exit_code == 0, res.output
    assert md.read_text().splitlines()[2] == "| bicubicq | 1.00 | 0.00 | ±0.00 | 2 | 100% |"
