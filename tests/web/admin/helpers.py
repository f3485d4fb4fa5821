"""Admin API helpers: users with personal API keys, and the headers that carry them."""

from __future__ import annotations

from starlette.testclient import TestClient

from bff.operations import api_keys
from tests.web.helpers import call, make_user, services_of

ADMIN = "root@example.com"
MEMBER = "member@example.com"


def key_for(client: TestClient, email: str, handle: str = "main") -> str:
    """A new personal API key token for an existing user."""

    async def create() -> str:
        created = await api_keys.create_key(
            services_of(client).database, "test", email, handle, None
        )
        return created.token

    return call(client, create)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_headers(client: TestClient, email: str = ADMIN) -> dict[str, str]:
    """Creates an admin with a key; its bearer headers."""
    make_user(client, email, is_admin=True)
    return bearer(key_for(client, email))


def member_headers(client: TestClient, email: str = MEMBER) -> dict[str, str]:
    make_user(client, email)
    return bearer(key_for(client, email))


def session_token(client: TestClient) -> str:
    """The CSRF token of the client's session (the app needs the probe routes)."""
    response = client.get("/_probe/token")
    assert response.status_code == 200
    return response.text


def activate(browser: TestClient, pair: tuple[str, str]) -> None:
    """Make ``pair`` the active scope of the browser's session (as the scope switcher does)."""
    svc = services_of(browser)
    cookie = browser.cookies.get("__Host-bff_session")
    assert cookie
    session_id = svc.auth.cookies.unsign_session(cookie)
    assert session_id
    call(browser, lambda: svc.sessions.set_scope(session_id, pair))
