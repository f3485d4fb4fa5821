"""``/api/v1/partner-apps``: create, list, change, new secret, revoke."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bff.operations import partner_apps
from bff.settings import Settings
from tests.web.admin.helpers import admin_headers, member_headers
from tests.web.helpers import call, make_user, services_of

APPS = "/api/v1/partner-apps"
PAIR = {"tenant_id": "acme", "sub_tenant_id": "north"}
NEW_APP = {"name": "Partner", "allowed_origins": ["https://partner.example"], "pairs": [PAIR]}


def _admin_with_pairs(client: TestClient) -> dict[str, str]:
    """An admin's headers; the tenant acme with the sub-tenants north and south exists."""
    headers = admin_headers(client)
    assert client.post("/api/v1/tenants", headers=headers, json={"id": "acme"}).status_code == 201
    for sub in ("north", "south"):
        response = client.post(
            "/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": sub}
        )
        assert response.status_code == 201
    return headers


def _create(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(APPS, headers=headers, json=NEW_APP)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _authenticate(client: TestClient, client_id: str, secret: str) -> int | None:
    svc = services_of(client)
    found = call(
        client,
        lambda: partner_apps.authenticate_client(svc.database, client_id, secret, svc.clock.now()),
    )
    return None if found is None else found.app.id


def _embed_session(client: TestClient, app_id: int) -> str:
    user_id = make_user(client, "ann@example.com", scopes=[("acme", "north")])
    store = services_of(client).sessions
    session = call(
        client,
        lambda: store.create(
            user_id, embedded=True, scope=("acme", "north"), partner_app_id=app_id
        ),
    )
    return session.id


def _session_alive(client: TestClient, session_id: str) -> bool:
    store = services_of(client).sessions
    return call(client, lambda: store.load(session_id)) is not None


def _database_bytes(settings: Settings) -> bytes:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_create_answers_the_secret_once_and_stores_only_its_hash(
    client: TestClient, settings: Settings
) -> None:
    headers = _admin_with_pairs(client)
    response = client.post(APPS, headers=headers, json=NEW_APP)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created.pop("client_secret")
    assert secret.startswith("bffs_") and len(secret) == 48
    assert created == {
        "id": 1,
        "name": "Partner",
        "client_id": created["client_id"],
        "allowed_origins": ["https://partner.example"],
        "pairs": [PAIR],
        "created_at": created["created_at"],
        "last_used_at": None,
        "status": "active",
    }
    assert created["client_id"].startswith("bffp_")
    assert created["created_at"].endswith("Z")
    listed = client.get(APPS, headers=headers)
    assert listed.json() == {"items": [created]}
    assert secret not in listed.text
    audit = client.get("/api/v1/audit", headers=headers)
    assert audit.json()["items"][0] == {
        "at": audit.json()["items"][0]["at"],
        "actor": "root@example.com",
        "action": "partner_app.create",
        "target": "Partner (#1)",
    }
    assert secret not in audit.text
    assert _authenticate(client, created["client_id"], secret) == 1
    stored = _database_bytes(settings)
    assert created["client_id"].encode() in stored  # the file is the one written to
    assert secret.encode() not in stored
    assert secret.removeprefix("bffs_").encode() not in stored


def test_a_new_secret_ends_the_old_one_and_the_embed_sessions(
    client: TestClient, settings: Settings
) -> None:
    headers = _admin_with_pairs(client)
    created = _create(client, headers)
    app_id, client_id, old = created["id"], created["client_id"], created["client_secret"]
    session_id = _embed_session(client, app_id)
    assert _session_alive(client, session_id)
    response = client.post(f"{APPS}/{app_id}/secret", headers=headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    renewed = response.json()
    assert set(renewed) == {"client_id", "client_secret"}
    assert renewed["client_id"] == client_id and renewed["client_secret"] != old
    assert _authenticate(client, client_id, old) is None
    assert _authenticate(client, client_id, renewed["client_secret"]) == app_id
    assert not _session_alive(client, session_id)
    listed = client.get(APPS, headers=headers).text
    assert old not in listed and renewed["client_secret"] not in listed
    stored = _database_bytes(settings)
    assert old.encode() not in stored and renewed["client_secret"].encode() not in stored


def test_revoke_ends_the_credentials_and_the_embed_sessions(client: TestClient) -> None:
    headers = _admin_with_pairs(client)
    created = _create(client, headers)
    app_id = created["id"]
    session_id = _embed_session(client, app_id)
    response = client.post(f"{APPS}/{app_id}/revoke", headers=headers)
    assert response.status_code == 200
    expected = {**created, "status": "revoked"}
    del expected["client_secret"]
    assert response.json() == expected
    assert _authenticate(client, created["client_id"], created["client_secret"]) is None
    assert not _session_alive(client, session_id)
    again = client.post(f"{APPS}/{app_id}/secret", headers=headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["detail"] == f"partner app {app_id} is revoked; create a new one"
    assert client.get(APPS, headers=headers).json()["items"][0]["status"] == "revoked"


def test_patch_changes_name_origins_and_pairs(client: TestClient) -> None:
    headers = _admin_with_pairs(client)
    app_id = _create(client, headers)["id"]
    response = client.patch(
        f"{APPS}/{app_id}",
        headers=headers,
        json={
            "name": "Renamed",
            "allowed_origins": ["https://A.example:443/", "http://localhost:8080"],
            "pairs": [{"tenant_id": "acme", "sub_tenant_id": "south"}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["allowed_origins"], body["pairs"]) == (
        "Renamed",
        ["https://a.example", "http://localhost:8080"],
        [{"tenant_id": "acme", "sub_tenant_id": "south"}],
    )
    only_name = client.patch(f"{APPS}/{app_id}", headers=headers, json={"name": "Again"})
    assert only_name.json()["allowed_origins"] == ["https://a.example", "http://localhost:8080"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NEW_APP, "name": None}, "name"),
        ({**NEW_APP, "name": 5}, "name"),
        ({**NEW_APP, "name": " "}, "name"),
        ({"name": "P", "pairs": []}, "allowed_origins"),
        ({**NEW_APP, "allowed_origins": "https://partner.example"}, "allowed_origins"),
        ({**NEW_APP, "allowed_origins": ["https://*.partner.example"]}, "allowed_origins"),
        ({**NEW_APP, "allowed_origins": ["http://partner.example"]}, "allowed_origins"),
        ({**NEW_APP, "allowed_origins": ["https://partner.example/embed"]}, "allowed_origins"),
        ({"name": "P", "allowed_origins": []}, "pairs"),
        ({**NEW_APP, "pairs": [["acme", "north"]]}, "pairs"),
        ({**NEW_APP, "pairs": [{"tenant_id": "acme"}]}, "pairs"),
        ({**NEW_APP, "pairs": [{"tenant_id": "acme", "sub_tenant_id": "west"}]}, "pairs"),
        ({**NEW_APP, "pairs": [{"tenant_id": "nope", "sub_tenant_id": "north"}]}, "pairs"),
        ({**NEW_APP, "pairs": [{"tenant_id": "ac me", "sub_tenant_id": "north"}]}, "pairs"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    headers = _admin_with_pairs(client)
    response = client.post(APPS, headers=headers, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert client.get(APPS, headers=headers).json() == {"items": []}


def test_patch_refuses_bad_input_and_changes_nothing(client: TestClient) -> None:
    headers = _admin_with_pairs(client)
    created = _create(client, headers)
    response = client.patch(
        f"{APPS}/{created['id']}",
        headers=headers,
        json={"name": "New", "pairs": [{"tenant_id": "acme", "sub_tenant_id": "west"}]},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "pairs"
    assert client.get(APPS, headers=headers).json()["items"][0]["name"] == "Partner"


@pytest.mark.parametrize("app_id", ["999", "x1", "-1", "1.0", "9" * 30])
def test_unknown_ids_are_404_problems(client: TestClient, app_id: str) -> None:
    headers = _admin_with_pairs(client)
    _create(client, headers)
    for method, path in [
        ("PATCH", f"{APPS}/{app_id}"),
        ("POST", f"{APPS}/{app_id}/secret"),
        ("POST", f"{APPS}/{app_id}/revoke"),
    ]:
        response = client.request(method, path, headers=headers, json={"name": "x"})
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == "application/problem+json"


def test_a_non_admin_gets_403_and_changes_nothing(client: TestClient) -> None:
    headers = _admin_with_pairs(client)
    app_id = _create(client, headers)["id"]
    member = member_headers(client)
    for method, path in [
        ("GET", APPS),
        ("POST", APPS),
        ("PATCH", f"{APPS}/{app_id}"),
        ("POST", f"{APPS}/{app_id}/secret"),
        ("POST", f"{APPS}/{app_id}/revoke"),
    ]:
        response = client.request(method, path, headers=member, json=NEW_APP)
        assert response.status_code == 403, (method, path)
    listed = client.get(APPS, headers=headers).json()["items"]
    assert [(a["name"], a["status"]) for a in listed] == [("Partner", "active")]
