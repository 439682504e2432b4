"""The app in headless Chromium: `facesr app` started as a user would, a face uploaded through
the page, its card and before/after slider, the zip downloaded and checked against the records,
a corrupt file's error shown on the page, and a request without the token refused.

Needs Debian's ``chromium`` and ``chromium-driver`` (or ``FACESR_CHROMIUM`` /
``FACESR_CHROMEDRIVER``) and the ``selenium`` client, as tests/study/test_browser.py; skips
without them. With ``FACESR_APP_SCREENSHOT=PATH`` the test saves a screenshot of the page with
its results there (docs/img/app.png was made so).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from app_helpers import make_demo_face, make_frame

pytest.importorskip("fastapi", reason="needs the app extra: pip install 'facesr[app]'")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="needs the selenium client: pip install selenium")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow  # needs Chromium: the `browser` fixture skips without it


@pytest.fixture()
def server(tmp_path: Path):
    """`facesr app --no-browser` on a temporary output folder: (base URL, token, out)."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "facesr", "app", "--no-browser", "-o",
                             str(out), "--allow", str(tmp_path), "--uploads",
                             str(tmp_path / "uploads")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line.startswith("facesr app: http://127.0.0.1:"), line
    base, token = line.split(": ", 1)[1].strip().split("/?token=")
    yield base, token, out
    proc.terminate()
    proc.wait(timeout=60)


def _wait_for_zip(folder: Path, seconds: float = 30.0) -> Path:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done = list(folder.glob("*.zip"))
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no zip in {folder} after {seconds} s")


def test_upload_watch_compare_download(server, browser, tmp_path):
    base, token, out = server
    driver, downloads = browser
    # public-domain pictures only (the screenshot goes into docs/)
    files = [make_demo_face(tmp_path / "in" / "face.png"),
             make_frame(tmp_path / "in" / "street.png")]

    driver.get(f"{base}/")  # no token: refused
    assert "403" in driver.find_element(By.TAG_NAME, "body").text
    driver.get(f"{base}/?token={token}")
    # the page re-renders cards (a zoom change, a finished job): an element found just before
    # may be replaced by the time it is read, so a wait tries again rather than failing
    wait = WebDriverWait(driver, 240, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: d.find_element(By.ID, "notice").text)
    assert "synthesised" in driver.find_element(By.ID, "notice").text
    model = driver.find_element(By.ID, "model")
    assert model.get_attribute("value") == "facesr-default"

    driver.find_element(By.ID, "files").send_keys("\n".join(map(str, files)))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chosen li")) == len(files)
    driver.find_element(By.ID, "start").click()
    wait.until(lambda d: d.find_element(By.ID, "job-line").get_attribute("data-state")
               in ("done", "failed"))
    assert driver.find_element(By.ID, "job-line").get_attribute("data-state") == "done"
    bar = driver.find_element(By.ID, "upload-bar")  # the upload showed its progress, then left
    assert bar.get_attribute("data-sent") == "1" and float(bar.get_attribute("value")) == 1
    assert not bar.is_displayed()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card .compare"))
    cards = driver.find_elements(By.CSS_SELECTOR, ".card")
    records = sorted(out.glob("*.json"))
    n_faces = sum(max(len(json.loads(p.read_text())["faces"]), 1) for p in records)
    assert len(cards) == n_faces
    card = cards[0]
    assert "synthesised" in card.find_element(By.CSS_SELECTOR, ".notice").text
    # the frame's face: its detection score, and the whole frame with its box
    assert any("detection score 0." in c.text for c in cards)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".frame .box")) == 1

    # the before/after slider
    clip = card.find_element(By.CSS_SELECTOR, ".compare .after")
    wait.until(lambda d: clip.size["width"] > 0)
    before = clip.size["width"]
    slider = card.find_element(By.CSS_SELECTOR, "input.slider")
    slider.send_keys(*[Keys.ARROW_LEFT] * 30)
    assert clip.size["width"] < before
    width = driver.find_element(By.CSS_SELECTOR, ".card .compare img.after-img").size["width"]
    Select = __import__("selenium.webdriver.support.ui", fromlist=["Select"]).Select
    Select(driver.find_element(By.ID, "zoom")).select_by_value("2")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".card .compare img.after-img").size[
        "width"] == 2 * width)

    shot = os.environ.get("FACESR_APP_SCREENSHOT")
    if shot:
        Select(driver.find_element(By.ID, "zoom")).select_by_value("1")
        driver.set_window_size(1400, 1900)
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(1.0)
        driver.save_screenshot(shot)

    # the zip: every record and the outputs it lists
    driver.find_element(By.ID, "zip").click()
    z = zipfile.ZipFile(io.BytesIO(_wait_for_zip(downloads).read_bytes()))
    want = set()
    for p in records:
        want |= {p.name, *(o["file"] for o in json.loads(p.read_text())["outputs"])}
    assert set(z.namelist()) == want
    for name in z.namelist():
        assert z.read(name) == (out / name).read_bytes()

    # a corrupt file: the command's one-line error on the page
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    driver.find_element(By.ID, "files").send_keys(str(bad))
    driver.find_element(By.ID, "start").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#rejected li"))
    assert driver.find_element(By.CSS_SELECTOR, "#rejected li").text == (
        "broken.png: cannot decode image (corrupt, truncated or unsupported format)")
    assert "nothing to do" in driver.find_element(By.ID, "busy").text

    # the history lists the run
    assert "facesr upscale" in driver.find_element(By.ID, "history").text
