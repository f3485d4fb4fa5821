"""Who may use the console: every page and form enumerated from the app's route table,
so a page added later cannot be forgotten."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.web.admin.console import FORBIDDEN
from bff.web.auth.csrf import FORBIDDEN_MESSAGE
from bff.web.auth.guard import login_url
from tests.web.admin.helpers import MEMBER
from tests.web.helpers import make_user, other_browser, sign_in

# Pages for people who are not signed in yet (they carry their own one-time secret).
SIGNED_OUT_PAGES = {"/account/set-password"}
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def _routes(client: TestClient, prefix: str) -> list[tuple[str, str]]:
    found = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, Route) or not route.path.startswith(prefix):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, route.path))
    return found


def _url(path: str) -> str:
    return _PARAM.sub(lambda found: "ann@example.com" if found.group(1) == "email" else "x1", path)


def _admin_routes(client: TestClient) -> list[tuple[str, str]]:
    return _routes(client, "/admin")


def _forms(client: TestClient) -> list[tuple[str, str]]:
    """Every state-changing console and account route, the signed-out pages included."""
    return [
        (method, path)
        for method, path in _routes(client, "/admin") + _routes(client, "/account")
        if method != "GET"
    ]


@pytest.fixture
def member(client: TestClient) -> TestClient:
    make_user(client, MEMBER)
    browser = other_browser(client)
    assert sign_in(browser, MEMBER).status_code == 303
    return browser


def test_the_route_table_holds_the_console(client: TestClient) -> None:
    paths = {path for _, path in _admin_routes(client)}
    # A floor, not the list: the walks below must not silently find nothing.
    assert {"/admin/audit"} <= paths


def test_signed_out_browsers_are_sent_to_sign_in(client: TestClient) -> None:
    for method, path in _admin_routes(client):
        url = _url(path)
        response = client.request(method, url)
        assert response.status_code == 303, (method, path)
        assert response.headers["location"] == login_url(url), (method, path)


def test_a_signed_in_non_admin_gets_403_everywhere(member: TestClient) -> None:
    for method, path in _admin_routes(member):
        response = member.request(method, _url(path), data={"csrf_token": "x"})
        assert response.status_code == 403, (method, path)
        assert FORBIDDEN in response.text, (method, path)


def test_every_form_needs_its_csrf_token(admin: TestClient) -> None:
    for method, path in _forms(admin):
        response = admin.request(method, _url(path), data={"confirm": "yes"})
        assert response.status_code == 403, (method, path)
        assert FORBIDDEN_MESSAGE in response.text, (method, path)


def test_a_foreign_origin_is_refused_even_with_the_token(admin: TestClient) -> None:
    token = admin.get("/admin/audit")
    assert token.status_code == 200
    for method, path in _forms(admin):
        response = admin.request(
            method,
            _url(path),
            data={"csrf_token": "x"},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert response.status_code == 403, (method, path)
