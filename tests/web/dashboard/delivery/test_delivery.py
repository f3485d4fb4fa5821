"""The four deliveries end to end in-process: the page, its headers, and the vendor's answer."""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import APIKEY_JWT_PATH
from bff.settings import DeliveryMode, Settings, UpstreamSettings
from tests.web.auth.test_session_ended import CLEARED, Hold
from tests.web.conftest import PUBLIC_URL
from tests.web.dashboard.fixtures import (
    DASHBOARD_URL,
    VENDOR_URL,
    RecordingVendor,
    heading_for,
    sign_in_analyst,
    vendor_heading,
)
from tests.web.helpers import call, form_token, services_of

_IFRAME_SRC = re.compile(r'<iframe class="dashboard"[^>]* src="([^"]*)"')
_NONCE = re.compile(r"'nonce-([^']+)'")
_TOKEN_FIELD = re.compile(r'name="token" value="([^"]+)"')


def iframe_src(page: str) -> str:
    found = _IFRAME_SRC.search(page)
    assert found, "no dashboard iframe"
    return html.unescape(found.group(1))


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def open_dashboard(
    client: TestClient, vendor: RecordingVendor, delivery: DeliveryMode, page: str
) -> str:
    if delivery == "proxy":
        return client.get(iframe_src(page)).text
    assert client.portal is not None
    return client.portal.call(open_in_vendor, vendor, delivery, page)


async def open_in_vendor(vendor: RecordingVendor, delivery: DeliveryMode, page: str) -> str:
    """What the browser's iframe would show, fetched the way that delivery makes it fetch."""
    src = iframe_src(page)
    async with httpx2.AsyncClient(transport=vendor) as browser:
        if delivery == "post":
            field = _TOKEN_FIELD.search(page)
            assert field, "no token field on a post-delivery page"
            token = html.unescape(field.group(1))
            answer = await browser.post(DASHBOARD_URL, data={"token": token})
            return answer.text
        if delivery == "fragment":
            # What the vendor's app.js does: read the fragment, ask insights.json with it.
            token = unquote(src.split("#token=", 1)[1])
            answer = await browser.get(
                f"{DASHBOARD_URL}insights.json", headers={"Authorization": f"Bearer {token}"}
            )
            return f"<h1>{answer.json()['heading']}</h1>"
        return (await browser.get(src)).text


def test_each_delivery_shows_the_right_tenant(
    client: TestClient, vendor: RecordingVendor, delivery: DeliveryMode
) -> None:
    sign_in_analyst(client)
    page = client.get("/")
    assert page.status_code == 200
    shown = open_dashboard(client, vendor, delivery, page.text)
    assert vendor_heading(shown) == heading_for(("acme", "north"))

    client.post("/scope", data={"scope": "globex/emea", "csrf_token": form_token(page.text)})
    page = client.get("/")
    shown = open_dashboard(client, vendor, delivery, page.text)
    assert vendor_heading(shown) == heading_for(("globex", "emea"))


def test_token_pages_are_no_store_no_referrer_with_a_strict_policy(
    client: TestClient, delivery: DeliveryMode
) -> None:
    sign_in_analyst(client)
    page = client.get("/")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = directives(page.headers["content-security-policy"])
    expected_frame = ["'self'"] if delivery == "proxy" else [VENDOR_URL]
    assert policy["frame-src"] == expected_frame
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    expected_forms = ["'self'", VENDOR_URL] if delivery == "post" else ["'self'"]
    assert policy["form-action"] == expected_forms
    (nonce,) = {found for found in _NONCE.findall(page.headers["content-security-policy"])}
    for script in re.findall(r"<script[^>]*>", page.text):
        assert f'nonce="{nonce}"' in script
    assert ("<script" in page.text) == (delivery == "post")


def test_iframe_source_per_mode(client: TestClient, delivery: DeliveryMode) -> None:
    sign_in_analyst(client)
    src = iframe_src(client.get("/").text)
    if delivery == "proxy":
        assert src == "/vendor/"
    elif delivery == "post":
        assert src == "about:blank"
    elif delivery == "fragment":
        assert src.startswith(f"{DASHBOARD_URL}#token=ey")
    else:
        assert src.startswith(f"{DASHBOARD_URL}?token=ey")


