"""Redeeming a launch, the framed dashboard, who may frame it, and who may see it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.operations import launches, partner_apps
from bff.settings import DeliveryMode, Settings
from bff.store.models import PartnerApp, PartnerAppScope
from bff.store.users import ensure_scope
from bff.web.auth.cookies import CookieJar
from bff.web.auth.guard import EMBEDDED_REFUSED
from bff.web.auth.sessions import EMBED_SESSION_SECONDS, Session
from tests.web.dashboard.fixtures import (
    DASHBOARD_URL,
    RecordingVendor,
    dashboard_app,
    heading_for,
    sign_in_analyst,
    vendor_heading,
)
from tests.web.helpers import call, other_browser, services_of

ORIGIN = "https://partner.example"
SECOND_ORIGIN = "https://app.partner.example:8443"
OTHER_ORIGIN = "https://other-partner.example"
PAIR = ("acme", "north")
OTHER_PAIR = ("globex", "emea")
COOKIE = "__Host-bff_embed_session"
ACTOR = "root@example.com"
_CONFIG = re.compile(r'<script type="application/json" id="bff-embed-config">(.*?)</script>', re.S)
_HANDLE = re.compile(r"^/embed/(\d+)/#handle=([^&#]+)$")


@pytest.fixture
def delivery() -> DeliveryMode:
    return "post"


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(
    settings: Settings, clock: ManualClock, vendor: RecordingVendor, delivery: DeliveryMode
) -> Starlette:
    return dashboard_app(settings, clock, vendor, delivery)


# Helpers (the fallback's tests use them too).


def make_partner(
    client: TestClient,
    origins: Sequence[str] = (ORIGIN,),
    pairs: Sequence[tuple[str, str]] = (PAIR,),
    name: str = "Partner",
) -> int:
    """A partner app allowed ``origins`` and ``pairs`` (created if new); its id."""
    svc = services_of(client)

    async def create() -> int:
        async with svc.database.session() as db:
            for pair in pairs:
                await ensure_scope(db, *pair)
        created = await partner_apps.create_app(
            svc.database, ACTOR, name, origins, pairs, now=svc.clock.now()
        )
        return created.app.id

    return call(client, create)


def new_ticket(
    client: TestClient,
    app_id: int,
    pair: tuple[str, str] = PAIR,
    origin: str | None = None,
    user: str = "partner-user-1",
) -> str:
    svc = services_of(client)
    found = call(
        client,
        lambda: launches.create_launch(
            svc.database, app_id, launches.PartnerUser(user), pair, origin, now=svc.clock.now()
        ),
    )
    return found.ticket


def redeem(client: TestClient, ticket: str) -> httpx2.Response:
    return client.get("/embed/launch", params={"ticket": ticket})


def launched(client: TestClient, app_id: int, **kwargs: Any) -> str:
    """Redeem a fresh launch in ``client``; the handle from the redirect."""
    response = redeem(client, new_ticket(client, app_id, **kwargs))
    assert response.status_code == 303, response.text
    found = _HANDLE.match(response.headers["location"])
    assert found is not None and int(found.group(1)) == app_id
    return found.group(2)


def session_of(client: TestClient, handle: str) -> Session | None:
    svc = services_of(client)
    session_id = svc.auth.cookies.unsign_session(handle)
    assert session_id is not None
    return call(client, lambda: svc.sessions.load(session_id))


def revoke(client: TestClient, app_id: int) -> None:
    svc = services_of(client)
    call(
        client,
        lambda: partner_apps.revoke_app(
            svc.database, ACTOR, app_id, now=svc.clock.now(), live=svc.live()
        ),
    )


def frame_config(html: str) -> dict[str, Any]:
    found = _CONFIG.search(html)
    assert found is not None, "no #bff-embed-config on the page"
    loaded: dict[str, Any] = json.loads(found.group(1))
    return loaded


def directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        found[name] = values
    return found


def frame_ancestors(response: httpx2.Response) -> list[str]:
    return directives(response.headers["content-security-policy"])["frame-ancestors"]


def no_inline_script(html: str) -> bool:
    """Every script is the page's config (data) or loaded from /static/."""
    tags = re.findall(r"<script\b[^>]*>", html)
    return all('type="application/json"' in tag or 'src="/static/' in tag for tag in tags)


