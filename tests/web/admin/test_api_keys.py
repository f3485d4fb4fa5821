"""Personal API keys over the API: the token once, then only its hash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from starlette.testclient import TestClient

from bff.settings import Settings
from tests.web.admin.helpers import ADMIN, MEMBER, bearer, member_headers, session_token
from tests.web.helpers import make_user, sign_in


def _database_dump(settings: Settings) -> str:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as connection:
        dump = "\n".join(connection.iterdump())
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return dump + raw.decode("latin-1")


def test_create_shows_the_token_once_and_list_and_get_never(client: TestClient) -> None:
    headers = member_headers(client)
    created = client.post(
        "/api/v1/user/keys", headers=headers, json={"handle": "ci", "alias": "CI"}
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"handle", "alias", "token", "created_at"}
    assert (body["handle"], body["alias"]) == ("ci", "CI")
    assert body["created_at"].endswith("Z")
    assert created.headers["cache-control"] == "no-store"
    token = body["token"]
    assert client.get("/api/v1/user", headers=bearer(token)).json()["email"] == MEMBER

    listed = client.get("/api/v1/user/keys", headers=headers)
    assert [item["handle"] for item in listed.json()["items"]] == ["ci", "main"]
    assert token not in listed.text
    one = client.get("/api/v1/user/keys/ci", headers=headers)
    assert set(one.json()) == {"handle", "alias", "created_at", "last_used_at"}
    assert one.json()["last_used_at"] is not None  # used above
    assert token not in one.text


def test_a_duplicate_handle_is_409_and_handles_are_per_user(client: TestClient) -> None:
    member = member_headers(client)
    make_user(client, ADMIN, is_admin=True)
    assert (
        client.post("/api/v1/user/keys", headers=member, json={"handle": "main"}).status_code == 409
    )
    sign_in(client, ADMIN)
    response = client.post(
        "/api/v1/user/keys",
        json={"handle": "main"},
        headers={"X-CSRF-Token": session_token(client)},
    )
    assert response.status_code == 201


def test_a_user_sees_and_deletes_only_their_own_keys(client: TestClient) -> None:
    member = member_headers(client)
    other = member_headers(client, "other@example.com")
    client.post("/api/v1/user/keys", headers=other, json={"handle": "secret-one"})
    assert client.get("/api/v1/user/keys/secret-one", headers=member).status_code == 404
    assert client.delete("/api/v1/user/keys/secret-one", headers=member).status_code == 404
    assert client.get("/api/v1/user/keys/secret-one", headers=other).status_code == 200


def test_invalid_handles_and_aliases_are_refused_naming_the_field(client: TestClient) -> None:
    headers = member_headers(client)
    for body, field in (
        ({}, "handle"),
        ({"handle": 5}, "handle"),
        ({"handle": "-x"}, None),
        ({"handle": "x" * 65}, None),
        ({"handle": "ok", "alias": "a" * 201}, "alias"),
        ({"handle": "ok", "alias": ["list"]}, "alias"),
    ):
        response = client.post("/api/v1/user/keys", headers=headers, json=body)
        assert response.status_code == 422, body
        problem = response.json()
        assert ("handle" in problem["detail"]) or ("alias" in problem["detail"])
        if field:
            assert problem["field"] == field


def test_a_malformed_body_is_a_400_problem(client: TestClient) -> None:
    headers = member_headers(client)
    for content in (b"{", b"[1]", b"\xff"):
        response = client.post(
            "/api/v1/user/keys",
            headers={**headers, "Content-Type": "application/json"},
            content=content,
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"


def test_the_database_holds_no_token_in_clear(client: TestClient, settings: Settings) -> None:
    headers = member_headers(client)
    tokens = [
        client.post("/api/v1/user/keys", headers=headers, json={"handle": f"k{n}"}).json()["token"]
        for n in range(3)
    ]
    for token in tokens:
        assert client.get("/api/v1/user", headers=bearer(token)).status_code == 200
    dump = _database_dump(settings)
    assert "api_keys" in dump
    for token in tokens:
        assert token not in dump
        assert token.removeprefix("bffk_") not in dump
