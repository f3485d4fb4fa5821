"""Local sign-in and sign-out through the whole app."""

from __future__ import annotations

import dataclasses

import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff import passwords
from bff.app import create_app
from bff.clock import ManualClock
from bff.operations.live import Live
from bff.operations.mappings import unmap_pair
from bff.settings import Settings
from bff.store.users import get_user
from tests.web.helpers import (
    PASSWORD,
    add_probe_routes,
    call,
    disable_user,
    login_token,
    make_user,
    other_browser,
    services_of,
    session_cookie,
    sign_in,
)

EMAIL = "ann@example.com"


@pytest.fixture(autouse=True)
def _probes(app: Starlette) -> None:
    add_probe_routes(app)


@pytest.fixture
def ann(client: TestClient) -> int:
    return make_user(client, EMAIL, scopes=[("acme", "north"), ("acme", "south")])


def test_the_login_page_has_the_documented_form(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    for field in ('name="email"', 'name="password"', 'name="csrf_token"'):
        assert field in page.text
    assert 'action="/login"' in page.text and 'method="post"' in page.text


def test_sign_in_sets_a_host_only_secure_session_cookie(client: TestClient, ann: int) -> None:
    response = sign_in(client, EMAIL)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith("__Host-bff_session=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"path", "secure", "httponly", "samesite", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie
    assert client.get("/_probe/whoami").text == f"{EMAIL} -"


def test_sign_in_follows_a_local_next(client: TestClient, ann: int) -> None:
    response = sign_in(client, EMAIL, next_path="/_probe/whoami?x=1")
    assert response.headers["location"] == "/_probe/whoami?x=1"


@pytest.mark.parametrize(
    "next_path", ["//evil.example", "/\\evil.example", "https:evil.example", "javascript:x"]
)
def test_sign_in_never_leaves_the_site(client: TestClient, ann: int, next_path: str) -> None:
    assert sign_in(client, EMAIL, next_path=next_path).headers["location"] == "/"


def test_a_protected_page_sends_you_to_sign_in_and_back(client: TestClient, ann: int) -> None:
    response = client.get("/_probe/whoami?tab=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F_probe%2Fwhoami%3Ftab%3D2"
    page = client.get(response.headers["location"])
    assert 'name="next" value="/_probe/whoami?tab=2"' in page.text
    assert sign_in(client, EMAIL, next_path="/_probe/whoami?tab=2").status_code == 303


def test_api_routes_get_401_problem_instead_of_a_redirect(client: TestClient) -> None:
    response = client.get("/api/_probe/whoami")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_a_signed_in_user_visiting_login_goes_on(client: TestClient, ann: int) -> None:
    sign_in(client, EMAIL)
    response = client.get("/login?next=/_probe/whoami")
    assert (response.status_code, response.headers["location"]) == (303, "/_probe/whoami")


@pytest.mark.parametrize(
    ("email", "password"),
    [
        (EMAIL, "wrong password entirely"),  # wrong password
        ("nobody@example.com", PASSWORD),  # unknown user
        ("disabled@example.com", PASSWORD),  # disabled user, right password
        ("nopassword@example.com", PASSWORD),  # an OIDC-only account
        ("", ""),
    ],
)
def test_wrong_credentials_get_one_generic_answer(
    client: TestClient, ann: int, email: str, password: str
) -> None:
    make_user(client, "disabled@example.com")
    disable_user(client, "disabled@example.com")
    make_user(client, "nopassword@example.com", None)
    response = sign_in(client, email, password)
    assert response.status_code == 400
    assert "The e-mail address or password is not correct." in response.text
    assert session_cookie(client) is None
    assert "__Host-bff_session" not in response.headers.get("set-cookie", "")


def test_the_session_id_changes_at_sign_in(client: TestClient, ann: int) -> None:
    make_user(client, "bob@example.com")
    sign_in(client, "bob@example.com")
    before = session_cookie(client)
    assert before is not None
    # Signing in again from a signed-in browser (a stale tab, say).
    token = login_token_for_session(client)
    response = client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303
    after = session_cookie(client)
    assert after is not None and after != before
    # The earlier session is over, not merely replaced in this browser.
    replay = other_browser(client).get(
        "/_probe/whoami", headers={"Cookie": f"__Host-bff_session={before}"}
    )
    assert replay.status_code == 303
    assert client.get("/_probe/whoami").text.startswith(EMAIL)


def test_a_planted_session_cookie_is_never_adopted(client: TestClient, ann: int) -> None:
    """Session fixation: the attacker's own valid cookie, planted in the victim's browser,
    must not become the victim's session when the victim signs in."""
    make_user(client, "mallory@example.com")
    attacker = other_browser(client, "203.0.113.9")
    sign_in(attacker, "mallory@example.com")
    planted = session_cookie(attacker)
    assert planted is not None
    victim = other_browser(client, "198.51.100.20")
    token = login_token(victim)
    presession = victim.cookies.get("__Host-bff_presession")
    response = victim.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": f"__Host-bff_presession={presession}; __Host-bff_session={planted}"},
    )
    assert response.status_code == 303
    issued = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert issued != planted
    assert attacker.get("/_probe/whoami").status_code == 303  # and the planted one is dead


def test_logout_ends_the_session_and_a_replayed_cookie_gets_the_sign_in_page(
    client: TestClient, ann: int
) -> None:
    sign_in(client, EMAIL)
    old = session_cookie(client)
    assert old is not None
    page = client.get("/_probe/whoami")
    token = login_token_for_session(client)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?reason=signed-out"
    assert "__Host-bff_session=;" in response.headers["set-cookie"]
    assert "signed out" in client.get(response.headers["location"]).text
    assert page.status_code == 200

    response = other_browser(client).get(
        "/_probe/whoami", headers={"Cookie": f"__Host-bff_session={old}"}
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?")
    assert "reason=expired" in response.headers["location"]


def login_token_for_session(client: TestClient) -> str:
    token = client.get("/_probe/token").text
    assert token
    return token


def test_logout_needs_the_session_csrf_token(client: TestClient, ann: int) -> None:
    sign_in(client, EMAIL)
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": "x" * 64}).status_code == 403
    assert client.get("/_probe/whoami").status_code == 200


def test_logout_without_a_session_just_goes_to_sign_in(client: TestClient) -> None:
    response = client.post("/logout")
    assert (response.status_code, response.headers["location"]) == (303, "/login")


def test_disabling_a_user_ends_their_sessions(client: TestClient, ann: int) -> None:
    sign_in(client, EMAIL)
    assert client.get("/_probe/whoami").status_code == 200
    disable_user(client, EMAIL)
    response = client.get("/_probe/whoami")
    assert response.status_code == 303
    assert "reason=expired" in response.headers["location"]
    assert sign_in(client, EMAIL).status_code == 400


def test_removing_the_active_mapping_ends_the_session(client: TestClient, ann: int) -> None:
    sign_in(client, EMAIL)
    store = services_of(client).sessions
    cookie = session_cookie(client)
    assert cookie is not None
    session_id = services_of(client).auth.cookies.unsign_session(cookie)
    assert session_id is not None
    call(client, lambda: store.set_scope(session_id, ("acme", "north")))
    assert client.get("/_probe/whoami").text == f"{EMAIL} acme/north"

    async def unmap() -> None:
        svc = services_of(client)
        live = Live(svc.sessions, svc.mappings)
        await unmap_pair(svc.database, "test", EMAIL, ("acme", "north"), live=live)

    call(client, unmap)
    response = client.get("/_probe/whoami", headers={"Cookie": f"__Host-bff_session={cookie}"})
    assert response.status_code == 303
    assert "reason=expired" in response.headers["location"]


def test_idle_timeout_over_http(client: TestClient, ann: int, clock: ManualClock) -> None:
    settings = services_of(client).settings
    sign_in(client, EMAIL)
    clock.advance(settings.session_idle_seconds - 5)
    assert client.get("/_probe/whoami").status_code == 200
    clock.advance(settings.session_idle_seconds + 1)
    response = client.get("/_probe/whoami")
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "Your session has ended" in page.text


def test_absolute_timeout_over_http(client: TestClient, ann: int, clock: ManualClock) -> None:
    settings = services_of(client).settings
    sign_in(client, EMAIL)
    step = settings.session_idle_seconds // 2
    elapsed = 0
    while elapsed + step < settings.session_max_seconds:
        clock.advance(step)
        elapsed += step
        assert client.get("/_probe/whoami").status_code == 200
    clock.advance(step)
    assert client.get("/_probe/whoami").status_code == 303


def test_failed_attempts_for_an_account_lock_only_that_address(
    client: TestClient, ann: int, clock: ManualClock
) -> None:
    for _ in range(services_of(client).auth.limiter.per_account_at_address):
        assert sign_in(client, EMAIL, "not the password").status_code == 400
    limited = sign_in(client, EMAIL)  # even the right password waits, here
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == str(15 * 60)
    assert "Too many failed sign-in attempts. Try again in 15 minutes." in limited.text
    assert session_cookie(client) is None
    # The owner elsewhere is not locked out, nor another account from here.
    assert sign_in(other_browser(client, "198.51.100.7"), EMAIL).status_code == 303
    make_user(client, "bob@example.com")
    assert sign_in(other_browser(client), "bob@example.com").status_code == 303
    # And the address opens again once the window has passed.
    clock.advance(15 * 60)
    assert sign_in(client, EMAIL).status_code == 303


def test_a_success_clears_the_account_at_the_address(client: TestClient, ann: int) -> None:
    per_pair = services_of(client).auth.limiter.per_account_at_address
    for _ in range(per_pair - 1):
        assert sign_in(client, EMAIL, "not the password").status_code == 400
    assert sign_in(other_browser(client), EMAIL).status_code == 303
    codes = [sign_in(client, EMAIL, "not the password").status_code for _ in range(per_pair)]
    assert codes == [400] * per_pair
    assert sign_in(client, EMAIL, "not the password").status_code == 429


def test_failed_attempts_per_address_are_limited(client: TestClient, ann: int) -> None:
    limiter = services_of(client).auth.limiter
    for number in range(limiter.per_address - 1):
        assert sign_in(client, f"guess{number}@example.com", "x" * 12).status_code == 400
    # A valid account signing in does not reset guessing against the others.
    assert sign_in(other_browser(client), EMAIL).status_code == 303
    assert sign_in(client, "guess-last@example.com", "x" * 12).status_code == 400
    limited = sign_in(client, EMAIL)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == str(15 * 60)
    assert sign_in(other_browser(client, "198.51.100.7"), EMAIL).status_code == 303


def test_distributed_guessing_meets_the_account_ceiling(client: TestClient, ann: int) -> None:
    limiter = services_of(client).auth.limiter
    addresses = limiter.per_account // limiter.per_account_at_address
    for number in range(addresses):
        guesser = other_browser(client, f"203.0.113.{number}")
        for _ in range(limiter.per_account_at_address):
            assert sign_in(guesser, EMAIL, "not the password").status_code == 400
    limited = sign_in(other_browser(client, "198.51.100.7"), EMAIL)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == str(15 * 60)


def test_an_outdated_hash_is_upgraded_at_sign_in(client: TestClient) -> None:
    old = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1).hash(PASSWORD)
    make_user(client, EMAIL, None)

    async def stored_hash(new: str | None = None) -> str | None:
        async with services_of(client).database.session() as db:
            user = await get_user(db, EMAIL)
            if new is not None:
                user.password_hash = new
            return user.password_hash

    call(client, lambda: stored_hash(old))
    assert passwords.needs_rehash(old)
    assert sign_in(client, EMAIL).status_code == 303
    upgraded = call(client, stored_hash)
    assert upgraded is not None and upgraded != old
    assert not passwords.needs_rehash(upgraded)
    assert passwords.verify_password(upgraded, PASSWORD)


def test_login_metrics(client: TestClient, ann: int) -> None:
    sign_in(client, EMAIL, "wrong password here")
    sign_in(client, EMAIL)
    metrics = client.get("/metrics").text
    assert 'bff_login_attempts_total{method="password",outcome="invalid"} 1.0' in metrics
    assert 'bff_login_attempts_total{method="password",outcome="success"} 1.0' in metrics
    assert "bff_password_checks 0.0" in metrics
    assert "bff_active_sessions 1.0" in metrics
    client.post("/logout", data={"csrf_token": login_token_for_session(client)})
    assert "bff_active_sessions 0.0" in client.get("/metrics").text


def test_local_http_drops_secure_and_the_host_prefix(base_settings: Settings) -> None:
    settings = dataclasses.replace(base_settings, public_url="http://127.0.0.1:8000")
    with TestClient(
        create_app(settings), base_url="http://127.0.0.1:8000", follow_redirects=False
    ) as client:
        make_user(client, EMAIL)
        response = sign_in(client, EMAIL)
        cookies = response.headers.get_list("set-cookie")
        session = next(value for value in cookies if value.startswith("bff_session="))
        assert "Secure" not in session and "HttpOnly" in session
        assert not any(value.startswith("__Host-") for value in cookies)
        assert client.get("/login").status_code == 303  # signed in, the cookie came back


def test_the_login_page_does_not_reflect_markup(client: TestClient) -> None:
    page = client.get('/login?next=/"><script>alert(1)</script>')
    assert "<script>alert(1)" not in page.text
    response = client.post(
        "/login",
        data={"email": '"><script>x</script>', "password": "x", "csrf_token": login_token(client)},
    )
    assert "<script>x</script>" not in response.text
