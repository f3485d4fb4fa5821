"""OpenID Connect sign-in against a real provider (oidc-provider-mock) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import socket
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from werkzeug.serving import make_server

from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import OIDCSettings, Settings
from bff.store.users import find_user
from tests.web.conftest import PUBLIC_URL
from tests.web.helpers import (
    add_probe_routes,
    call,
    disable_user,
    make_user,
    services_of,
    session_cookie,
)

with warnings.catch_warnings():
    # The provider mock still imports authlib.jose, which authlib deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    import oidc_provider_mock

# The provider runs in a thread of this process and shares its warning filters.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib")

EMAIL = "ann@example.com"


@pytest.fixture
def clock() -> ManualClock:
    """Starts at the real time: the provider stamps its ID tokens with it."""
    return ManualClock(datetime.now(UTC))


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        wsgi = oidc_provider_mock.app(require_nonce=True)
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def set_identity(provider: str, sub: str, claims: dict[str, object]) -> None:
    response = httpx2.put(f"{provider}/users/{sub}", json=claims)
    assert response.status_code == 204


def oidc_settings(settings: Settings, issuer: str, *, allow_signup: bool = False) -> Settings:
    return dataclasses.replace(
        settings,
        oidc=OIDCSettings(
            issuer=issuer,
            client_id="bff-test",
            client_secret="a-client-secret-for-tests",
            allow_signup=allow_signup,
        ),
    )


@pytest.fixture
def oidc_app(settings: Settings, clock: ManualClock, provider: str) -> Starlette:
    app = create_app(oidc_settings(settings, provider), clock=clock)
    add_probe_routes(app)
    return app


@pytest.fixture
def browser(oidc_app: Starlette) -> Iterator[TestClient]:
    with TestClient(oidc_app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        yield client


def authorize(browser: TestClient, sub: str, next_path: str = "/") -> httpx2.Response:
    """Start at the BFF, let the provider's user ``sub`` approve, and hand the provider's
    redirect back to the BFF; returns the BFF's answer to the callback."""
    start = browser.get("/login/oidc", params={"next": next_path})
    assert start.status_code == 303, start.text
    approved = httpx2.post(start.headers["location"], data={"sub": sub})
    assert approved.status_code == 302, approved.text
    callback = urlsplit(approved.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}" == PUBLIC_URL
    return browser.get(f"{callback.path}?{callback.query}")


