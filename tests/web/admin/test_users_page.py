"""``/admin/users``: create (password or one-time link), search and pages, disable and
enable, the admin flag, delete with confirmation, self-protection, escaping, audit."""

from __future__ import annotations

import re
from html import unescape

import httpx2
from sqlalchemy import insert
from starlette.testclient import TestClient

from bff.operations import audit
from bff.store.models import User
from tests.web.admin.helpers import ADMIN, MEMBER
from tests.web.helpers import (
    PASSWORD,
    call,
    form_token,
    make_user,
    other_browser,
    services_of,
    sign_in,
)

_LINK = re.compile(r'<code id="set-password-link">([^<]+)</code>')
NEW_PASSWORD = "a brand new passphrase 42"


def _admin(client: TestClient) -> TestClient:
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    return browser


def _post(browser: TestClient, action: str, **data: str) -> httpx2.Response:
    page = browser.get("/admin/users")
    assert page.status_code == 200
    return browser.post(
        f"/admin/users/{action}", data={"csrf_token": form_token(page.text), **data}
    )


def _actions(client: TestClient) -> list[tuple[str, str, str]]:
    async def read() -> list[tuple[str, str, str]]:
        found = await audit.list_entries(services_of(client).database)
        return [(entry.actor, entry.action, entry.target) for entry in reversed(found.items)]

    return call(client, read)


def _user_row(page: str, email: str) -> str:
    rows = [row.split("</tr>")[0] for row in page.split("<tr>") if f"<td>{email}" in row]
    assert len(rows) == 1, email
    return rows[0]


def test_create_with_a_password_lets_the_user_sign_in(client: TestClient) -> None:
    browser = _admin(client)
    created = _post(browser, "create", email=" New@Example.com ", password=PASSWORD)
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/users?q=new%40example.com&done=created"
    page = browser.get(created.headers["location"])
    assert "The user was created." in page.text
    assert 'badge ok">enabled' in _user_row(page.text, "new@example.com")
    assert sign_in(other_browser(client), "new@example.com").status_code == 303
    assert _actions(client)[-1] == (ADMIN, "user.create", "new@example.com")


def test_create_without_a_password_shows_a_one_time_link_once(client: TestClient) -> None:
    browser = _admin(client)
    created = _post(browser, "create", email="link@example.com", is_admin="yes", password="")
    assert created.status_code == 200
    assert 'class="secret-once"' in created.text
    assert "it will not be shown again" in created.text
    assert 'data-copy="set-password-link"' in created.text
    found = _LINK.search(created.text)
    assert found
    link = unescape(found.group(1))
    assert link.startswith("https://testserver/account/set-password?token=")
    token = link.rsplit("=", 1)[1]
    # Reloading the list (or reading the audit log) never shows it again.
    assert token not in browser.get("/admin/users").text
    assert token not in browser.get("/admin/audit").text
    assert 'badge ok">admin' in _user_row(browser.get("/admin/users").text, "link@example.com")

    holder = other_browser(client)
    form = holder.get(link.removeprefix("https://testserver"))
    assert form.status_code == 200
    data = {
        "csrf_token": form_token(form.text),
        "token": token,
        "password": NEW_PASSWORD,
        "password_again": NEW_PASSWORD,
    }
    assert holder.post("/account/set-password", data=data).status_code == 200
    assert holder.post("/account/set-password", data=data).status_code == 404
    assert sign_in(other_browser(client), "link@example.com", NEW_PASSWORD).status_code == 303


def test_create_refusals_keep_the_input(client: TestClient) -> None:
    browser = _admin(client)
    weak = _post(browser, "create", email="weak@example.com", is_admin="yes", password="short")
    assert weak.status_code == 422
    assert "at least 12 characters" in weak.text
    assert 'value="weak@example.com"' in weak.text and "checked" in weak.text
    assert "short" not in weak.text.split("create-title")[1]
    bad = _post(browser, "create", email="not an address")
    assert bad.status_code == 422 and "is not a valid e-mail address" in bad.text
    duplicate = _post(browser, "create", email=ADMIN.upper())
    assert duplicate.status_code == 409 and f"a user {ADMIN} already exists" in duplicate.text


def test_search_and_pages(client: TestClient) -> None:
    browser = _admin(client)

    async def many() -> None:
        async with services_of(client).database.session() as db:
            await db.execute(
                insert(User), [{"email": f"user{n:03}@corp.example"} for n in range(120)]
            )

    call(client, many)
    first = browser.get("/admin/users", params={"q": "corp"})
    assert first.status_code == 200
    assert first.text.count("<tr>") == 1 + 50
    assert "user000@corp.example" in first.text and ADMIN not in first.text.split("<table")[1]
    assert 'href="?q=corp&amp;page=2" rel="next"' in first.text
    third = browser.get("/admin/users", params={"q": "corp", "page": "3"})
    assert third.text.count("<tr>") == 1 + 20
    assert 'rel="next"' not in third.text and 'href="?q=corp&amp;page=2" rel="prev"' in third.text
    one = browser.get("/admin/users", params={"q": "USER007"})
    assert one.text.count("<tr>") == 2 and "user007@corp.example" in one.text
    none = browser.get("/admin/users", params={"q": "nobody"})
    assert none.status_code == 200
    assert "No users match “nobody”." in none.text
    past = browser.get("/admin/users", params={"page": "99"})
    assert "This page is empty." in past.text


