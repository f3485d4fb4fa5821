"""``BFF_PROXY_ORIGIN``: the proxy on an origin of its own, the handoff, the proxy session.

bff's origin is ``https://testserver``, the proxy origin ``https://proxy.testserver``:
one app, two clients with their own cookie jars, as a browser keeps host-only
cookies apart. The vendor is the demo vendor in-process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from bff.app import create_app
from bff.cli import main
from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.errors import ConfigurationError, NotFoundError
from bff.metrics import HttpMetrics
from bff.operations import launches
from bff.operations.mappings import unmap_pair
from bff.settings import Settings
from bff.web.dashboard.delivery import VENDOR_FRAME_PATH, check_proxy_origin
from bff.web.dashboard.handoff import (
    HANDOFF_PATH,
    ProxyPass,
    ProxySeal,
    ProxySessions,
    partner_origin,
)
from bff.web.dashboard.proxy_origin import ProxyOriginApp, ProxyOriginDispatch
from tests.web.dashboard.fixtures import (
    ANALYST,
    RecordingVendor,
    dashboard_app,
    heading_for,
    sign_in_analyst,
    vendor_heading,
)
from tests.web.helpers import call, services_of

PROXY_ORIGIN = "https://proxy.testserver"
PUBLIC_ORIGIN = "https://testserver"
COOKIE = "__Host-bff_proxy_session"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "iframe"}
FIRST, SECOND = ("acme", "north"), ("acme", "south")


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return dataclasses.replace(base_settings, public_url=PUBLIC_ORIGIN, proxy_origin=PROXY_ORIGIN)


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return dashboard_app(settings, clock, vendor, "proxy")


@pytest.fixture
def proxy(client: TestClient) -> TestClient:
    """The same running app, reached at the proxy origin with a cookie jar of its own."""
    other = TestClient(client.app, base_url=PROXY_ORIGIN, follow_redirects=False)
    other.portal = client.portal
    other.app_state.update(client.app_state)
    return other


def handoff_url(client: TestClient) -> str:
    """What the signed-in dashboard's frame is sent to: the proxy origin's handoff."""
    started = client.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith(f"{PROXY_ORIGIN}{HANDOFF_PATH}?ticket=")
    return location


def ticket_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["ticket"][0]


def handed_over(client: TestClient, proxy: TestClient) -> httpx2.Response:
    """The handoff redeemed on the proxy origin (its 303)."""
    redeemed = proxy.get(handoff_url(client))
    assert redeemed.status_code == 303, redeemed.text
    assert redeemed.headers["location"] == "/vendor/"
    return redeemed


# The page and the handoff.


def test_the_dashboard_frames_the_handoff_and_allows_the_proxy_origin(client: TestClient) -> None:
    sign_in_analyst(client)
    page = client.get("/")
    assert page.status_code == 200
    assert f'src="{VENDOR_FRAME_PATH}"' in page.text
    policy = page.headers["content-security-policy"]
    assert f"frame-src 'self' {PROXY_ORIGIN};" in policy


def test_the_whole_handoff_shows_the_dashboard_on_the_proxy_origin(
    client: TestClient, proxy: TestClient, vendor: RecordingVendor
) -> None:
    sign_in_analyst(client)
    started = client.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN)
    assert started.status_code == 303
    assert started.headers["cache-control"] == "no-store"
    assert started.headers["referrer-policy"] == "no-referrer"

    redeemed = proxy.get(started.headers["location"])
    assert redeemed.status_code == 303
    assert redeemed.headers["location"] == "/vendor/"
    [cookie] = redeemed.headers.get_list("set-cookie")
    name, _, rest = cookie.partition("=")
    assert name == COOKIE
    attributes = {part.strip().split("=")[0] for part in rest.split(";")[1:]}
    assert attributes == {"Path", "Max-Age", "Secure", "HttpOnly", "SameSite", "Partitioned"}
    assert "SameSite=None" in cookie and "Path=/;" in cookie and "Domain" not in cookie

    shown = proxy.get("/vendor/")
    assert shown.status_code == 200
    assert vendor_heading(shown.text) == heading_for(FIRST)
    policy = " ".join(shown.headers.get_list("content-security-policy"))
    assert f"frame-ancestors 'self' {PUBLIC_ORIGIN}" in policy
    assert "x-frame-options" not in shown.headers
    assert shown.headers["x-request-id"]
    # The vendor saw the pinned pair and bff's token, never a browser cookie.
    forwarded = [r for r in vendor.requests if r.url.path == "/dashboard/"][-1]
    assert forwarded.headers["x-tenant-id"] == FIRST[0]
    assert "cookie" not in forwarded.headers


def test_a_ticket_is_used_once(client: TestClient, proxy: TestClient) -> None:
    sign_in_analyst(client)
    url = handoff_url(client)
    assert proxy.get(url).status_code == 303
    again = proxy.get(url)
    assert again.status_code == 410
    assert "expired or was already used" in again.text
    assert "set-cookie" not in again.headers


def test_a_ticket_expires_after_a_minute(
    client: TestClient, proxy: TestClient, clock: ManualClock
) -> None:
    sign_in_analyst(client)
    url = handoff_url(client)
    clock.advance(61)
    assert proxy.get(url).status_code == 410


def test_a_head_request_does_not_use_the_ticket_up(client: TestClient, proxy: TestClient) -> None:
    sign_in_analyst(client)
    url = handoff_url(client)
    assert proxy.head(url).status_code == 405
    assert proxy.get(url).status_code == 303


@pytest.mark.parametrize("ticket", ["", "x", "A" * 5000])
def test_a_made_up_ticket_is_refused(proxy: TestClient, ticket: str) -> None:
    assert proxy.get(HANDOFF_PATH, params={"ticket": ticket}).status_code == 410


def test_of_two_redemptions_at_once_exactly_one_wins(client: TestClient, proxy: TestClient) -> None:
    sign_in_analyst(client)
    ticket = ticket_of(handoff_url(client))
    svc = services_of(client)

    async def both() -> list[launches.Handoff | BaseException]:
        outcomes = await asyncio.gather(
            launches.redeem_handoff(svc.database, ticket, now=svc.clock.now()),
            launches.redeem_handoff(svc.database, ticket, now=svc.clock.now()),
            return_exceptions=True,
        )
        return list(outcomes)

    outcomes = call(client, both)
    assert sum(isinstance(o, launches.Handoff) for o in outcomes) == 1
    assert sum(isinstance(o, NotFoundError) for o in outcomes) == 1


def test_a_handoff_ticket_is_no_partner_launch_and_stays_usable(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    url = handoff_url(client)
    launch = client.get("/embed/launch", params={"ticket": ticket_of(url)})
    assert launch.status_code == 410
    assert proxy.get(url).status_code == 303


def test_a_stored_ticket_bff_did_not_seal_is_refused_and_used_up(
    client: TestClient, proxy: TestClient
) -> None:
    svc = services_of(client)
    user_id = sign_in_analyst(client)

    async def store() -> None:
        # A partner's launch row has an app; a handoff's has none.
        await launches.create_handoff(
            svc.database, "handoff-ticket", user_id, FIRST, PUBLIC_ORIGIN, now=svc.clock.now()
        )

    call(client, store)
    # Stored, but not sealed by bff for this purpose: refused, and used up.
    assert proxy.get(HANDOFF_PATH, params={"ticket": "handoff-ticket"}).status_code == 401
    assert proxy.get(HANDOFF_PATH, params={"ticket": "handoff-ticket"}).status_code == 410


# Minting: only for a signed-in page of bff's own.


def test_no_ticket_without_a_session(client: TestClient) -> None:
    refused = client.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN)
    assert refused.status_code == 401
    assert "Session ended" in refused.text
    assert "location" not in refused.headers


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none"])
def test_no_ticket_for_a_request_another_site_started(client: TestClient, site: str) -> None:
    sign_in_analyst(client)
    refused = client.get(VENDOR_FRAME_PATH, headers={"Sec-Fetch-Site": site})
    assert refused.status_code == 403
    assert "location" not in refused.headers


def test_no_ticket_for_a_user_without_mappings(client: TestClient) -> None:
    sign_in_analyst(client, pairs=())
    assert client.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN).status_code == 403


# What each origin serves.


@pytest.mark.parametrize(
    "path", ["/vendor/", "/vendor/insights.json", "/vendor/app.js", "/vendor", HANDOFF_PATH]
)
def test_bffs_own_origin_answers_404_under_vendor(client: TestClient, path: str) -> None:
    sign_in_analyst(client)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login",
        "/logout",
        "/admin/",
        "/admin/users",
        "/account/api-keys",
        "/api/",
        "/api/v1/user",
        "/api/openapi.json",
        "/embed/launch",
        "/embed/1/",
        VENDOR_FRAME_PATH,
        "/static/embed.js",
        "/healthz",
        "/metrics",
        "/scope",
    ],
)
def test_the_proxy_origin_serves_nothing_but_the_proxy(
    client: TestClient, proxy: TestClient, path: str
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    for method in ("GET", "POST"):
        answer = proxy.request(method, path)
        assert answer.status_code == 404, (method, path)
        assert answer.text == "Not Found"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_proxy_origin_answers_for_any_port_spelling_of_its_host(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    for host in ("proxy.testserver", "PROXY.testserver:443"):
        assert proxy.get("/vendor/", headers={"Host": host}).status_code == 200
        assert proxy.get("/login", headers={"Host": host}).status_code == 404
    # Another port is another origin: bff's.
    assert proxy.get("/login", headers={"Host": "proxy.testserver:8443"}).status_code == 200


@pytest.mark.parametrize(
    ("host", "proxied"),
    [
        ("proxy.example", True),
        ("proxy.example:443", True),
        ("Proxy.Example", True),
        ("proxy.example:8443", False),
        ("proxy.example:x", False),
        ("bff.example", False),
        ("proxy.example.evil", False),
        ("", False),
    ],
)
@pytest.mark.anyio
async def test_dispatch_by_host(host: str, proxied: bool) -> None:
    reached: list[str] = []

    def app(name: str) -> object:
        async def asgi(scope: object, receive: object, send: object) -> None:
            reached.append(name)

        return asgi

    dispatch = ProxyOriginDispatch(app("bff"), app("proxy"), "https://proxy.example")  # type: ignore[arg-type]
    headers = [(b"host", host.encode())] if host else []
    await dispatch({"type": "http", "headers": headers}, None, None)  # type: ignore[arg-type]
    await dispatch({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert reached == ["proxy" if proxied else "bff", "bff"]


@pytest.mark.anyio
async def test_an_error_in_the_proxy_answers_500_with_the_proxy_origins_headers(
    settings: Settings,
) -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the proxy failed")

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("/vendor/ is not routed")

    metrics = HttpMetrics(CollectorRegistry())
    app = ProxyOriginApp(routes, failing, metrics, settings, PUBLIC_ORIGIN)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/vendor/x", "headers": [], "state": {}}
    with pytest.raises(RuntimeError):
        await app(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 500
    headers = dict(sent[0]["headers"])
    assert headers[b"content-security-policy"].endswith(b"frame-ancestors 'none'")
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert len(headers[b"x-request-id"]) == 16
    assert sent[1]["body"] == b"Internal Server Error"


# The proxy session: one user, one pair, while its parent lives.


def test_without_a_proxy_cookie_the_frame_says_cookies_were_refused(proxy: TestClient) -> None:
    refused = proxy.get("/vendor/")
    assert refused.status_code == 401
    assert "did not keep the cookie" in refused.text
    assert f"frame-ancestors 'self' {PUBLIC_ORIGIN}" in refused.headers["content-security-policy"]


def test_sign_out_ends_the_proxy_session(client: TestClient, proxy: TestClient) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    assert proxy.get("/vendor/").status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert token is not None
    assert client.post("/logout", data={"csrf_token": token[1]}).status_code == 303
    ended = proxy.get("/vendor/")
    assert ended.status_code == 401
    assert "Session ended" in ended.text
    assert f'href="{PUBLIC_ORIGIN}/login?reason=expired"' in ended.text
    cleared = ended.headers["set-cookie"]
    assert cleared.startswith(f"{COOKIE}=;") and "Max-Age=0" in cleared and "Partitioned" in cleared


def test_the_proxy_session_ends_when_its_user_is_disabled(
    client: TestClient, proxy: TestClient
) -> None:
    user_id = sign_in_analyst(client)
    handed_over(client, proxy)
    call(client, lambda: services_of(client).sessions.revoke_user(user_id))
    assert proxy.get("/vendor/").status_code == 401


def test_the_proxy_session_ends_when_its_parent_expires(
    client: TestClient, proxy: TestClient, clock: ManualClock, settings: Settings
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    clock.advance(settings.session_idle_seconds + 1)
    assert proxy.get("/vendor/").status_code == 401


def test_removing_the_mapping_ends_the_proxy_sessions_pair(
    client: TestClient, proxy: TestClient, vendor: RecordingVendor
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)  # for FIRST, the active pair
    svc = services_of(client)
    # The parent moves on to another pair, so it outlives the mapping of the first.
    call(client, lambda: svc.sessions.set_scope(svc_session_id(client), SECOND))

    async def remove() -> None:
        assert await unmap_pair(svc.database, "test", ANALYST, FIRST, live=svc.live())

    call(client, remove)
    vendor.requests.clear()
    refused = proxy.get("/vendor/")
    assert refused.status_code == 403
    assert vendor.requests == []
    # The parent itself still works, on its current pair.
    assert client.get("/").status_code == 200


def test_removing_the_active_pairs_mapping_ends_the_parent_and_the_proxy_session(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    svc = services_of(client)

    async def remove() -> None:
        assert await unmap_pair(svc.database, "test", ANALYST, FIRST, live=svc.live())

    call(client, remove)
    assert proxy.get("/vendor/").status_code == 401


def test_a_proxy_session_keeps_its_pair_when_the_page_switches(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    svc = services_of(client)
    call(client, lambda: svc.sessions.set_scope(svc_session_id(client), SECOND))
    assert vendor_heading(proxy.get("/vendor/").text) == heading_for(FIRST)
    # The page's next frame hands the new pair over.
    handed_over(client, proxy)
    assert vendor_heading(proxy.get("/vendor/").text) == heading_for(SECOND)


def svc_session_id(client: TestClient) -> str:
    value = client.cookies.get("__Host-bff_session")
    session_id = services_of(client).auth.cookies.unsign_session(value)
    assert session_id is not None
    return session_id


# Cookies that cross between the origins.


def test_a_proxy_session_cookie_is_refused_by_bffs_own_origin(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    redeemed = handed_over(client, proxy)
    value = redeemed.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    stranger = TestClient(client.app, base_url=PUBLIC_ORIGIN, follow_redirects=False)
    stranger.portal = client.portal
    stranger.app_state.update(client.app_state)
    for name in (COOKIE, "__Host-bff_session", "__Host-bff_embed_session"):
        stranger.cookies.clear()
        stranger.cookies.set(name, value, domain="testserver")
        page = stranger.get("/")
        assert page.status_code == 303, name
        assert page.headers["location"].startswith("/login")
        assert stranger.get("/api/v1/user").status_code == 401, name
        assert stranger.get("/vendor/").status_code == 404, name
        assert stranger.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN).status_code == 401, name


def test_a_bff_session_cookie_or_a_ticket_is_no_proxy_session(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    session_cookie = client.cookies.get("__Host-bff_session")
    assert session_cookie
    ticket = ticket_of(handoff_url(client))
    for value in (session_cookie, ticket, "garbage", "A" * 3000):
        proxy.cookies.clear()
        proxy.cookies.set(COOKIE, value, domain="proxy.testserver")
        assert proxy.get("/vendor/").status_code == 401
    # bff's own session cookie, sent to the proxy origin, opens nothing either.
    proxy.cookies.clear()
    proxy.cookies.set("__Host-bff_session", session_cookie, domain="proxy.testserver")
    assert proxy.get("/vendor/").status_code == 401


def test_a_tampered_proxy_cookie_is_refused(client: TestClient, proxy: TestClient) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    value = proxy.cookies.get(COOKIE)
    assert value
    flipped = value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
    proxy.cookies.clear()
    proxy.cookies.set(COOKIE, flipped, domain="proxy.testserver")
    assert proxy.get("/vendor/").status_code == 401


def test_the_cookie_of_another_keys_deployment_is_refused(
    client: TestClient, proxy: TestClient, settings: Settings
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    other = ProxySessions(
        dataclasses.replace(settings, secret_keys=("another-deployment-key-" + "x1y2z3" * 5,))
    )
    assert other.seal.open("proxy-session", proxy.cookies.get(COOKIE), max_age=60, now=0) is None


# An embedded (partner) parent.


def test_an_embed_session_hands_over_and_its_partner_may_frame_the_proxy(
    client: TestClient, proxy: TestClient
) -> None:
    from tests.web.partner.test_embed import ORIGIN, launched, make_partner

    app_id = make_partner(client, pairs=(FIRST,))
    launched(client, app_id)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    assert f'src="{VENDOR_FRAME_PATH}"' in page.text
    assert PROXY_ORIGIN in page.headers["content-security-policy"]
    started = client.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN)
    assert started.status_code == 303
    assert proxy.get(started.headers["location"]).status_code == 303
    shown = proxy.get("/vendor/")
    assert shown.status_code == 200
    assert vendor_heading(shown.text) == heading_for(FIRST)
    policy = " ".join(shown.headers.get_list("content-security-policy"))
    assert f"frame-ancestors 'self' {PUBLIC_ORIGIN} {ORIGIN}" in policy


# Settings.


def test_serve_refuses_proxy_delivery_without_a_proxy_origin(base_settings: Settings) -> None:
    settings = dataclasses.replace(
        base_settings, public_url="https://bff.example", dashboard_delivery="proxy"
    )
    with pytest.raises(ConfigurationError) as refused:
        check_proxy_origin(settings)
    assert refused.value.setting == "BFF_PROXY_ORIGIN"
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("public_url", "delivery", "proxy_origin"),
    [
        ("http://127.0.0.1:8000", "proxy", None),
        ("http://localhost:8000", "proxy", None),
        ("https://bff.example", "proxy", "https://vendor-proxy.bff.example"),
        ("https://bff.example", "post", None),
    ],
)
def test_serve_allows(
    base_settings: Settings, public_url: str, delivery: str, proxy_origin: str | None
) -> None:
    settings = dataclasses.replace(
        base_settings,
        public_url=public_url,
        dashboard_delivery=delivery,  # type: ignore[arg-type]
        proxy_origin=proxy_origin,
    )
    check_proxy_origin(settings)


def test_bff_serve_exits_with_one_line_naming_the_setting(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BFF_SECRET_KEYS", "k" + "abcdefgh" * 5)
    monkeypatch.setenv("BFF_ENCRYPTION_KEYS", "e" + "abcdefgh" * 5)
    monkeypatch.setenv("BFF_PUBLIC_URL", "https://bff.example")
    monkeypatch.setenv("BFF_DASHBOARD_DELIVERY", "proxy")
    monkeypatch.setenv("BFF_DATABASE_URL", f"sqlite:///{clean_env / 'bff.db'}")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server must not start")

    monkeypatch.setattr("bff.serve.run", never)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("bff: configuration error: BFF_PROXY_ORIGIN: is required")
    assert not (clean_env / "bff.db").exists()


def test_the_same_origin_proxy_warns_at_start_up(
    base_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(base_settings, dashboard_delivery="proxy")
    with (
        caplog.at_level(logging.WARNING, logger="bff.web.dashboard.delivery"),
        TestClient(create_app(settings)),
    ):
        pass
    warnings = [r.getMessage() for r in caplog.records if "BFF_PROXY_ORIGIN" in r.getMessage()]
    assert len(warnings) == 1
    caplog.clear()
    separate = dataclasses.replace(settings, proxy_origin=PROXY_ORIGIN)
    with (
        caplog.at_level(logging.WARNING, logger="bff.web.dashboard.delivery"),
        TestClient(create_app(separate)),
    ):
        pass
    assert not [r for r in caplog.records if "BFF_PROXY_ORIGIN" in r.getMessage()]


def test_outside_proxy_delivery_neither_origin_proxies(
    base_settings: Settings, clock: ManualClock, vendor: RecordingVendor
) -> None:
    settings = dataclasses.replace(
        base_settings, public_url=PUBLIC_ORIGIN, proxy_origin=PROXY_ORIGIN
    )
    with TestClient(
        dashboard_app(settings, clock, vendor, "post"), base_url=PUBLIC_ORIGIN
    ) as client:
        sign_in_analyst(client)
        assert client.get(VENDOR_FRAME_PATH, headers=SAME_ORIGIN).status_code == 404
        assert client.get("/vendor/").status_code == 404
        assert client.get("/", headers={"Host": "proxy.testserver"}).status_code == 404


@pytest.mark.parametrize(
    "origin",
    ["https://partner.example; script-src *", "https://partner.example 'unsafe-inline'", "*"],
)
def test_a_partner_origin_that_could_end_a_directive_frames_nothing(origin: str) -> None:
    assert partner_origin({"bff.proxy_partner_origin": origin}) is None
    assert partner_origin({"bff.proxy_partner_origin": "https://partner.example"}) == (
        "https://partner.example"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": PUBLIC_ORIGIN},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://blog.testserver"},
    ],
)
def test_an_unsafe_request_another_origin_started_is_refused(
    client: TestClient, proxy: TestClient, vendor: RecordingVendor, headers: dict[str, str]
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    vendor.requests.clear()
    refused = proxy.post("/vendor/", data={"token": "x"}, headers=headers)
    assert refused.status_code == 403
    assert vendor.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": PROXY_ORIGIN, "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {},
    ],
)
def test_an_unsafe_request_of_the_vendor_page_itself_is_forwarded(
    client: TestClient, proxy: TestClient, vendor: RecordingVendor, headers: dict[str, str]
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    vendor.requests.clear()
    # The demo vendor refuses the made-up token (401); what counts is that it was asked.
    assert proxy.post("/vendor/", data={"token": "x"}, headers=headers).status_code == 401
    assert any(r.method == "POST" and r.url.path == "/dashboard/" for r in vendor.requests)


def test_the_proxy_origins_requests_are_counted_with_bffs(
    client: TestClient, proxy: TestClient
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    assert proxy.get("/vendor/").status_code == 200
    assert proxy.get("/admin/").status_code == 404

    metrics = client.get("/metrics").text
    assert 'bff_http_requests_total{method="GET",route="/vendor",status="200"} 1.0' in metrics
    assert 'bff_http_requests_total{method="GET",route="/handoff",status="303"} 1.0' in metrics
    assert 'bff_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in metrics


# The opened proxy session cookie, remembered per process.


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The proxy session cookie values ``ProxySeal.open`` was asked to open."""
    asked: list[str] = []
    opening = ProxySeal.open

    def counting(
        self: ProxySeal, purpose: str, value: str | None, *, max_age: int, now: float
    ) -> dict[str, object] | None:
        if purpose == "proxy-session" and value:
            asked.append(value)
        return opening(self, purpose, value, max_age=max_age, now=now)

    monkeypatch.setattr(ProxySeal, "open", counting)
    return asked