def test_the_authorization_request_uses_pkce_state_and_nonce(
    browser: TestClient, provider: str
) -> None:
    start = browser.get("/login/oidc")
    location = urlsplit(start.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == provider
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "bff-test"
    assert query["redirect_uri"] == f"{PUBLIC_URL}/login/oidc/callback"
    assert set(query["scope"].split()) >= {"openid", "email"}
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    flow_cookie = start.headers["set-cookie"]
    assert flow_cookie.startswith("__Host-bff_oidc=") and "HttpOnly" in flow_cookie
    for secret in (query["state"], query["nonce"]):
        assert secret not in flow_cookie  # sealed, not merely signed


def test_the_login_page_offers_the_provider(browser: TestClient) -> None:
    assert 'href="/login/oidc"' in browser.get("/login").text


def test_an_existing_user_with_a_verified_email_signs_in(
    browser: TestClient, provider: str
) -> None:
    make_user(browser, EMAIL, None)
    set_identity(provider, "ann-sub", {"email": "Ann@Example.com", "email_verified": True})
    response = authorize(browser, "ann-sub", next_path="/_probe/whoami")
    assert response.status_code == 303
    assert response.headers["location"] == "/_probe/whoami"
    assert session_cookie(browser) is not None
    assert browser.get("/_probe/whoami").text == f"{EMAIL} -"
    metrics = browser.get("/metrics").text
    assert 'bff_login_attempts_total{method="oidc",outcome="success"} 1.0' in metrics


def test_the_next_path_is_kept_local(browser: TestClient, provider: str) -> None:
    make_user(browser, EMAIL, None)
    set_identity(provider, "ann-sub", {"email": EMAIL, "email_verified": True})
    assert authorize(browser, "ann-sub", next_path="//evil.example").headers["location"] == "/"


@pytest.mark.parametrize(
    "claims",
    [
        {"email": EMAIL, "email_verified": False},
        {"email": EMAIL},
        {"email": EMAIL, "email_verified": "yes"},
        {"name": "Ann, no email"},
    ],
)
def test_an_unverified_email_is_refused(
    browser: TestClient, provider: str, claims: dict[str, object]
) -> None:
    make_user(browser, EMAIL, None)
    set_identity(provider, "ann-sub", claims)
    response = authorize(browser, "ann-sub")
    assert response.status_code == 403
    assert "did not confirm your e-mail address" in response.text
    assert session_cookie(browser) is None


def test_an_unknown_user_is_refused(browser: TestClient, provider: str) -> None:
    set_identity(provider, "stranger", {"email": "stranger@example.com", "email_verified": True})
    response = authorize(browser, "stranger")
    assert response.status_code == 403
    assert "no account for this e-mail address" in response.text
    assert session_cookie(browser) is None

    async def lookup() -> object:
        async with services_of(browser).database.session() as db:
            return await find_user(db, "stranger@example.com")

    assert call(browser, lookup) is None


def test_a_disabled_user_is_refused(browser: TestClient, provider: str) -> None:
    make_user(browser, EMAIL, None)
    disable_user(browser, EMAIL)
    set_identity(provider, "ann-sub", {"email": EMAIL, "email_verified": True})
    assert authorize(browser, "ann-sub").status_code == 403
    assert session_cookie(browser) is None


def test_signup_when_allowed(settings: Settings, clock: ManualClock, provider: str) -> None:
    app = create_app(oidc_settings(settings, provider, allow_signup=True), clock=clock)
    add_probe_routes(app)
    set_identity(provider, "newcomer", {"email": "new@example.com", "email_verified": True})
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
        assert authorize(browser, "newcomer").status_code == 303
        assert browser.get("/_probe/whoami").text == "new@example.com -"


def test_a_callback_without_the_flow_cookie_is_refused(
    browser: TestClient, provider: str, oidc_app: Starlette
) -> None:
    """Login CSRF: the attacker's own authorization response, replayed into the victim's
    browser, does not sign the victim in as the attacker."""
    make_user(browser, EMAIL, None)
    set_identity(provider, "ann-sub", {"email": EMAIL, "email_verified": True})
    start = browser.get("/login/oidc")
    approved = httpx2.post(start.headers["location"], data={"sub": "ann-sub"})
    callback = urlsplit(approved.headers["location"])
    browser.cookies.clear()
    response = browser.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 400
    assert "expired or was not started here" in response.text
    assert session_cookie(browser) is None


def test_a_callback_with_another_state_is_refused(browser: TestClient, provider: str) -> None:
    make_user(browser, EMAIL, None)
    set_identity(provider, "ann-sub", {"email": EMAIL, "email_verified": True})
    start = browser.get("/login/oidc")
    approved = httpx2.post(start.headers["location"], data={"sub": "ann-sub"})
    callback = urlsplit(approved.headers["location"])
    code = parse_qs(callback.query)["code"][0]
    response = browser.get("/login/oidc/callback", params={"code": code, "state": "forged"})
    assert response.status_code == 400
    assert session_cookie(browser) is None


def test_the_flow_expires(browser: TestClient, provider: str, clock: ManualClock) -> None:
    make_user(browser, EMAIL, None)
    set_identity(provider, "ann-sub", {"email": EMAIL, "email_verified": True})
    start = browser.get("/login/oidc")
    approved = httpx2.post(start.headers["location"], data={"sub": "ann-sub"})
    callback = urlsplit(approved.headers["location"])
    clock.advance(11 * 60)
    assert browser.get(f"{callback.path}?{callback.query}").status_code == 400


def test_a_denied_authorization_is_refused(browser: TestClient) -> None:
    start = browser.get("/login/oidc")
    denied = httpx2.post(start.headers["location"], data={"action": "deny"})
    callback = urlsplit(denied.headers["location"])
    assert "error=access_denied" in callback.query
    response = browser.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 403
    assert session_cookie(browser) is None


def test_an_unreachable_provider_gives_a_friendly_page(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    app = create_app(oidc_settings(settings, closed))
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
        response = browser.get("/login/oidc")
    assert response.status_code == 502
    assert "could not be reached" in response.text
    assert "Traceback" not in response.text


def test_without_oidc_settings_there_is_no_oidc_route(client: TestClient) -> None:
    assert client.get("/login/oidc").status_code == 404
    assert "/login/oidc" not in client.get("/login").text
