"""End to end in headless Chromium: create a study, rank in the page with real clicks and keys,
save, score the downloaded file.

Needs Debian's ``chromium`` and ``chromium-driver`` (or ``FACESR_CHROMIUM`` /
``FACESR_CHROMEDRIVER``) and the ``selenium`` Python client; skips without them. Selenium is
given both paths, so Selenium Manager downloads nothing. With ``FACESR_STUDY_SCREENSHOT=PATH``
the test saves a screenshot of the page mid-ranking there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.study import LETTERS, Study

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="needs the selenium client: pip install selenium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow  # needs Chromium: the `browser` fixture skips without it
METHODS = ("bicubicq", "esrganzz", "oursxmodel")  # as in conftest.py
WANT = [("oursxmodel", "esrganzz", "bicubicq"),  # best first, for the 1st and 2nd face shown
        ("oursxmodel", "bicubicq", "esrganzz")]
runner = CliRunner()


def _text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def _wait_for_file(folder: Path, seconds: float = 15.0) -> Path:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done = [p for p in folder.glob("*.json")]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder} after {seconds} s")


def test_rank_in_the_browser_save_and_score(results, tmp_path, browser):
    driver, downloads = browser
    out = tmp_path / "study"
    res = runner.invoke(app, ["study", "create", "--results", str(results), "--out", str(out),
                              "--top", "3"])
    assert res.exit_code == 0, res.output
    study = Study.from_key(json.loads((out / "key.json").read_text()))
    letters = [[LETTERS[item.methods.index(m)] for m in want]
               for item, want in zip(study.items, WANT, strict=True)]

    driver.get((out / "study.html").as_uri())
    dom = driver.execute_script("return document.documentElement.outerHTML")
    for m in METHODS:
        assert m not in driver.page_source and m not in dom
    assert _text(driver, "#face-title") == "Face 1 of 2"
    assert _text(driver, "#done") == "0 of 2 faces ranked"
    assert driver.find_element(By.CSS_SELECTOR, "#ref figcaption").text.startswith("Input")
    options = driver.find_elements(By.CSS_SELECTOR, "#options button.option")
    assert [o.text.strip() for o in options] == ["A", "B", "C"]

    # face 1 with the mouse: a wrong first click, undone with the Undo button
    wrong = next(x for x in "ABC" if x != letters[0][0])
    options[LETTERS.index(wrong)].click()
    driver.find_element(By.ID, "undo").click()
    for letter in letters[0]:
        options[LETTERS.index(letter)].click()
    assert options[LETTERS.index(letters[0][0])].get_attribute("aria-pressed") == "true"
    assert "1st" in options[LETTERS.index(letters[0][0])].text
    assert _text(driver, "#done") == "1 of 2 faces ranked"

    # saving now is refused: face 2 is not ranked (and no name yet)
    driver.find_element(By.ID, "rater").send_keys("Ann Example")
    driver.find_element(By.ID, "save").click()
    assert "Not saved: 1 of 2 faces are not fully ranked" in _text(driver, "#status")
    assert _text(driver, "#face-title") == "Face 2 of 2"  # the page went to the missing face

    # face 2 with the keyboard: letters, a wrong key taken back with Backspace
    keys = ActionChains(driver)
    keys.send_keys(letters[1][0]).perform()
    shot = os.environ.get("FACESR_STUDY_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)
    keys = ActionChains(driver)
    keys.send_keys(letters[1][2]).send_keys("\ue003")  # Backspace
    keys.send_keys(letters[1][1]).send_keys(letters[1][2]).perform()
    assert _text(driver, "#done") == "2 of 2 faces ranked"

    driver.refresh()  # progress survives a reload (kept in the browser's storage)
    assert _text(driver, "#done") == "2 of 2 faces ranked"
    assert driver.find_element(By.ID, "rater").get_attribute("value") == "Ann Example"
    driver.find_element(By.ID, "save").click()
    saved = _wait_for_file(downloads)
    assert saved.name == f"rankings-{study.study_id}-ann-example.json"
    assert "Saved" in _text(driver, "#status")
    data = json.loads(saved.read_text())
    assert data["study"] == study.study_id and data["rater"] == "Ann Example"
    assert [r["image"] for r in data["rankings"]] == [item.image for item in study.items]
    for m in METHODS:
        assert m not in saved.read_text()

    table = tmp_path / "mor.csv"
    res = runner.invoke(app, ["study", "score", str(saved), "--key", str(out / "key.json"),
                              "--out", str(table)])
    assert res.exit_code == 0, res.output
    mor = {row.split(",")[0]: float(row.split(",")[1])
           for row in table.read_text().splitlines()[1:]}
    assert mor == {"oursxmodel": 1.0, "esrganzz": 2.5, "bicubicq": 2.5}
