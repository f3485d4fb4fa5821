"""A real Chromium against the real servers, once per delivery mode: sign in, see the
right tenant inside the iframe, switch, sign out, and replay the old cookie."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from bff.demo.run import running_demo
from bff.settings import DELIVERY_MODES, DeliveryMode

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000


def heading(pair: tuple[str, str]) -> str:
    return f"Insights for tenant {pair[0]} / sub-tenant {pair[1]}"


def expect_dashboard_for(page: Page, pair: tuple[str, str]) -> None:
    frame = page.frame_locator("iframe.dashboard")
    expect(frame.locator("h1")).to_have_text(heading(pair), timeout=TIMEOUT_MS)


@pytest.mark.parametrize("delivery", DELIVERY_MODES)
def test_sign_in_switch_sign_out_and_replay(
    browser: Browser, delivery: DeliveryMode, tmp_path: Path, artifacts: Path
) -> None:
    with running_demo(port=0, delivery=delivery, directory=tmp_path) as demo:
        analyst = next(account for account in demo.accounts if len(account.scopes) > 1)
        first, second = analyst.scopes[0], analyst.scopes[-1]
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            page.goto(f"{demo.url}/")
            expect(page).to_have_url(f"{demo.url}/login")
            page.fill("#email", analyst.email)
            page.fill("#password", analyst.password)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{demo.url}/")
            expect_dashboard_for(page, first)
            page.screenshot(path=artifacts / f"dashboard-{delivery}-1-signed-in.png")

            page.select_option("#scope", f"{second[0]}/{second[1]}")
            page.click(".scope-switcher button[type=submit]")
            expect(page.locator("#scope")).to_have_value(f"{second[0]}/{second[1]}")
            expect_dashboard_for(page, second)
            page.screenshot(path=artifacts / f"dashboard-{delivery}-2-switched.png")

            before_logout = context.cookies()
            assert any(cookie["name"].endswith("bff_session") for cookie in before_logout)
            page.click("header form[action='/logout'] button")
            expect(page).not_to_have_url(f"{demo.url}/")
            expect(page.locator("iframe.dashboard")).to_have_count(0)

            context.add_cookies(before_logout)  # type: ignore[arg-type]
            page.goto(f"{demo.url}/")
            expect(page).to_have_url(f"{demo.url}/login?reason=expired")
            expect(page.locator("iframe.dashboard")).to_have_count(0)
            page.screenshot(path=artifacts / f"dashboard-{delivery}-3-replayed-cookie.png")
        finally:
            context.close()