def test_a_proxy_cookie_is_opened_once_and_its_parent_checked_every_time(
    client: TestClient, proxy: TestClient, opens: list[str]
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    for _ in range(3):
        assert proxy.get("/vendor/").status_code == 200
    assert len(opens) == 1
    call(client, lambda: services_of(client).sessions.revoke(svc_session_id(client)))
    ended = proxy.get("/vendor/")
    assert ended.status_code == 401
    assert "Session ended" in ended.text
    assert len(opens) == 1  # refused from the remembered cookie, at once


def test_a_remembered_proxy_cookie_loses_a_removed_mapping_at_once(
    client: TestClient, proxy: TestClient, vendor: RecordingVendor, opens: list[str]
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    assert proxy.get("/vendor/").status_code == 200
    svc = services_of(client)
    call(client, lambda: svc.sessions.set_scope(svc_session_id(client), SECOND))

    async def remove() -> None:
        assert await unmap_pair(svc.database, "test", ANALYST, FIRST, live=svc.live())

    call(client, remove)
    vendor.requests.clear()
    assert proxy.get("/vendor/").status_code == 403
    assert vendor.requests == []
    assert len(opens) == 1


def test_a_tampered_proxy_cookie_is_never_taken_from_the_remembered_ones(
    client: TestClient, proxy: TestClient, opens: list[str]
) -> None:
    sign_in_analyst(client)
    handed_over(client, proxy)
    assert proxy.get("/vendor/").status_code == 200
    value = proxy.cookies.get(COOKIE)
    assert value
    flipped = value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
    for _ in range(2):
        proxy.cookies.clear()
        proxy.cookies.set(COOKIE, flipped, domain="proxy.testserver")
        assert proxy.get("/vendor/").status_code == 401
    # Opened (and refused) each time: a value that did not open is not remembered.
    assert opens == [value, flipped, flipped]


def test_a_remembered_proxy_cookie_still_expires_by_itself(settings: Settings) -> None:
    sessions = ProxySessions(settings)
    clock = ManualClock()
    svc = SimpleNamespace(clock=clock, sessions=SimpleNamespace(max_age=timedelta(seconds=100)))
    proxy_pass = ProxyPass("parent", 7, FIRST)
    value = sessions.seal.seal("proxy-session", proxy_pass.fields(), now=clock.now().timestamp())
    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/vendor/",
            "headers": [(b"cookie", f"{sessions.cookie_name}={value}".encode())],
        }
    )
    found = sessions.pass_of(request, svc)  # type: ignore[arg-type]
    assert found == proxy_pass
    clock.advance(100)
    assert sessions.pass_of(request, svc) is found  # type: ignore[arg-type]
    clock.advance(1)
    assert sessions.pass_of(request, svc) is None  # type: ignore[arg-type]
    # As a process that never saw it refuses it.
    assert ProxySessions(settings).pass_of(request, svc) is None  # type: ignore[arg-type]
