"""The camera report opens in headless Chromium: every picture loads, the tables are there.

Needs Debian's ``chromium`` and ``chromium-driver`` (or ``FACESR_CHROMIUM`` /
``FACESR_CHROMEDRIVER``) and the ``selenium`` client; skips without them. With
``FACESR_ADAPT_SCREENSHOT=PATH`` the test saves a screenshot of the page there.
"""

from __future__ import annotations

import json
import os

import pytest

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="needs the selenium client: pip install selenium")
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow  # needs Chromium: the `browser` fixture skips without it


def test_report_opens_with_every_picture_and_table(camera, browser):
    out, _ = camera
    driver, _ = browser
    driver.set_window_size(1100, 1400)
    driver.get((out / "report.html").as_uri())
    rep = json.loads((out / "report.json").read_text())
    assert driver.find_element(By.TAG_NAME, "h1").text == "Camera profile"
    rows = driver.find_elements(By.CSS_SELECTOR, "#synthetic tr")
    assert len(rows) == 1 + len(rep["synthetic"]["methods"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#kernels tr")) == 1 + len(rep["kernels"])
    images = driver.find_elements(By.TAG_NAME, "img")
    assert images
    for img in images:  # every picture the page names is there and decodes
        assert driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img), \
            img.get_attribute("src")
    vals = [r for r in rep["curve"] if "val/psnr_y" in r]
    if len(vals) >= 2:
        assert driver.find_elements(By.CSS_SELECTOR, "svg polyline")
    else:
        assert "Too few validations" in driver.page_source
    shot = os.environ.get("FACESR_ADAPT_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)
