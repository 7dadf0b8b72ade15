"""The browser harness: Debian's Chromium driven by Selenium through /usr/bin/chromedriver (Selenium Manager
never downloads anything), against a studio served on a loopback port for the session stack.

Screenshots of the pages go to ``docs/studio/`` (``APPKIT_STUDIO_SCREENSHOTS=DIR`` writes them elsewhere).
Without Chromium the browser tests are skipped, except under CI (``CI=true``), where ``.ci/run`` installs
it and a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, StackHandle

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900")


def screenshot_dir() -> Path:
    configured = os.environ.get("APPKIT_STUDIO_SCREENSHOTS")
    path = Path(configured) if configured else REPO / "docs" / "studio"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def downloads() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="studio-downloads-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(downloads: Path) -> Iterator[Any]:
    """One headless Chromium for the session, with a fresh profile and downloads into ``downloads``."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them with apt)")
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="studio-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("unhandledPromptBehavior", "accept")  # the pages' data-confirm dialogs
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def studio_url(stack: StackHandle) -> Iterator[str]:
    """The studio for the session stack, served by uvicorn on a free loopback port."""
    from appkit.studio import StudioServer, StudioTarget

    target = StudioTarget(api_url=stack.api_url, service_role_key=stack.service_role_key, db_url=stack.db_url,
                          anon_key=stack.anon_key, jwt_secret=stack.jwt_secret or None, workdir=stack.workdir,
                          local=stack.workdir is not None)
    server = StudioServer(target, port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def shot(browser: Any) -> Callable[[str], Path]:
    """``shot("jobs")`` saves the browser's current page as ``<screenshots>/jobs.png``."""
    def take(name: str) -> Path:
        path = screenshot_dir() / f"{name}.png"
        browser.save_screenshot(str(path))
        return path
    return take


def wait_for(check: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (and return it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
