"""The vendor proxy on its own origin, in a real Chromium (issue 10, part 1).

``bff demo`` serves bff on ``http://127.0.0.1:PORT`` and the proxy on
``http://localhost:PORT``. The demo vendor's hostile page (``probe.html``) runs in
the dashboard's frame and tries what vendor code could do against bff: read the
framing page's document, and fetch bff's pages with the user's cookies. With the
proxy origin every attempt fails; the same probe on the same-origin proxy
(development's fallback) succeeds, which shows the probe can tell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Frame, Page, Playwright, expect

from bff.demo.run import Demo, running_demo
from bff.web.dashboard.delivery import FRAME_NAME
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000


def sign_in(page: Page, demo: Demo) -> tuple[str, str]:
    analyst = next(account for account in demo.accounts if account.scopes)
    page.goto(f"{demo.url}/login")
    page.fill("#email", analyst.email)
    page.fill("#password", analyst.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{demo.url}/")
    pair = analyst.scopes[0]
    heading = f"Insights for tenant {pair[0]} / sub-tenant {pair[1]}"
    expect(page.frame_locator("iframe.dashboard").locator("h1")).to_have_text(heading)
    return pair


def dashboard_frame(page: Page) -> Frame:
    frame = page.frame(name=FRAME_NAME)
    assert frame is not None
    return frame


def probe(page: Page, demo: Demo, vendor_base: str) -> dict[str, Any]:
    """Navigate the dashboard frame to the hostile page and read what it found."""
    dashboard_frame(page).goto(f"{vendor_base}/vendor/probe.html?bff={demo.url}")
    result = page.frame_locator("iframe.dashboard").locator("#result")
    expect(result).not_to_have_text("")
    found: dict[str, Any] = json.loads(result.inner_text())
    return found


def test_vendor_code_on_the_proxy_origin_cannot_reach_bff(
    browser: Browser, tmp_path: Path, artifacts: Path
) -> None:
    with running_demo(port=0, delivery="proxy", directory=tmp_path) as demo:
        assert demo.proxy_url is not None
        assert demo.proxy_url != demo.url
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            sign_in(page, demo)
            # The dashboard itself came from the proxy origin, through the handoff.
            assert dashboard_frame(page).url == f"{demo.proxy_url}/vendor/"

            found = probe(page, demo, demo.proxy_url)
            page.screenshot(path=artifacts / "proxy-origin-probe.png")

            assert found["parent"] == {"read": False, "error": "SecurityError"}
            assert found["top"] == {"read": False, "error": "SecurityError"}
            # The proxy session cookie is HttpOnly; bff's cookies are another host's.
            assert found["cookie"] == ""
            # bff answers no CORS: a credentialed read of its pages fails outright...
            assert found["bffPage"] == {"error": "TypeError"}
            assert found["bffAdmin"] == {"error": "TypeError"}
            # ...and without CORS the answer is opaque: no status, no body.
            assert found["bffPageNoCors"] == {"type": "opaque", "status": 0, "body": ""}
            # The proxy origin itself serves nothing of bff's.
            for name in ("ownRoot", "ownLogin", "ownAdmin", "ownApi"):
                assert found[name]["status"] == 404, name
                assert found[name]["body"] == "Not Found", name
            # The page around it is untouched and still signed in.
            expect(page).to_have_url(f"{demo.url}/")
            assert page.locator("header form[action='/logout']").count() == 1
        finally:
            context.close()


def test_the_same_probe_reads_bff_on_the_same_origin_proxy(
    browser: Browser, tmp_path: Path
) -> None:
    """Development's same-origin proxy: what the proxy origin prevents, shown happening."""
    with running_demo(
        port=0, delivery="proxy", directory=tmp_path, separate_proxy_origin=False
    ) as demo:
        assert demo.proxy_url is None
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            sign_in(page, demo)
            found = probe(page, demo, demo.url)
            assert found["parent"]["read"] is True
            assert found["parent"]["forms"] >= 1
            assert found["ownRoot"]["status"] == 200
        finally:
            context.close()


def test_after_sign_out_in_another_tab_the_proxy_session_is_refused(
    browser: Browser, tmp_path: Path
) -> None:
    with running_demo(port=0, delivery="proxy", directory=tmp_path) as demo:
        assert demo.proxy_url is not None
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            sign_in(page, demo)
            other = context.new_page()
            other.goto(f"{demo.url}/")
            other.click("header form[action='/logout'] button")
            expect(other).not_to_have_url(f"{demo.url}/")

            # The frame still holds its (partitioned) proxy cookie; its session has ended.
            response = dashboard_frame(page).goto(f"{demo.proxy_url}/vendor/")
            assert response is not None and response.status == 401
            frame = page.frame_locator("iframe.dashboard")
            expect(frame.locator("h1")).to_have_text("Session ended")
        finally:
            context.close()


def test_embedded_in_a_partner_page_the_proxy_cookie_is_partitioned_under_its_site(
    browser: Browser, tmp_path: Path
) -> None:
    with running_demo(port=0, delivery="proxy", directory=tmp_path, partner_page=True) as demo:
        assert demo.proxy_url is not None and demo.partner_url is not None
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            page.goto(f"{demo.partner_url}/")
            session = page.context.new_cdp_session(page)
            session.send(
                "Network.setCookieControls",
                {
                    "enableThirdPartyCookieRestriction": True,
                    "disableThirdPartyCookieMetadata": True,
                    "disableThirdPartyCookieHeuristics": True,
                },
            )
            page.reload()
            embed = page.frame_locator("#insights iframe")
            vendor = embed.frame_locator("#bff-embed-content iframe")
            pair = next(iter(demo.partner.pairs)) if demo.partner else None
            assert pair is not None
            heading = f"Insights for tenant {pair[0]} / sub-tenant {pair[1]}"
            expect(vendor.locator("h1")).to_have_text(heading)
            vendor_frame = page.frame(name=FRAME_NAME)
            assert vendor_frame is not None
            assert vendor_frame.url == f"{demo.proxy_url}/vendor/"
            proxy_cookies = [
                cookie
                for cookie in context.cookies(demo.proxy_url)
                if cookie["name"] == "bff_proxy_session"
            ]
            assert len(proxy_cookies) == 1
            cookie = proxy_cookies[0]
            assert cookie.get("partitionKey") == demo.partner_url.rsplit(":", 1)[0]
            assert cookie["httpOnly"] is True
            assert cookie["secure"] is True
            assert cookie["sameSite"] == "None"
        finally:
            context.close()


def test_where_the_proxy_origin_keeps_no_cookie_the_frame_says_so(
    playwright: Playwright, tmp_path: Path
) -> None:
    with running_demo(port=0, delivery="proxy", directory=tmp_path / "demo") as demo:
        assert demo.proxy_url is not None
        preferences = {
            "profile": {
                "content_settings": {
                    "exceptions": {"cookies": {f"{demo.proxy_url},*": {"setting": 2}}}
                }
            }
        }
        profile = tmp_path / "profile"
        (profile / "Default").mkdir(parents=True)
        (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            analyst = next(account for account in demo.accounts if account.scopes)
            page.goto(f"{demo.url}/login")
            page.fill("#email", analyst.email)
            page.fill("#password", analyst.password)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{demo.url}/")
            frame = page.frame_locator("iframe.dashboard")
            expect(frame.locator("h1")).to_have_text("Cookies blocked")
            expect(frame.locator("body")).to_contain_text("did not keep the cookie")
            assert context.cookies(demo.proxy_url) == []
        finally:
            context.close()
