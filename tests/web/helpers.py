"""Helpers for driving a whole app through TestClient: users, sign-in, forms.

Every helper takes a client that is inside ``with`` (so the lifespan, the
database and the services are up) and runs database work on the client's own
event loop through its portal.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.passwords import hash_password
from bff.store.users import add_user, get_user, map_user
from bff.web.auth.csrf import csrf_token, require_csrf
from bff.web.auth.guard import require_session
from bff.web.services import Services

PASSWORD = "correct horse battery staple"
_T = TypeVar("_T")
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def services_of(client: TestClient) -> Services:
    found: Services = client.app_state["services"]
    return found


def call(client: TestClient, function: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``function()`` on the app's event loop and return its result."""
    assert client.portal is not None, "use the client inside `with`"
    return client.portal.call(function)


def make_user(
    client: TestClient,
    email: str,
    password: str | None = PASSWORD,
    *,
    is_admin: bool = False,
    scopes: Sequence[tuple[str, str]] = (),
) -> int:
    """Create a local user (mapped to ``scopes``); returns its id."""

    async def create() -> int:
        async with services_of(client).database.session() as db:
            user = await add_user(
                db, email, hash_password(password) if password else None, is_admin=is_admin
            )
            for tenant, sub_tenant in scopes:
                await map_user(db, user, tenant, sub_tenant)
            return user.id

    return call(client, create)


def disable_user(client: TestClient, email: str) -> None:
    """Disable a user the way the admin console does: flag it, end its sessions."""

    async def disable() -> None:
        svc = services_of(client)
        async with svc.database.session() as db:
            user = await get_user(db, email)
            user.disabled = True
            user_id = user.id
        await svc.sessions.revoke_user(user_id)

    call(client, disable)


def form_token(html: str) -> str:
    """The ``csrf_token`` of the first form on a page."""
    found = _CSRF_FIELD.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def login_token(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    return form_token(page.text)


def sign_in(
    client: TestClient,
    email: str,
    password: str = PASSWORD,
    *,
    next_path: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """Fill in and submit the sign-in form from a signed-out client; returns the POST's
    response (a 303 on success)."""
    data = {"email": email, "password": password, "csrf_token": login_token(client)}
    if next_path is not None:
        data["next"] = next_path
    return client.post("/login", data=data, headers=headers, follow_redirects=False)


def session_cookie(client: TestClient) -> str | None:
    """The signed session cookie the client holds (either name), if any."""
    for name in ("__Host-bff_session", "bff_session"):
        value = client.cookies.get(name)
        if value:
            return value
    return None


def add_probe_routes(app: Starlette) -> None:
    """Routes that exercise the session and CSRF guards without any product page:
    ``GET /_probe/whoami`` (and under ``/api/``) and ``POST /_probe/form``."""

    async def whoami(request: Request) -> Response:
        session = require_session(request)
        scope = "/".join(session.scope) if session.scope else "-"
        return PlainTextResponse(f"{session.email} {scope}")

    async def form(request: Request) -> Response:
        await require_csrf(request)
        return PlainTextResponse("accepted")

    async def token(request: Request) -> Response:
        return PlainTextResponse(csrf_token(request))

    app.router.routes.extend(
        [
            Route("/_probe/whoami", whoami),
            Route("/api/_probe/whoami", whoami),
            Route("/_probe/form", form, methods=["POST"]),
            Route("/_probe/token", token),
        ]
    )


def other_browser(client: TestClient, address: str = "testclient") -> TestClient:
    """A second client with its own cookie jar (and optionally client address) talking to
    the same running app; use it like ``client``, no ``with`` needed."""
    other = TestClient(
        client.app,
        base_url=str(client.base_url),
        follow_redirects=False,
        client=(address, 50001),
    )
    other.portal = client.portal
    other.app_state.update(client.app_state)
    return other
