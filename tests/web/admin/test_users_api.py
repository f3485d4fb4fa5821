"""Users over the admin API: create, search, page, disable (ending sessions at once)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import insert
from starlette.testclient import TestClient

from bff.operations import users
from bff.store.models import User
from tests.web.admin.helpers import ADMIN, MEMBER, admin_headers
from tests.web.helpers import PASSWORD, call, make_user, other_browser, services_of, sign_in


def test_create_with_a_password_lets_the_user_sign_in(client: TestClient) -> None:
    headers = admin_headers(client)
    response = client.post(
        "/api/v1/users", headers=headers, json={"email": "  New@Example.com ", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json() == {"id": 2, "email": "new@example.com", "is_admin": False}
    assert sign_in(other_browser(client), "new@example.com").status_code == 303


def test_create_without_a_password_gives_a_one_time_link(client: TestClient) -> None:
    headers = admin_headers(client)
    response = client.post("/api/v1/users", headers=headers, json={"email": "link@example.com"})
    assert response.status_code == 201
    url = response.json()["set_password_url"]
    assert url.startswith("https://testserver/account/set-password?token=")
    token = parse_qs(urlsplit(url).query)["token"][0]
    svc = services_of(client)

    async def redeem() -> None:
        await users.set_password_with_token(svc.database, token, PASSWORD, now=svc.clock.now())

    call(client, redeem)
    assert sign_in(other_browser(client), "link@example.com").status_code == 303


def test_weak_password_and_bad_email_are_422_naming_the_problem(client: TestClient) -> None:
    headers = admin_headers(client)
    weak = client.post(
        "/api/v1/users", headers=headers, json={"email": "a@example.com", "password": "short"}
    )
    assert weak.status_code == 422
    assert "at least 12 characters" in weak.json()["detail"]
    bad = client.post("/api/v1/users", headers=headers, json={"email": "not an address"})
    assert bad.status_code == 422
    assert "e-mail" in bad.json()["detail"]
    missing = client.post("/api/v1/users", headers=headers, json={})
    assert (missing.status_code, missing.json()["field"]) == (422, "email")
    flag = client.post(
        "/api/v1/users", headers=headers, json={"email": "b@example.com", "is_admin": "yes"}
    )
    assert (flag.status_code, flag.json()["field"]) == (422, "is_admin")


def test_a_duplicate_user_is_409(client: TestClient) -> None:
    headers = admin_headers(client)
    response = client.post("/api/v1/users", headers=headers, json={"email": ADMIN.upper()})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


def test_search_and_pages(client: TestClient) -> None:
    headers = admin_headers(client)
    svc = services_of(client)

    async def many() -> None:
        async with svc.database.session() as db:
            await db.execute(
                insert(User),
                [{"email": f"user{n:03}@corp.example"} for n in range(120)]
                + [{"email": "100%_odd@corp.example"}],
            )

    call(client, many)
    first = client.get("/api/v1/users?q=corp&page=1", headers=headers).json()
    assert len(first["items"]) == 50 and first["next_page"] == 2
    assert first["items"][0]["email"] == "100%_odd@corp.example"
    third = client.get("/api/v1/users?q=corp&page=3", headers=headers).json()
    assert (len(third["items"]), third["next_page"]) == (21, None)
    assert set(third["items"][0]) == {"id", "email", "is_admin", "disabled"}
    # LIKE's wildcards are matched literally.
    odd = client.get("/api/v1/users", params={"q": "%_"}, headers=headers).json()
    assert [u["email"] for u in odd["items"]] == ["100%_odd@corp.example"]
    assert client.get("/api/v1/users?q=USER007", headers=headers).json()["items"][0]["email"] == (
        "user007@corp.example"
    )
    assert client.get("/api/v1/users?page=0", headers=headers).status_code == 422
    assert client.get("/api/v1/users?page=x", headers=headers).status_code == 422


def test_disabling_a_user_ends_their_sessions_at_once(client: TestClient) -> None:
    headers = admin_headers(client)
    make_user(client, MEMBER)
    browser = other_browser(client)
    sign_in(browser, MEMBER)
    assert browser.get("/_probe/whoami").status_code == 200
    response = client.patch(f"/api/v1/users/{MEMBER}", headers=headers, json={"disabled": True})
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    ended = browser.get("/_probe/whoami")
    assert ended.status_code == 303
    assert "reason=expired" in ended.headers["location"]


def test_an_admin_cannot_disable_or_demote_themselves(client: TestClient) -> None:
    headers = admin_headers(client)
    for body in ({"disabled": True}, {"is_admin": False}):
        assert client.patch(f"/api/v1/users/{ADMIN}", headers=headers, json=body).status_code == 422
    assert client.get("/api/v1/user", headers=headers).json()["is_admin"] is True


def test_patch_an_unknown_user_is_404(client: TestClient) -> None:
    headers = admin_headers(client)
    response = client.patch(
        "/api/v1/users/nobody@example.com", headers=headers, json={"disabled": True}
    )
    assert response.status_code == 404
