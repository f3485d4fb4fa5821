"""A user's mappings over the admin API, and CSV export."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.web.admin.helpers import MEMBER, activate, admin_headers
from tests.web.helpers import make_user, other_browser, sign_in

NORTH = {"tenant_id": "acme", "sub_tenant_id": "north"}
SOUTH = {"tenant_id": "acme", "sub_tenant_id": "south"}


def _pairs(client: TestClient, headers: dict[str, str]) -> None:
    client.post("/api/v1/tenants", headers=headers, json={"id": "acme"})
    for sub in ("north", "south"):
        client.post("/api/v1/tenants/acme/sub-tenants", headers=headers, json={"id": sub})


def test_put_replaces_and_get_lists(client: TestClient) -> None:
    headers = admin_headers(client)
    _pairs(client, headers)
    make_user(client, MEMBER)
    url = f"/api/v1/users/{MEMBER}/mappings"
    response = client.put(url, headers=headers, json={"items": [SOUTH, NORTH, NORTH]})
    assert (response.status_code, response.json()) == (200, {"items": [NORTH, SOUTH]})
    assert client.get(url, headers=headers).json() == {"items": [NORTH, SOUTH]}
    assert client.put(url, headers=headers, json={"items": []}).json() == {"items": []}


def test_put_refuses_unknown_pairs_and_bad_items_changing_nothing(client: TestClient) -> None:
    headers = admin_headers(client)
    _pairs(client, headers)
    make_user(client, MEMBER, scopes=[("acme", "north")])
    url = f"/api/v1/users/{MEMBER}/mappings"
    for body in (
        {"items": [SOUTH, {"tenant_id": "acme", "sub_tenant_id": "west"}]},
        {"items": [SOUTH, {"tenant_id": "acme"}]},
        {"items": [SOUTH, "acme/north"]},
        {"items": {"tenant_id": "acme"}},
        {"items": [{"tenant_id": "acme", "sub_tenant_id": "x" * 65}]},
    ):
        response = client.put(url, headers=headers, json=body)
        assert response.status_code == 422, body
    assert client.get(url, headers=headers).json() == {"items": [NORTH]}
    unknown = client.put(
        "/api/v1/users/nobody@example.com/mappings", headers=headers, json={"items": []}
    )
    assert unknown.status_code == 404


def test_removing_a_pair_ends_the_sessions_using_it_at_once(client: TestClient) -> None:
    headers = admin_headers(client)
    _pairs(client, headers)
    make_user(client, MEMBER, scopes=[("acme", "north"), ("acme", "south")])
    on_north = other_browser(client)
    sign_in(on_north, MEMBER)
    activate(on_north, ("acme", "north"))
    on_south = other_browser(client)
    sign_in(on_south, MEMBER)
    activate(on_south, ("acme", "south"))
    response = client.put(
        f"/api/v1/users/{MEMBER}/mappings", headers=headers, json={"items": [SOUTH]}
    )
    assert response.status_code == 200
    ended = on_north.get("/_probe/whoami")
    assert ended.status_code == 303
    assert "reason=expired" in ended.headers["location"]
    assert on_south.get("/_probe/whoami").text == f"{MEMBER} acme/south"


def test_export_is_csv_in_the_import_format(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER, scopes=[("acme", "south"), ("acme", "north")])
    make_user(client, "a@example.com", scopes=[("beta", "one")])
    response = client.get("/api/v1/mappings/export", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text == (
        "email,tenant_id,sub_tenant_id\n"
        "a@example.com,beta,one\n"
        f"{MEMBER},acme,north\n"
        f"{MEMBER},acme,south\n"
    )
