"""Chromium for the owner app's browser tests: Debian's ``chromium`` and ``chromium-driver``
driven by Selenium with explicit paths (nothing downloads a browser). ``scripts/test`` installs
them when missing. Screenshots go to ``$DOORWARD_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MISSING = ("Chromium is missing: apt-get install chromium chromium-driver (scripts/test does "
           "when run as root)")


def _driver(downloads: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--autoplay-policy=no-user-gesture-required",
                "--mute-audio", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "profile.default_content_setting_values.notifications": 1})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope="session")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session (starting one costs ~1 s)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    pytest.importorskip("selenium")
    driver = _driver(tmp_path_factory.mktemp("downloads"))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("DOORWARD_ARTIFACTS")
    path = Path(where) / "owner-app" if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(driver: Any, artifacts: Path, name: str) -> Path:
    out = artifacts / f"{name}.png"
    driver.save_screenshot(str(out))
    return out
