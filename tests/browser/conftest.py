"""A real headless Chromium (Debian's chromium + chromium-driver) driving the admin.

The tests are marked `browser`. Without the browser they skip locally, and fail when
LEADML_REQUIRE_BROWSER is set (CI installs the packages and sets it). A failed test
leaves a screenshot in LEADML_SCREENSHOT_DIR (default: var/screenshots).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT_DIR = Path(os.environ.get("LEADML_SCREENSHOT_DIR") or Path(settings.BASE_DIR) / "var" / "screenshots")


@pytest.fixture(scope="session")
def browser_binaries() -> tuple[str, str]:
    if not (CHROMIUM and CHROMEDRIVER):
        message = "chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("LEADML_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(browser_binaries: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser_binaries
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    request.node.leadml_browser = driver
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    driver = getattr(item, "leadml_browser", None)
    if report.when == "call" and report.failed and driver is not None:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{item.name}.png"
        try:
            driver.save_screenshot(str(path))
            report.sections.append(("screenshot", str(path)))
        except Exception as error:  # a dead browser must not hide the test's own failure
            report.sections.append(("screenshot", f"could not save: {error}"))
    return report
