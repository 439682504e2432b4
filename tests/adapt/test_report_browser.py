"""The camera report opens in headless Chromium: every picture loads, the tables are there.

Needs Debian's ``chromium`` and ``chromium-driver`` (or ``FACESR_CHROMIUM`` /
``FACESR_CHROMEDRIVER``) and the ``selenium`` client; skips without them. With
``FACESR_ADAPT_SCREENSHOT=PATH`` the test saves a screenshot of the page there.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="needs the selenium client: pip install selenium")
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = os.environ.get("FACESR_CHROMIUM") or shutil.which("chromium") \
    or shutil.which("chromium-browser")
DRIVER = os.environ.get("FACESR_CHROMEDRIVER") or shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=(
        "needs Chromium and its driver: apt-get install -y chromium chromium-driver "
        "(or set FACESR_CHROMIUM and FACESR_CHROMEDRIVER)")),
]


def test_report_opens_with_every_picture_and_table(camera, tmp_path):
    out, _ = camera
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,1400", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER),
                              options=options)
    try:
        driver.get((out / "report.html").as_uri())
        rep = json.loads((out / "report.json").read_text())
        assert driver.find_element(By.TAG_NAME, "h1").text == "Camera profile"
        rows = driver.find_elements(By.CSS_SELECTOR, "#synthetic tr")
        assert len(rows) == 1 + len(rep["synthetic"]["methods"])
        assert len(driver.find_elements(By.CSS_SELECTOR, "#kernels tr")) == \
            1 + len(rep["kernels"])
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
    finally:
        driver.quit()
