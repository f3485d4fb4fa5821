"""Browser tests: Playwright driving the system Chromium, never a downloaded one.

``BFF_TEST_CHROMIUM`` names the browser (default ``/usr/bin/chromium``); when it
is missing the tests are skipped with that reason. One browser serves a whole
module; each test gets a fresh context (its own cookies and storage).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> Path:
    return Path(os.environ.get("BFF_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    executable = chromium_path()
    if not os.access(executable, os.X_OK):
        reason = f"no Chromium at {executable} (set BFF_TEST_CHROMIUM or run scripts/install)"
        # Asked for by name (CI sets it): a missing browser is a failure, not a skip.
        if "BFF_TEST_CHROMIUM" in os.environ:
            pytest.fail(reason)
        print(f"skipping browser tests: {reason}")
        pytest.skip(reason)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # launch() gives every browser a fresh temporary profile (user-data dir).
    browser = playwright.chromium.launch(
        executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