def test_query_mode_warns_at_start_up(
    app: Starlette, delivery: DeliveryMode, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bff.web.dashboard.delivery"), TestClient(app):
        pass
    warned = any("BFF_DASHBOARD_DELIVERY=query" in r.getMessage() for r in caplog.records)
    assert warned == (delivery == "query")


@pytest.mark.parametrize("delivery", ["proxy"], indirect=True)
class TestProxyInTheApp:
    def test_needs_a_session(self, client: TestClient, vendor: RecordingVendor) -> None:
        response = client.get("/vendor/")
        assert response.status_code == 401
        assert 'href="/login" target="_top"' in response.text
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
        assert vendor.requests == []

    def test_uses_the_sessions_pair_and_no_browser_credentials(
        self, client: TestClient, vendor: RecordingVendor
    ) -> None:
        sign_in_analyst(client)
        client.get("/")
        vendor.requests.clear()
        shown = client.get(
            "/vendor/",
            headers={
                "Authorization": "Bearer forged",
                "X-Tenant-Id": "initech",
                "X-Sub-Tenant-Id": "west",
            },
            params={"tenant": "initech"},
        )
        assert vendor_heading(shown.text) == heading_for(("acme", "north"))
        (forwarded,) = vendor.requests
        assert forwarded.url.host == "vendor.test"
        assert "cookie" not in forwarded.headers
        # The session's pair, set by the proxy; the browser's tenant headers are gone.
        assert forwarded.headers.get_list("x-tenant-id") == ["acme"]
        assert forwarded.headers.get_list("x-sub-tenant-id") == ["north"]
        assert forwarded.headers.get_list("authorization") == [f"Bearer {vendor.tokens[-1]}"]
        assert "set-cookie" not in shown.headers

    def test_vendor_trouble_is_a_framed_self_retrying_notice(
        self, client: TestClient, vendor: RecordingVendor
    ) -> None:
        sign_in_analyst(client)
        vendor.config.fault = Fault.rate_limit("9")
        response = client.get("/vendor/")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "9"
        assert '<meta http-equiv="refresh" content="9">' in response.text
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
        vendor.config.fault = None

    def test_ssrf_through_the_app_reaches_no_other_host(
        self, client: TestClient, vendor: RecordingVendor
    ) -> None:
        sign_in_analyst(client)
        client.get("/")
        for raw in (
            b"/vendor/..%2f..%2fapi/v1/partner/dashboard/auth/token",
            b"/vendor/%2e%2e/api/v1/partner/dashboard/auth/token",
            b"/vendor//evil.example/",
            b"/vendor/\\evil.example/",
            b"/vendor/http://evil.example/",
        ):
            response = client.get(httpx2.URL("https://testserver").copy_with(raw_path=raw))
            assert response.status_code == 400, raw
        assert vendor.hosts() == {"vendor.test"}
        assert all(
            r.url.path.startswith("/dashboard/") or "auth/token" in r.url.path
            for r in vendor.requests
        )
        token_calls = [r for r in vendor.requests if r.url.path.endswith("auth/token")]
        assert all("x-api-key" in r.headers for r in token_calls)  # only the broker's own calls

    def test_a_token_revoked_upstream_is_purged_and_the_request_sent_again(
        self, client: TestClient, vendor: RecordingVendor
    ) -> None:
        sign_in_analyst(client)
        client.get("/")
        (first,) = vendor.tokens
        vendor.requests.clear()
        revoke_every_token(vendor)

        shown = client.get("/vendor/")
        assert shown.status_code == 200
        assert vendor_heading(shown.text) == heading_for(("acme", "north"))
        first_try, token_call, second_try = vendor.requests
        assert first_try.headers["authorization"] == f"Bearer {first}"
        assert token_call.url.path.endswith("/auth/token")
        assert second_try.headers["authorization"] == f"Bearer {vendor.tokens[-1]}"
        assert vendor.tokens[-1] != first
        assert refusals(client, "retried") == 1

    def test_a_token_obtained_after_the_request_started_is_not_purged(
        self,
        client: TestClient,
        vendor: RecordingVendor,
        monkeypatch: pytest.MonkeyPatch,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Two requests refused with the same token: the first renews it; the second,
        held until then, retries with that fresh token instead of purging it too."""
        sign_in_analyst(client)
        client.get("/")
        revoke_every_token(vendor)
        reached, release = call(client, _events)
        answer = vendor.handle_async_request

        async def hold_the_second_refusal(request: httpx2.Request) -> httpx2.Response:
            response = await answer(request)
            if request.url.query == b"second=1" and not reached.is_set():
                assert response.status_code == 401
                reached.set()
                await release.wait()
            return response

        monkeypatch.setattr(vendor, "handle_async_request", hold_the_second_refusal)
        second = pool.submit(client.get, "/vendor/insights.json?second=1")
        try:
            call(client, reached.wait)
            first = client.get("/vendor/insights.json")
        finally:
            call(client, _setter(release))
        assert first.status_code == 200
        assert second.result().status_code == 200
        _, fresh = vendor.tokens  # no third token: the fresh one was kept
        carried = [r.headers.get("authorization") for r in vendor.requests]
        assert carried.count(f"Bearer {fresh}") == 2
        assert refusals(client, "retried") == 2

    def test_a_session_ending_during_a_proxied_request_gets_the_framed_notice(
        self,
        client: TestClient,
        vendor: RecordingVendor,
        monkeypatch: pytest.MonkeyPatch,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Held after the mappings were read, just before the first pair is stored in the
        session; the session is revoked meanwhile, so storing it raises SessionEnded."""
        user_id = sign_in_analyst(client)
        mappings = services_of(client).mappings
        hold = Hold(client)
        monkeypatch.setattr(mappings, "pairs", hold.wrap_pairs(mappings.pairs))

        running = pool.submit(client.get, "/vendor/")
        try:
            hold.wait_reached()
            assert call(client, lambda: services_of(client).sessions.revoke_user(user_id)) == 1
        finally:
            hold.let_go()
        response = running.result()
        assert response.status_code == 401
        assert "Your session has ended." in response.text
        assert 'href="/login?reason=expired" target="_top"' in response.text
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
        assert CLEARED in response.headers["set-cookie"]
        assert vendor.requests == []


def test_a_connection_wide_token_revoked_upstream_is_purged_for_the_connection(
    settings: Settings, clock: ManualClock, vendor: RecordingVendor
) -> None:
    """An apikey-jwt token serves every pair (proxy mode pins the pair in headers):
    the refused token is the connection's, so purging one pair would keep it."""
    wide = dataclasses.replace(
        settings,
        upstream=UpstreamSettings(
            kind="apikey-jwt",
            base_url=VENDOR_URL,
            api_key=vendor.config.api_key,
            auth_url=APIKEY_JWT_PATH,
        ),
        dashboard_url=DASHBOARD_URL,
        dashboard_delivery="proxy",
    )
    app = create_app(wide, clock=clock, vendor_transport=vendor)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        sign_in_analyst(client)
        client.get("/")
        revoke_every_token(vendor)
        vendor.requests.clear()
        shown = client.get("/vendor/")
        assert shown.status_code == 200
        # The vendor reads the pair from the headers the proxy pinned.
        assert vendor_heading(shown.text) == heading_for(("acme", "north"))
        assert vendor.config.calls["authenticate"] == 2
        forwarded = [r for r in vendor.requests if r.url.path == "/dashboard/"]
        assert [r.headers.get_list("x-tenant-id") for r in forwarded] == [["acme"]] * 2
        assert refusals(client, "retried") == 1


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def revoke_every_token(vendor: RecordingVendor) -> None:
    """The vendor revokes every token it has issued (a new signing key)."""
    vendor.config.signing_key = f"rotated-{vendor.config.signing_key}"


def refusals(client: TestClient, outcome: str) -> float:
    registry = services_of(client).registry
    found = registry.get_sample_value("bff_proxy_token_refusals_total", {"outcome": outcome})
    return found or 0.0


async def _events() -> tuple[anyio.Event, anyio.Event]:
    return anyio.Event(), anyio.Event()


def _setter(event: anyio.Event) -> Callable[[], Awaitable[None]]:
    async def set_it() -> None:
        event.set()

    return set_it
