"""``/account/api-keys``: any signed-in user's own keys; the token shown once, then only
usable as a bearer token until the key is deleted."""

from __future__ import annotations

import re
from html import unescape

import httpx2
from starlette.testclient import TestClient

from bff.operations import audit
from bff.settings import Settings
from bff.web.account.api_keys import EMBEDDED
from bff.web.auth.cookies import CookieJar
from bff.web.auth.csrf import FORBIDDEN_MESSAGE
from bff.web.auth.guard import login_url
from tests.web.helpers import call, form_token, make_user, other_browser, services_of, sign_in

MEMBER = "member@example.com"
PATH = "/account/api-keys"
_TOKEN = re.compile(r'<code id="new-token">([^<]+)</code>')


def _member(client: TestClient, email: str = MEMBER, *, is_admin: bool = False) -> TestClient:
    make_user(client, email, is_admin=is_admin)
    browser = other_browser(client)
    assert sign_in(browser, email).status_code == 303
    return browser


def _post(browser: TestClient, action: str, **data: str) -> httpx2.Response:
    page = browser.get(PATH)
    assert page.status_code == 200
    return browser.post(f"{PATH}/{action}", data={"csrf_token": form_token(page.text), **data})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _actions(client: TestClient) -> list[tuple[str, str, str]]:
    async def read() -> list[tuple[str, str, str]]:
        found = await audit.list_entries(services_of(client).database)
        return [(entry.actor, entry.action, entry.target) for entry in reversed(found.items)]

    return call(client, read)


def _create(browser: TestClient, handle: str = "ci", alias: str = "") -> str:
    created = _post(browser, "create", handle=handle, alias=alias)
    assert created.status_code == 200
    found = _TOKEN.search(created.text)
    assert found
    return unescape(found.group(1))


def test_a_member_creates_a_key_sees_its_token_once_and_uses_it(client: TestClient) -> None:
    browser = _member(client)
    empty = browser.get(PATH)
    assert empty.status_code == 200
    assert "You have no API keys yet." in empty.text
    assert 'href="/admin/"' not in empty.text

    created = _post(browser, "create", handle=" ci ", alias='CI <b>"runner"</b> ✓')
    assert created.status_code == 200
    assert 'class="secret-once"' in created.text
    assert "it will not be shown again" in created.text
    assert 'data-copy="new-token"' in created.text
    found = _TOKEN.search(created.text)
    assert found
    token = unescape(found.group(1))

    listed = browser.get(PATH)
    assert token not in listed.text and "secret-once" not in listed.text
    assert "<code>ci</code>" in listed.text
    assert "CI &lt;b&gt;&#34;runner&#34;&lt;/b&gt; ✓" in listed.text
    assert "never" in listed.text

    me = client.get("/api/v1/user", headers=_bearer(token))
    assert me.status_code == 200
    assert me.json()["email"] == MEMBER
    assert "never" not in browser.get(PATH).text  # last used
    assert _actions(client) == [(MEMBER, "api_key.create", f"{MEMBER} ci")]


def test_delete_needs_confirmation_then_the_token_fails_at_once(client: TestClient) -> None:
    browser = _member(client)
    token = _create(browser)
    asked = _post(browser, "delete", handle="ci")
    assert asked.status_code == 200
    assert "Delete the key <code>ci</code>?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert client.get("/api/v1/user", headers=_bearer(token)).status_code == 200

    deleted = browser.post(
        f"{PATH}/delete",
        data={"csrf_token": form_token(asked.text), "handle": "ci", "confirm": "yes"},
    )
    assert (deleted.status_code, deleted.headers["location"]) == (303, f"{PATH}?done=deleted")
    assert client.get("/api/v1/user", headers=_bearer(token)).status_code == 401
    page = browser.get(deleted.headers["location"])
    assert "The key was deleted." in page.text and "You have no API keys yet." in page.text
    assert [action for _, action, _ in _actions(client)] == ["api_key.create", "api_key.delete"]
    again = _post(browser, "delete", handle="ci", confirm="yes")
    assert again.status_code == 404 and "no key ci" in again.text


def test_refusals_keep_the_input(client: TestClient) -> None:
    browser = _member(client)
    _create(browser)
    duplicate = _post(browser, "create", handle="ci", alias="second")
    assert duplicate.status_code == 409
    assert "a key with the handle ci already exists" in duplicate.text
    assert 'value="second"' in duplicate.text and "secret-once" not in duplicate.text
    bad = _post(browser, "create", handle="<bad handle>")
    assert bad.status_code == 422
    assert "handle" in bad.text and "<bad handle>" not in bad.text
    assert 'value="&lt;bad handle&gt;"' in bad.text


def test_keys_are_per_user_and_an_admin_sees_the_console_link(client: TestClient) -> None:
    member = _member(client)
    _create(member, "mine")
    admin = _member(client, "root@example.com", is_admin=True)
    page = admin.get(PATH)
    assert page.status_code == 200
    assert "<code>mine</code>" not in page.text
    assert 'href="/admin/"' in page.text
    foreign = _post(admin, "delete", handle="mine", confirm="yes")
    assert foreign.status_code == 404
    assert "<code>mine</code>" in member.get(PATH).text


def test_signed_out_and_embedded_sessions_are_refused(
    client: TestClient, settings: Settings
) -> None:
    signed_out = client.get(PATH)
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, login_url(PATH))
    user_id = make_user(client, MEMBER)
    store = services_of(client).sessions
    session = call(client, lambda: store.create(user_id, embedded=True))
    cookie = CookieJar(settings).sign_session(session.id)
    embedded = client.get(PATH, headers={"Cookie": f"__Host-bff_embed_session={cookie}"})
    assert embedded.status_code == 403
    assert EMBEDDED in embedded.text


def test_forms_need_their_csrf_token(client: TestClient) -> None:
    browser = _member(client)
    _create(browser)
    for action in ("create", "delete"):
        data = {"handle": "ci", "confirm": "yes"}
        missing = browser.post(f"{PATH}/{action}", data=data)
        assert missing.status_code == 403 and FORBIDDEN_MESSAGE in missing.text
        forged = browser.post(f"{PATH}/{action}", data={**data, "csrf_token": "forged"})
        assert forged.status_code == 403
        token = form_token(browser.get(PATH).text)
        foreign = browser.post(
            f"{PATH}/{action}",
            data={**data, "csrf_token": token},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert foreign.status_code == 403
    assert "<code>ci</code>" in browser.get(PATH).text
    assert [action for _, action, _ in _actions(client)] == ["api_key.create"]
