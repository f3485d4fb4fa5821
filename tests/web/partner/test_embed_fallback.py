"""The cookieless fallback: the bootstrap page, and the frame JSON that only the handle
(``X-Bff-Embed-Session``) opens."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.settings import DeliveryMode, Settings
from bff.web.auth.cookies import CookieJar
from bff.web.auth.guard import HANDLE_HEADER
from bff.web.auth.sessions import EMBED_SESSION_SECONDS
from tests.web.dashboard.fixtures import (
    ANALYST,
    DASHBOARD_URL,
    RecordingVendor,
    dashboard_app,
    sign_in_analyst,
)
from tests.web.helpers import add_probe_routes, call, other_browser, services_of
from tests.web.partner.test_embed import (
    COOKIE,
    ORIGIN,
    OTHER_ORIGIN,
    OTHER_PAIR,
    PAIR,
    directives,
    frame_ancestors,
    frame_config,
    launched,
    make_partner,
    revoke,
)


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


@pytest.fixture
def probed(app: Starlette) -> Starlette:
    add_probe_routes(app)
    return app


def cookieless(client: TestClient, app_id: int, **kwargs: object) -> tuple[TestClient, str]:
    """A browser that redeemed a launch but keeps no cookie; and its handle."""
    browser = other_browser(client)
    handle = launched(browser, app_id, **kwargs)
    browser.cookies.clear()
    return browser, handle


def ask(browser: TestClient, app_id: int, handle: str | None) -> httpx2.Response:
    headers = {} if handle is None else {HANDLE_HEADER: handle}
    return browser.get(f"/embed/{app_id}/frame", headers=headers)


# The bootstrap page.


def test_without_a_cookie_the_page_is_the_bootstrap(
    client: TestClient,
    vendor: RecordingVendor,
) -> None:
    app_id = make_partner(client)
    browser, _ = cookieless(client, app_id)
    page = browser.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    assert 'id="bff-embed-vendor"' not in page.text
    assert vendor.requests == []
    assert frame_config(page.text) == {
        "origin": None,
        "expiresIn": None,
        "event": None,
        "fallback": {"url": f"/embed/{app_id}/frame", "ended": False},
    }
    # The policy the script's iframe and form will need, and this app's framers only.
    policy = directives(page.headers["content-security-policy"])
    assert policy["frame-src"] == ["http://vendor.test"]
    assert policy["form-action"] == ["'self'", "http://vendor.test"]
    assert policy["connect-src"] == ["'self'"]
    assert frame_ancestors(page) == [ORIGIN]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("delivery", ["proxy"])
def test_proxy_mode_offers_no_fallback_and_says_cookies_are_blocked(
    client: TestClient,
    vendor: RecordingVendor,
) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    page = browser.get(f"/embed/{app_id}/")
    assert page.status_code == 200
    assert "Cookies blocked" in page.text and "Allow cookies" in page.text
    assert frame_ancestors(page) == [ORIGIN]
    assert frame_config(page.text) == {
        "origin": None,
        "expiresIn": None,
        "event": {"type": "error", "reason": "cookies-blocked"},
        "fallback": None,
    }
    refused = ask(browser, app_id, handle)
    assert refused.status_code == 409
    assert refused.json()["reason"] == "cookies-blocked"
    assert vendor.pairs_requested() == set()


# The frame JSON.


@pytest.mark.parametrize("delivery", ["post", "fragment", "query"])
def test_a_valid_handle_gets_the_pairs_embed(
    client: TestClient,
    vendor: RecordingVendor,
    delivery: DeliveryMode,
) -> None:
    app_id = make_partner(client, pairs=(PAIR, OTHER_PAIR))
    browser, handle = cookieless(client, app_id, pair=OTHER_PAIR)
    response = browser.get(f"/embed/{app_id}/frame", headers={HANDLE_HEADER: handle})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers
    answer = response.json()
    assert vendor.pairs_requested() == {OTHER_PAIR}
    (token,) = vendor.tokens
    expected_src = {
        "post": "about:blank",
        "fragment": f"{DASHBOARD_URL}#token={token}",
        "query": f"{DASHBOARD_URL}?token={token}",
    }[delivery]
    assert answer == {
        "mode": delivery,
        "origin": ORIGIN,
        "expiresIn": EMBED_SESSION_SECONDS,
        "pair": {"tenant_id": "globex", "sub_tenant_id": "emea"},
        "frame": {
            "name": "vendor-dashboard",
            "src": expected_src,
            "title": "Dashboard for globex / emea",
        },
        "post": (
            {"action": DASHBOARD_URL, "fields": {"token": token}} if delivery == "post" else None
        ),
    }


def test_a_bad_or_forged_handle_gets_401(client: TestClient, settings: Settings) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    session_id = handle.rsplit(".", 1)[0]
    other_key = CookieJar(
        Settings(secret_keys=("another-key-" + "k" * 32,), encryption_keys=settings.encryption_keys)
    )
    for bad in (
        None,
        "",
        "garbage",
        session_id,  # unsigned
        tampered_signature(handle),
        other_key.sign_session(session_id),  # signed by someone else's key
        CookieJar(settings).sign_session("no-such-session"),
        "x" * 600,
    ):
        response = ask(browser, app_id, bad)
        assert response.status_code == 401, bad
        assert response.headers["cache-control"] == "no-store"
    assert ask(browser, app_id, handle).status_code == 200


def tampered_signature(handle: str) -> str:
    # The signature's first character: the last one's low bits may be base64 padding,
    # which decoding ignores, so changing it can leave the signature valid.
    value, signature = handle.rsplit(".", 1)
    first = "A" if signature[0] != "A" else "B"
    return f"{value}.{first}{signature[1:]}"


def test_a_first_party_session_id_is_no_handle(
    client: TestClient,
    vendor: RecordingVendor,
) -> None:
    sign_in_analyst(client)
    app_id = make_partner(client)
    first_party = client.cookies["__Host-bff_session"]
    response = ask(other_browser(client), app_id, first_party)
    assert response.status_code == 401
    assert vendor.requests == []


def test_the_cookie_does_not_open_the_frame_json(client: TestClient) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    assert client.cookies.get(COOKIE)
    assert ask(client, app_id, None).status_code == 401


def test_a_handle_of_another_app_gets_403(client: TestClient) -> None:
    first = make_partner(client, name="A")
    second = make_partner(client, origins=(OTHER_ORIGIN,), name="B")
    browser, handle = cookieless(client, first)
    response = ask(browser, second, handle)
    assert response.status_code == 403
    assert response.json()["reason"] == "forbidden"


def test_the_handle_is_ignored_on_every_other_route(
    client: TestClient,
    probed: Starlette,
    vendor: RecordingVendor,
) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    headers = {HANDLE_HEADER: handle}
    # First-party pages and the API: signed out.
    assert browser.get("/", headers=headers).headers["location"] == "/login"
    assert browser.get("/_probe/whoami", headers=headers).status_code == 303
    assert browser.get("/api/_probe/whoami", headers=headers).status_code == 401
    assert browser.get("/api/v1/users", headers=headers).status_code == 401
    # The embed page itself: the bootstrap, never the dashboard.
    page = browser.get(f"/embed/{app_id}/", headers=headers)
    assert page.status_code == 200
    assert 'id="bff-embed-vendor"' not in page.text
    assert frame_config(page.text)["fallback"] == {"url": f"/embed/{app_id}/frame", "ended": False}
    # A lookalike path and another method get nothing either.
    assert browser.get(f"/embed/{app_id}/frame/", headers=headers).status_code != 200
    assert browser.post(f"/embed/{app_id}/frame", headers=headers).status_code == 405
    assert vendor.requests == []


@pytest.mark.parametrize("delivery", ["proxy"])
def test_the_handle_opens_no_proxied_request(
    client: TestClient,
    vendor: RecordingVendor,
) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    proxied = browser.get("/vendor/", headers={HANDLE_HEADER: handle})
    assert proxied.status_code == 401
    assert vendor.requests == []


def test_after_revoke_the_handle_gets_401(client: TestClient) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    assert ask(browser, app_id, handle).status_code == 200
    revoke(client, app_id)
    assert ask(browser, app_id, handle).status_code == 401
    page = browser.get(f"/embed/{app_id}/")
    assert 'id="bff-embed-vendor"' not in page.text


def test_an_ended_session_gets_401(
    client: TestClient, clock: ManualClock, settings: Settings
) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    elapsed = 0
    while elapsed < EMBED_SESSION_SECONDS - 1000:
        clock.advance(1000)
        elapsed += 1000
        answer = ask(browser, app_id, handle)
        assert answer.status_code == 200
        assert answer.json()["expiresIn"] == EMBED_SESSION_SECONDS - elapsed
    clock.advance(EMBED_SESSION_SECONDS - elapsed)
    assert ask(browser, app_id, handle).status_code == 401


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [(Fault.rate_limit("9"), 503, "vendor-unavailable"), (Fault("forbidden"), 502, "vendor-error")],
)
def test_vendor_failures_name_their_reason_and_the_origin(
    client: TestClient,
    vendor: RecordingVendor,
    fault: Fault,
    status: int,
    reason: str,
) -> None:
    app_id = make_partner(client)
    browser, handle = cookieless(client, app_id)
    vendor.config.fault = fault
    refused = ask(browser, app_id, handle)
    assert refused.status_code == status
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert (body["reason"], body["origin"]) == (reason, ORIGIN)
    if status == 503:
        assert refused.headers["retry-after"] == "9"
    vendor.config.fault = None


def test_an_ended_cookie_makes_the_bootstrap_say_expired(
    client: TestClient,
    vendor: RecordingVendor,
) -> None:
    app_id = make_partner(client)
    launched(client, app_id)
    revoke(client, app_id)
    # The app is revoked: a notice, not the bootstrap.
    assert client.get(f"/embed/{app_id}/").status_code == 403
    # An app still active, whose session ended (signed out elsewhere, expired, …).
    second = make_partner(client, name="Second")
    handle = launched(client, second)
    store = services_of(client).sessions
    session_id = services_of(client).auth.cookies.unsign_session(handle)
    assert session_id is not None
    call(client, lambda: store.revoke(session_id))
    page = client.get(f"/embed/{second}/")
    assert page.status_code == 200
    assert frame_config(page.text)["fallback"] == {"url": f"/embed/{second}/frame", "ended": True}
    assert ANALYST not in page.text