def fresh_browser(client: TestClient) -> TestClient:
    return other_browser(client)


# Redemption.


def test_redemption_sets_the_embed_cookie_and_redirects_without_the_ticket(
    client: TestClient,
) -> None:
    app_id = make_partner(client)
    ticket = new_ticket(client, app_id)
    response = redeem(client, ticket)
    assert response.status_code == 303
    location = response.headers["location"]
    assert ticket not in location and "ticket" not in location
    found = _HANDLE.match(location)
    assert found is not None and found.group(1) == str(app_id)
    handle = found.group(2)
    cookie = response.headers["set-cookie"]
    assert cookie == (
        f"{COOKIE}={handle}; Path=/; Max-Age={EMBED_SESSION_SECONDS}; Secure; HttpOnly; "
        "SameSite=None; Partitioned"
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert frame_ancestors(response) == [ORIGIN]
    session = session_of(client, handle)
    assert session is not None and session.embedded
    assert (session.partner_app_id, session.scope, session.embed_origin) == (app_id, PAIR, ORIGIN)


def test_the_session_is_bound_to_the_origin_the_launch_named(client: TestClient) -> None:
    app_id = make_partner(client, origins=(ORIGIN, SECOND_ORIGIN))
    handle = launched(client, app_id, origin=SECOND_ORIGIN)
    session = session_of(client, handle)
    assert session is not None and session.embed_origin == SECOND_ORIGIN
    page = client.get(f"/embed/{app_id}/")
    assert frame_config(page.text)["origin"] == SECOND_ORIGIN


def _assert_launch_invalid(response: httpx2.Response) -> None:
    assert response.status_code == 410
    assert "This link has expired or was already used. Ask for a new one." in response.text
    assert "set-cookie" not in response.headers
    # Safe to frame anywhere: it shows nothing and holds no form.
    assert frame_ancestors(response) == ["*"]
    assert "<form" not in response.text
    assert frame_config(response.text) == {
        "origin": None,
        "expiresIn": None,
        "event": {"type": "session-expired", "reason": "launch-invalid"},
        "fallback": None,
    }


def test_a_reused_ticket_gets_the_expired_link_page(client: TestClient) -> None:
    app_id = make_partner(client)
    ticket = new_ticket(client, app_id)
    assert redeem(client, ticket).status_code == 303
    _assert_launch_invalid(redeem(fresh_browser(client), ticket))


def test_an_expired_ticket_gets_the_expired_link_page(
    client: TestClient, clock: ManualClock
) -> None:
    app_id = make_partner(client)
    ticket = new_ticket(client, app_id)
    clock.advance(61)
    _assert_launch_invalid(redeem(client, ticket))


@pytest.mark.parametrize("query", ["", "?ticket=", "?ticket=not-a-ticket", "?ticket=" + "x" * 300])
def test_an_unknown_or_missing_ticket_gets_the_expired_link_page(
    client: TestClient, query: str
) -> None:
    _assert_launch_invalid(client.get("/embed/launch" + query))


def test_a_head_request_does_not_use_the_ticket_up(client: TestClient) -> None:
    app_id = make_partner(client)
    ticket = new_ticket(client, app_id)
    assert client.head("/embed/launch", params={"ticket": ticket}).status_code == 405
    assert redeem(client, ticket).status_code == 303


def _disable(client: TestClient, app_id: int) -> None:
    """Mark the app revoked and nothing else: its tickets stay, as when a revocation
    commits while a redemption runs (revoke_app also drops them)."""
    svc = services_of(client)

    async def disable() -> None:
        async with svc.database.session() as db:
            app = await db.get(PartnerApp, app_id)
            assert app is not None
            app.disabled = True

    call(client, disable)


def test_a_revoked_app_gets_the_forbidden_page(client: TestClient) -> None:
    app_id = make_partner(client)
    ticket = new_ticket(client, app_id)
    _disable(client, app_id)
    response = redeem(client, ticket)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert frame_ancestors(response) == ["*"]
    config = frame_config(response.text)
    assert config["event"] == {"type": "error", "reason": "forbidden"}
    assert config["origin"] is None


def test_a_new_launch_ends_the_browsers_previous_embed_session(client: TestClient) -> None:
    app_id = make_partner(client)
    first = launched(client, app_id)
    second = launched(client, app_id)
    assert session_of(client, first) is None
    assert session_of(client, second) is not None


# The framed dashboard.


def test_the_page_shows_the_dashboard_for_the_sessions_pair(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client, pairs=(PAIR, OTHER_PAIR))
    launched(client, app_id)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    assert '<div id="bff-embed-content">' in page.text
    assert 'id="bff-embed-vendor"' in page.text
    assert f'action="{DASHBOARD_URL}"' in page.text
    # Exactly the session's pair was asked for, and its token is the one in the page.
    assert vendor.pairs_requested() == {PAIR}
    assert len(vendor.tokens) == 1 and vendor.tokens[0] in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = directives(page.headers["content-security-policy"])
    assert policy["frame-src"] == ["http://vendor.test"]
    assert policy["form-action"] == ["'self'", "http://vendor.test"]
    assert no_inline_script(page.text)
    assert 'src="/static/embed-frame.js?v=' in page.text
    assert frame_config(page.text) == {
        "origin": ORIGIN,
        "expiresIn": EMBED_SESSION_SECONDS,
        "event": None,
        "fallback": None,
    }


@pytest.mark.parametrize("delivery", ["fragment", "query"])
def test_the_token_rides_in_the_iframe_src_in_fragment_and_query_modes(
    client: TestClient, vendor: RecordingVendor, delivery: DeliveryMode
) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    separator = "#" if delivery == "fragment" else "?"
    assert f'src="{DASHBOARD_URL}{separator}token={vendor.tokens[0]}"' in page.text
    assert vendor.pairs_requested() == {PAIR}


def test_the_embed_page_is_framed_by_exactly_its_apps_origins(client: TestClient) -> None:
    first = make_partner(client, origins=(ORIGIN, SECOND_ORIGIN), name="A")
    second = make_partner(client, origins=(OTHER_ORIGIN,), name="B")
    launched(client, first, origin=ORIGIN)
    page = client.get(f"/embed/{first}/")
    assert page.status_code == 200
    assert frame_ancestors(page) == [ORIGIN, SECOND_ORIGIN]
    assert "x-frame-options" not in page.headers
    # B's page (here the bootstrap, this browser has no session of B) names only B's.
    other = fresh_browser(client).get(f"/embed/{second}/")
    assert other.status_code == 200
    assert frame_ancestors(other) == [OTHER_ORIGIN]
    # And A's session on B's page: refused, still framed by B's origins only.
    refused = client.get(f"/embed/{second}/")
    assert refused.status_code == 403
    assert frame_ancestors(refused) == [OTHER_ORIGIN]


def test_an_app_without_origins_is_framed_nowhere(client: TestClient) -> None:
    app_id = make_partner(client, origins=())
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    assert frame_ancestors(page) == ["'none'"]


def test_an_unknown_app_is_not_found_and_framed_nowhere(client: TestClient) -> None:
    page = client.get("/embed/999/")
    assert page.status_code == 404
    assert frame_ancestors(page) == ["'none'"]
    assert frame_config(page.text)["event"] == {"type": "error", "reason": "forbidden"}


def test_other_pages_still_refuse_every_frame(client: TestClient) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    for path in ("/login", "/", "/no/such/page", "/admin/"):
        response = client.get(path)
        assert frame_ancestors(response) == ["'none'"], path
        assert response.headers["x-frame-options"] == "DENY", path


def test_an_embed_session_of_another_app_gets_403(client: TestClient) -> None:
    first = make_partner(client, name="A")
    second = make_partner(client, origins=(OTHER_ORIGIN,), name="B")
    launched(client, first)
    page = client.get(f"/embed/{second}/")
    assert page.status_code == 403
    assert 'id="bff-embed-vendor"' not in page.text
    # The refusal names no session: its message goes to whoever frames it.
    assert frame_config(page.text) == {
        "origin": None,
        "expiresIn": None,
        "event": {"type": "error", "reason": "forbidden"},
        "fallback": None,
    }


def test_a_first_party_session_gets_403_on_embed_pages(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client)
    sign_in_analyst(client)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 403
    assert 'id="bff-embed-vendor"' not in page.text
    assert vendor.requests == []


def test_an_origin_no_longer_allowed_ends_its_pages(client: TestClient) -> None:
    """Checked on every view, whether or not the change ended the sessions."""
    app_id = make_partner(client, origins=(ORIGIN, SECOND_ORIGIN))
    launched(client, app_id, origin=SECOND_ORIGIN)
    svc = services_of(client)

    async def narrow() -> None:
        async with svc.database.session() as db:
            app = await db.get(PartnerApp, app_id)
            assert app is not None
            app.allowed_origins = json.dumps([ORIGIN])

    call(client, narrow)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 403
    assert frame_ancestors(page) == [ORIGIN]


def test_a_pair_no_longer_allowed_ends_its_pages(
    client: TestClient, vendor: RecordingVendor
) -> None:
    """As when its tenant is deleted: the app's pair goes, the session may stay."""
    app_id = make_partner(client)
    launched(client, app_id)
    svc = services_of(client)

    async def drop() -> None:
        async with svc.database.session() as db:
            allowed = await db.get(PartnerAppScope, (app_id, *PAIR))
            assert allowed is not None
            await db.delete(allowed)

    call(client, drop)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 403
    assert 'id="bff-embed-vendor"' not in page.text
    assert vendor.requests == []


def test_after_revoke_the_page_no_longer_shows_the_dashboard(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client)
    handle = launched(client, app_id)
    assert client.get(f"/embed/{app_id}/").status_code == 200
    revoke(client, app_id)
    assert session_of(client, handle) is None
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 403
    assert 'id="bff-embed-vendor"' not in page.text
    assert frame_config(page.text)["event"] == {"type": "error", "reason": "forbidden"}


# Session lifetime.


def test_the_embedded_session_lives_3600_seconds(
    client: TestClient, clock: ManualClock, settings: Settings
) -> None:
    assert EMBED_SESSION_SECONDS == 3600
    app_id = make_partner(client)
    handle = launched(client, app_id)
    session = session_of(client, handle)
    assert session is not None
    store = services_of(client).sessions
    assert (store.expires_at(session) - session.created_at).total_seconds() == 3600
    step = settings.session_idle_seconds // 2
    elapsed = 0
    while elapsed + step < 3600:
        clock.advance(step)
        elapsed += step
        page = client.get(f"/embed/{app_id}/")
        assert page.status_code == 200
        assert frame_config(page.text)["expiresIn"] == 3600 - elapsed
    clock.advance(3600 - elapsed)
    ended = client.get(f"/embed/{app_id}/")
    assert ended.status_code == 200
    assert 'id="bff-embed-vendor"' not in ended.text
    # A cookie did arrive, so cookies work: the script says the session expired.
    assert frame_config(ended.text)["fallback"] == {"url": f"/embed/{app_id}/frame", "ended": True}
    assert f"{COOKIE}=;" in ended.headers["set-cookie"]
    assert session_of(client, handle) is None


def test_first_party_sessions_keep_their_own_lifetime(
    client: TestClient, settings: Settings
) -> None:
    sign_in_analyst(client)
    svc = services_of(client)
    session_id = svc.auth.cookies.unsign_session(client.cookies["__Host-bff_session"])
    assert session_id is not None
    session = call(client, lambda: svc.sessions.load(session_id))
    assert session is not None
    lifetime = svc.sessions.expires_at(session) - session.created_at
    assert lifetime.total_seconds() == settings.session_max_seconds


def test_the_sweep_removes_embedded_sessions_past_their_lifetime(
    client: TestClient, clock: ManualClock
) -> None:
    app_id = make_partner(client)
    handle = launched(client, app_id)
    svc = services_of(client)
    session_id = svc.auth.cookies.unsign_session(handle)
    # In use until just before the end, so only the absolute limit applies.
    for step in (1700, 1700, 199):
        clock.advance(step)
        assert client.get(f"/embed/{app_id}/").status_code == 200
    assert call(client, svc.sessions.sweep) == 0
    clock.advance(1)
    assert call(client, svc.sessions.sweep) == 1
    assert session_id is not None and call(client, lambda: svc.sessions.load(session_id)) is None


# Vendor failures in the frame.


def test_vendor_unavailable_is_a_framed_notice_and_an_error_event(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    vendor.config.fault = Fault.rate_limit("7")
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 503
    assert page.headers["retry-after"] == "7"
    assert "temporarily unavailable" in page.text
    assert frame_ancestors(page) == [ORIGIN]
    config = frame_config(page.text)
    assert config["event"] == {"type": "error", "reason": "vendor-unavailable"}
    assert config["origin"] == ORIGIN
    vendor.config.fault = None


def test_a_vendor_refusing_our_configuration_is_a_vendor_error(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    vendor.config.fault = Fault("forbidden")
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 502
    assert "misconfigured" in page.text and "Traceback" not in page.text
    assert frame_config(page.text)["event"] == {"type": "error", "reason": "vendor-error"}
    vendor.config.fault = None


# First-party pages refuse embedded sessions: 403 on every page, 401 on the admin API.


def _embed_only(client: TestClient) -> TestClient:
    """A browser holding only an embed session (of a fresh app)."""
    app_id = make_partner(client, name="Embedded")
    browser = fresh_browser(client)
    launched(browser, app_id)
    assert set(browser.cookies.keys()) == {COOKIE}
    return browser


def test_an_embed_session_is_refused_by_the_first_party_pages(
    client: TestClient, vendor: RecordingVendor
) -> None:
    browser = _embed_only(client)
    for path in ("/", "/admin/", "/admin/users", "/account/api-keys"):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert "<iframe" not in response.text, path
    assert EMBEDDED_REFUSED in browser.get("/").text
    scope = browser.post("/scope", data={"scope": "acme/north"})
    assert scope.status_code == 403
    assert browser.get("/api/v1/users").status_code == 401
    assert vendor.requests == []


def test_no_first_party_route_serves_an_embed_session_more_than_a_stranger(
    client: TestClient, vendor: RecordingVendor
) -> None:
    """Walk the route table: where a signed-out browser gets no page, neither does a
    browser with only an embed session."""
    browser = _embed_only(client)
    stranger = fresh_browser(client)
    for route in client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue
        if route.path.startswith("/embed/"):
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        signed_out = stranger.get(path).status_code
        embedded = browser.get(path).status_code
        if not 200 <= signed_out < 300:
            assert not 200 <= embedded < 300, (path, signed_out, embedded)


# The proxy serves an embed session its own pair, framable by its partner.


@pytest.mark.parametrize("delivery", ["proxy"])
def test_proxy_mode_serves_the_embed_sessions_pair_framable_by_its_partner(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client, pairs=(OTHER_PAIR,))
    launched(client, app_id, pair=OTHER_PAIR)
    page = client.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    assert 'src="/vendor/"' in page.text
    assert directives(page.headers["content-security-policy"])["frame-src"] == ["'self'"]
    proxied = client.get("/vendor/")
    assert proxied.status_code == 200
    assert vendor_heading(proxied.text) == heading_for(OTHER_PAIR)
    # Every ancestor must allow it: the embed page ('self') and the partner page above.
    policies = proxied.headers.get_list("content-security-policy")
    assert "frame-ancestors 'self' https://partner.example" in policies
    assert "x-frame-options" not in proxied.headers
    assert vendor.pairs_requested() == {OTHER_PAIR}


@pytest.mark.parametrize("delivery", ["proxy"])
def test_proxied_pages_of_first_party_sessions_stay_framed_by_self_only(
    client: TestClient, vendor: RecordingVendor
) -> None:
    make_partner(client)
    sign_in_analyst(client)
    proxied = client.get("/vendor/")
    assert proxied.status_code == 200
    assert "frame-ancestors 'self'" in proxied.headers.get_list("content-security-policy")
    assert proxied.headers["x-frame-options"] == "SAMEORIGIN"


@pytest.mark.parametrize("delivery", ["proxy"])
def test_an_ended_embed_session_in_the_proxy_is_not_sent_to_sign_in(
    client: TestClient, vendor: RecordingVendor
) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    revoke(client, app_id)
    proxied = client.get("/vendor/")
    assert proxied.status_code == 401
    assert "Session ended" in proxied.text
    assert "/login" not in proxied.text


def test_a_forged_embed_cookie_is_no_session(client: TestClient, settings: Settings) -> None:
    app_id = make_partner(client)
    forged = CookieJar(settings).sign_session("x" * 43)[:-2] + "AA"
    browser = fresh_browser(client)
    page = browser.get(f"/embed/{app_id}/", headers={"Cookie": f"{COOKIE}={forged}"})
    assert page.status_code == 200
    assert 'id="bff-embed-vendor"' not in page.text
    assert frame_config(page.text)["fallback"] == {"url": f"/embed/{app_id}/frame", "ended": False}
