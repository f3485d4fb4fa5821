"""Tenants and sub-tenants over the admin API."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.web.admin.helpers import MEMBER, activate, admin_headers
from tests.web.helpers import make_user, other_browser, sign_in

HOSTILE = "<script>alert('x')</script> \"quoted\" & Ünïcødé ✓ 日本"


def test_create_and_list_tenants_and_sub_tenants(client: TestClient) -> None:
    headers = admin_headers(client)
    assert client.post("/api/v1/tenants", headers=headers, json={"id": " acme "}).status_code == 201
    sub = client.post(
        "/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": "north", "name": "North"}
    )
    assert (sub.status_code, sub.json()) == (201, {"id": "north", "name": "North"})
    assert client.get("/api/v1/tenants", headers=headers).json() == {
        "items": [{"id": "acme", "name": "acme", "sub_tenants": [{"id": "north", "name": "North"}]}]
    }
    assert client.post("/api/v1/tenants", headers=headers, json={"id": "acme"}).status_code == 409
    missing = client.post("/api/v1/tenants/nope/sub-tenants", headers=headers, json={"id": "x"})
    assert missing.status_code == 404


def test_names_come_back_as_data_unchanged(client: TestClient) -> None:
    headers = admin_headers(client)
    client.post("/api/v1/tenants", headers=headers, json={"id": "acme", "name": HOSTILE})
    client.post(
        "/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": "n", "name": HOSTILE}
    )
    response = client.get("/api/v1/tenants", headers=headers)
    assert response.headers["content-type"] == "application/json"
    tenant = response.json()["items"][0]
    assert tenant["name"] == HOSTILE
    assert tenant["sub_tenants"][0]["name"] == HOSTILE
    created = client.post(
        "/api/v1/user/keys", headers=headers, json={"handle": "h", "alias": HOSTILE}
    )
    assert created.json()["alias"] == HOSTILE
    assert client.get("/api/v1/user/keys/h", headers=headers).json()["alias"] == HOSTILE


def test_invalid_ids_are_refused_naming_the_field(client: TestClient) -> None:
    headers = admin_headers(client)
    for tenant_id, words in (("", "tenant id is empty"), ("x" * 65, "longer than 64"),
                             ("-acme", "must start with"), ("a/b", "may contain only"),
                             ("<script>", "may contain only")):  # fmt: skip
        response = client.post("/api/v1/tenants", headers=headers, json={"id": tenant_id})
        assert response.status_code == 422, tenant_id
        assert words in response.json()["detail"]
    client.post("/api/v1/tenants", headers=headers, json={"id": "acme"})
    sub = client.post("/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": "a b"})
    assert sub.status_code == 422
    assert sub.json()["detail"].startswith("sub-tenant id")
    long_name = client.post("/api/v1/tenants", headers=headers, json={"id": "b", "name": "n" * 201})
    assert (long_name.status_code, long_name.json()["field"]) == (422, "name")


def test_delete_in_use_is_409_unless_cascading(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "north")])
    refused = client.delete("/api/v1/tenants/acme", headers=headers)
    assert refused.status_code == 409
    assert "1 mapping" in refused.json()["detail"]
    assert (
        client.delete("/api/v1/tenants/acme/sub-tenants/north", headers=headers).status_code == 409
    )
    assert client.get(f"/api/v1/users/{MEMBER}/mappings", headers=headers).json()["items"] != []
    assert client.delete("/api/v1/tenants/acme?cascade=true", headers=headers).status_code == 204
    assert client.get("/api/v1/tenants", headers=headers).json() == {"items": []}
    assert client.get(f"/api/v1/users/{MEMBER}/mappings", headers=headers).json() == {"items": []}
    assert client.delete("/api/v1/tenants/acme", headers=headers).status_code == 404


def test_delete_unused_sub_tenant(client: TestClient) -> None:
    headers = admin_headers(client)
    client.post("/api/v1/tenants", headers=headers, json={"id": "acme"})
    client.post("/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": "north"})
    assert (
        client.delete("/api/v1/tenants/acme/sub-tenants/north", headers=headers).status_code == 204
    )
    assert client.get("/api/v1/tenants", headers=headers).json()["items"][0]["sub_tenants"] == []
    assert client.delete("/api/v1/tenants/acme?cascade=maybe", headers=headers).status_code == 422


def test_a_cascading_delete_ends_the_sessions_showing_the_pair(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "north")])
    browser = other_browser(client)
    sign_in(browser, MEMBER)
    activate(browser, ("acme", "north"))
    assert browser.get("/_probe/whoami").text == f"{MEMBER} acme/north"
    assert client.delete("/api/v1/tenants/acme?cascade=true", headers=headers).status_code == 204
    assert browser.get("/_probe/whoami").status_code == 303


def test_bodies_that_are_not_a_json_object_are_400(client: TestClient) -> None:
    headers = {**admin_headers(client), "Content-Type": "application/json"}
    for body in (b"{", b"[1]", b"\xff", b"[" * 60_000):
        response = client.post("/api/v1/tenants", headers=headers, content=body)
        assert response.status_code == 400, body[:10]
        assert response.headers["content-type"] == "application/problem+json"
