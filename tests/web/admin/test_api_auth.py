"""Who may call the admin API: every route enumerated from the app's route table."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.settings import Settings
from bff.web.auth.cookies import CookieJar
from tests.web.admin.helpers import (
    ADMIN,
    MEMBER,
    admin_headers,
    bearer,
    key_for,
    member_headers,
    session_token,
)
from tests.web.helpers import call, make_user, other_browser, services_of, sign_in

# Any signed-in user may use these; every other /api/v1/ route needs an admin.
SELF_SERVICE = {"/api/v1/user", "/api/v1/user/keys", "/api/v1/user/keys/{handle}"}
# The partner API authenticates partner apps, not people (another part of the API).
PARTNER_PREFIXES = ("/api/v1/oauth/", "/api/v1/embed/")
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def _api_routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, Route) or not route.path.startswith("/api/v1/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, route.path))
    return found


def _admin_routes(client: TestClient) -> list[tuple[str, str]]:
    return [
        (method, path)
        for method, path in _api_routes(client)
        if path not in SELF_SERVICE and not path.startswith(PARTNER_PREFIXES)
    ]


def _url(path: str) -> str:
    return _PARAM.sub(lambda found: "ann@example.com" if found.group(1) == "email" else "x1", path)


def test_the_route_table_holds_the_admin_api(client: TestClient) -> None:
    admin = _admin_routes(client)
    # A floor, not the list: the enumeration below must not silently find nothing.
    assert ("POST", "/api/v1/mappings/import") in admin
    assert ("PATCH", "/api/v1/users/{email}") in admin
    assert len(admin) >= 13


def test_a_non_admin_gets_403_from_every_admin_route(client: TestClient) -> None:
    headers = member_headers(client)
    for method, path in _admin_routes(client):
        response = client.request(
            method,
            _url(path),
            headers={**headers, "Content-Type": "application/json"},
            content=b"{}",
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 403


def test_a_non_admin_session_gets_403_from_every_admin_route(client: TestClient) -> None:
    make_user(client, MEMBER)
    sign_in(client, MEMBER)
    csrf = {"X-CSRF-Token": session_token(client)}
    for method, path in _admin_routes(client):
        response = client.request(method, _url(path), headers=csrf)
        assert response.status_code == 403, (method, path, response.text)


def test_no_credentials_get_401_from_every_api_route(client: TestClient) -> None:
    routes = [
        (method, path)
        for method, path in _api_routes(client)
        if not path.startswith(PARTNER_PREFIXES)
    ]
    for method, path in routes:
        response = client.request(method, _url(path))
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == 'Bearer realm="bff"'


@pytest.mark.parametrize(
    "authorization",
    ["Bearer bffk_not-a-real-key", "Bearer ", "Basic dXNlcjpwYXNz", "bffk_no-scheme", "Bearer x"],
)
def test_bad_bearer_credentials_get_401(client: TestClient, authorization: str) -> None:
    make_user(client, ADMIN, is_admin=True)
    key_for(client, ADMIN)
    response = client.get("/api/v1/users", headers={"Authorization": authorization})
    assert response.status_code == 401


def test_a_bad_key_is_not_rescued_by_a_valid_session(client: TestClient) -> None:
    make_user(client, ADMIN, is_admin=True)
    sign_in(client, ADMIN)
    response = client.get("/api/v1/users", headers=bearer("bffk_forged"))
    assert response.status_code == 401


def test_a_deleted_key_is_refused_on_the_very_next_request(client: TestClient) -> None:
    headers = admin_headers(client)
    assert client.get("/api/v1/user", headers=headers).status_code == 200
    assert client.delete("/api/v1/user/keys/main", headers=headers).status_code == 204
    response = client.get("/api/v1/user", headers=headers)
    assert response.status_code == 401


def test_a_disabled_owners_key_is_refused_on_the_very_next_request(client: TestClient) -> None:
    admin = admin_headers(client)
    member = member_headers(client)
    assert client.get("/api/v1/user", headers=member).status_code == 200
    response = client.patch(f"/api/v1/users/{MEMBER}", headers=admin, json={"disabled": True})
    assert response.status_code == 200
    assert client.get("/api/v1/user", headers=member).status_code == 401
    client.patch(f"/api/v1/users/{MEMBER}", headers=admin, json={"disabled": False})
    assert client.get("/api/v1/user", headers=member).status_code == 200


def test_a_key_acts_with_its_owners_rights(client: TestClient) -> None:
    admin = admin_headers(client)
    member = member_headers(client)
    assert client.get("/api/v1/user", headers=member).json() == {
        "id": 2,
        "email": MEMBER,
        "is_admin": False,
    }
    assert client.get("/api/v1/users", headers=member).status_code == 403
    client.patch(f"/api/v1/users/{MEMBER}", headers=admin, json={"is_admin": True})
    assert client.get("/api/v1/users", headers=member).status_code == 200


def test_a_session_write_without_the_csrf_header_gets_403(client: TestClient) -> None:
    make_user(client, ADMIN, is_admin=True)
    sign_in(client, ADMIN)
    assert client.get("/api/v1/tenants").status_code == 200
    response = client.post("/api/v1/tenants", json={"id": "acme"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    wrong = client.post("/api/v1/tenants", json={"id": "acme"}, headers={"X-CSRF-Token": "x" * 64})
    assert wrong.status_code == 403
    assert client.get("/api/v1/tenants").json() == {"items": []}


def test_a_session_write_with_the_csrf_header_is_accepted(client: TestClient) -> None:
    make_user(client, ADMIN, is_admin=True)
    sign_in(client, ADMIN)
    token = session_token(client)
    response = client.post("/api/v1/tenants", json={"id": "acme"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 201


def test_another_sessions_csrf_token_is_refused(client: TestClient) -> None:
    make_user(client, ADMIN, is_admin=True)
    sign_in(client, ADMIN)
    other = other_browser(client)
    sign_in(other, ADMIN)
    response = client.post(
        "/api/v1/tenants", json={"id": "acme"}, headers={"X-CSRF-Token": session_token(other)}
    )
    assert response.status_code == 403


def test_an_embedded_session_is_no_admin_credential(client: TestClient, settings: Settings) -> None:
    user_id = make_user(client, ADMIN, is_admin=True)
    store = services_of(client).sessions
    session = call(client, lambda: store.create(user_id, embedded=True))
    cookie = CookieJar(settings).sign_session(session.id)
    response = client.get("/api/v1/users", headers={"Cookie": f"__Host-bff_embed_session={cookie}"})
    assert response.status_code == 401