def test_disable_ends_the_users_session_at_once_and_enable_restores(client: TestClient) -> None:
    browser = _admin(client)
    make_user(client, MEMBER)
    member = other_browser(client)
    assert sign_in(member, MEMBER).status_code == 303
    assert member.get("/account/api-keys").status_code == 200

    disabled = _post(browser, "disable", email=MEMBER, q="member", page="1")
    assert disabled.status_code == 303
    assert disabled.headers["location"] == "/admin/users?q=member&done=disabled"
    ended = member.get("/account/api-keys")
    assert ended.status_code == 303
    assert ended.headers["location"].startswith("/login?")
    assert "reason=expired" in ended.headers["location"]
    page = browser.get(disabled.headers["location"])
    assert "their sessions have ended" in page.text
    assert 'badge bad">disabled' in _user_row(page.text, MEMBER)
    assert sign_in(other_browser(client), MEMBER).status_code == 400  # refused

    enabled = _post(browser, "enable", email=MEMBER)
    assert (enabled.status_code, enabled.headers["location"]) == (303, "/admin/users?done=enabled")
    assert sign_in(other_browser(client), MEMBER).status_code == 303
    assert [action for _, action, _ in _actions(client)] == ["user.update", "user.update"]


def test_the_admin_flag(client: TestClient) -> None:
    browser = _admin(client)
    make_user(client, MEMBER)
    member = other_browser(client)
    assert sign_in(member, MEMBER).status_code == 303
    assert member.get("/admin/users").status_code == 403
    granted = _post(browser, "admin", email=MEMBER, is_admin="yes")
    assert (granted.status_code, granted.headers["location"]) == (
        303,
        "/admin/users?done=admin-granted",
    )
    row = _user_row(browser.get("/admin/users").text, MEMBER)
    assert 'badge ok">admin' in row and "Remove admin" in row
    promoted = other_browser(client)
    assert sign_in(promoted, MEMBER).status_code == 303
    assert promoted.get("/admin/users").status_code == 200

    removed = _post(browser, "admin", email=MEMBER, is_admin="no")
    assert removed.headers["location"] == "/admin/users?done=admin-removed"
    # A demoted admin's sessions end: they carried the old flag.
    assert promoted.get("/admin/users").status_code == 303
    assert "Make admin" in _user_row(browser.get("/admin/users").text, MEMBER)
    details = [(action, target) for _, action, target in _actions(client)]
    assert details == [("user.update", MEMBER), ("user.update", MEMBER)]


def test_delete_needs_confirmation(client: TestClient) -> None:
    browser = _admin(client)
    make_user(client, MEMBER)
    asked = _post(browser, "delete", email=MEMBER, q="mem")
    assert asked.status_code == 200
    assert f"Delete the user {MEMBER}?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert 'href="/admin/users?q=mem">Cancel' in asked.text
    assert MEMBER in browser.get("/admin/users").text
    assert _actions(client) == []

    deleted = browser.post(
        "/admin/users/delete",
        data={"csrf_token": form_token(asked.text), "email": MEMBER, "q": "mem", "confirm": "yes"},
    )
    assert (deleted.status_code, deleted.headers["location"]) == (
        303,
        "/admin/users?q=mem&done=deleted",
    )
    page = browser.get(deleted.headers["location"])
    assert "The user was deleted." in page.text and "No users match “mem”." in page.text
    assert _actions(client) == [(ADMIN, "user.delete", MEMBER)]
    gone = _post(browser, "delete", email=MEMBER, confirm="yes")
    assert gone.status_code == 404 and f"no user {MEMBER}" in gone.text


def test_nobody_disables_demotes_or_deletes_themselves(client: TestClient) -> None:
    browser = _admin(client)
    own_row = _user_row(browser.get("/admin/users").text, ADMIN)
    assert "you</span>" in own_row and "<form" not in own_row
    for action, extra in (("disable", {}), ("admin", {"is_admin": "no"})):
        refused = _post(browser, action, email=ADMIN, **extra)
        assert refused.status_code == 422
        assert "you cannot disable yourself or remove your own admin flag" in refused.text
    deleted = _post(browser, "delete", email=ADMIN, confirm="yes")
    assert deleted.status_code == 422 and "you cannot delete yourself" in deleted.text
    assert browser.get("/admin/users").status_code == 200
    assert _actions(client) == []


def test_emails_and_searches_render_escaped(client: TestClient) -> None:
    browser = _admin(client)
    odd = "<script>alert('x')</script>\"zoë@example.com"
    created = _post(browser, "create", email=odd, password=PASSWORD)
    assert created.status_code == 303
    page = browser.get("/admin/users")
    assert "<script>alert" not in page.text
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;zoë@example.com"
    assert f"<td>{escaped}" in page.text
    assert f'name="email" value="{escaped}"' in page.text
    search = browser.get("/admin/users", params={"q": '"><script>'})
    assert "<script>" not in search.text.split("</header>")[1]
    assert 'value="&#34;&gt;&lt;script&gt;"' in search.text
    disabled = _post(browser, "disable", email=odd)
    assert disabled.status_code == 303
    asked = _post(browser, "delete", email=odd)
    assert f"Delete the user {escaped}?" in asked.text
    assert "<script>alert" not in asked.text


def test_forms_need_their_csrf_token(client: TestClient) -> None:
    browser = _admin(client)
    make_user(client, MEMBER)
    for action in ("create", "disable", "enable", "admin", "delete"):
        data = {"email": MEMBER, "confirm": "yes", "is_admin": "yes", "csrf_token": "forged"}
        assert browser.post(f"/admin/users/{action}", data=data).status_code == 403, action
    assert _actions(client) == []
