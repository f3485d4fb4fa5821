"""``/admin/partner-api``: empty state, create, the secret shown once, edit, regenerate,
revoke, and escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bff.operations import partner_apps, tenants
from bff.settings import Settings
from bff.web.admin import partner_api
from tests.web.admin.helpers import ADMIN
from tests.web.helpers import call, form_token, make_user, other_browser, services_of, sign_in

PAGE = "/admin/partner-api"
_SECRET = re.compile(r'<code id="client-secret">([^<]+)</code>')
_CLIENT_ID = re.compile(r'<code id="client-id">([^<]+)</code>')


def _admin(client: TestClient) -> TestClient:
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    database = services_of(client).database

    async def pairs() -> None:
        await tenants.create_tenant(database, "test", "acme", "Acme")
        for sub in ("north", "south"):
            await tenants.create_sub_tenant(database, "test", "acme", sub, sub.title())

    call(client, pairs)
    return browser


def _token(browser: TestClient, path: str = PAGE) -> str:
    return form_token(browser.get(path).text)


def _create(
    browser: TestClient, name: str = "Partner", pairs: tuple[str, ...] = ("acme/north",)
) -> tuple[str, str]:
    """Create through the form; the client id and the secret from the answer."""
    response = browser.post(
        f"{PAGE}/new",
        data={
            "csrf_token": _token(browser),
            "name": name,
            "allowed_origins": "https://Partner.example/\r\n\r\nhttp://localhost:3000",
            "pair": list(pairs),
        },
    )
    assert response.status_code == 200, response.text
    client_id, secret = _CLIENT_ID.search(response.text), _SECRET.search(response.text)
    assert client_id and secret
    return client_id.group(1), secret.group(1)


def _authenticates(client: TestClient, client_id: str, secret: str) -> bool:
    svc = services_of(client)
    found = call(
        client,
        lambda: partner_apps.authenticate_client(svc.database, client_id, secret, svc.clock.now()),
    )
    return found is not None


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


def test_the_empty_state_offers_to_create_credentials(client: TestClient) -> None:
    browser = _admin(client)
    page = browser.get(PAGE)
    assert page.status_code == 200
    assert 'aria-current="page">Partner API' in page.text
    assert '<a class="back" href="/admin/">' in page.text
    assert '<a href="/api/docs">API documentation</a>' in page.text
    assert "No credentials yet" in page.text
    assert page.text.count('href="/admin/partner-api/new">Create credentials</a>') == 2
    assert "<table" not in page.text
    form = browser.get(f"{PAGE}/new")
    assert form.status_code == 200
    assert 'name="pair" value="acme/north"' in form.text
    assert 'name="pair" value="acme/south"' in form.text


def test_create_shows_the_secret_once_and_never_again(
    client: TestClient, settings: Settings
) -> None:
    browser = _admin(client)
    response = browser.post(
        f"{PAGE}/new",
        data={
            "csrf_token": _token(browser),
            "name": "Partner",
            "allowed_origins": "https://Partner.example/\r\n\r\nhttp://localhost:3000",
            "pair": ["acme/north", "acme/south"],
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert 'class="secret-once"' in response.text
    assert "it will not be shown again" in response.text
    assert 'data-copy="client-id"' in response.text and 'data-copy="client-secret"' in response.text
    found_id, found_secret = _CLIENT_ID.search(response.text), _SECRET.search(response.text)
    assert found_id and found_secret
    client_id, secret = found_id.group(1), found_secret.group(1)
    assert client_id.startswith("bffp_") and secret.startswith("bffs_")
    assert _authenticates(client, client_id, secret)
    app = call(client, lambda: partner_apps.get_app(services_of(client).database, 1))
    assert app.allowed_origins == ("https://partner.example", "http://localhost:3000")
    assert app.pairs == (("acme", "north"), ("acme", "south"))
    for path in (PAGE, f"{PAGE}/1", f"{PAGE}/new", "/admin/audit", "/api/v1/partner-apps"):
        again = browser.get(path)
        assert again.status_code == 200, path
        assert secret not in again.text, path
    listed = browser.get(PAGE).text
    assert f"<code>{client_id}</code>" in listed
    assert '<span class="badge ok">Active</span>' in listed
    assert "partner_app.create" in browser.get("/admin/audit").text
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert client_id.encode() in stored and secret.encode() not in stored


def test_a_refused_form_is_shown_again_with_the_input_kept(client: TestClient) -> None:
    browser = _admin(client)
    response = browser.post(
        f"{PAGE}/new",
        data={
            "csrf_token": _token(browser),
            "name": "Kept name",
            "allowed_origins": "https://*.partner.example",
            "pair": ["acme/north"],
        },
    )
    assert response.status_code == 422
    assert '<p class="flash" role="alert">allowed_origins: ' in response.text
    assert 'value="Kept name"' in response.text
    assert ">https://*.partner.example</textarea>" in response.text
    assert 'value="acme/north" checked' in response.text
    assert 'value="acme/south" checked' not in response.text
    assert "No credentials yet" in browser.get(PAGE).text


def test_many_pairs_are_typed_and_unknown_ones_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partner_api, "MAX_CHECKBOXES", 1)
    browser = _admin(client)
    form = browser.get(f"{PAGE}/new")
    assert '<textarea id="pairs" name="pairs"' in form.text and 'name="pair"' not in form.text
    token = form_token(form.text)
    for pairs, message in [
        ("acme/north\nacme/west", "pairs: no pair (acme, west)"),
        ("acme north", "pairs: write each pair as tenant/sub-tenant"),
    ]:
        refused = browser.post(
            f"{PAGE}/new", data={"csrf_token": token, "name": "P", "pairs": pairs}
        )
        assert refused.status_code == 422
        assert message in refused.text
    created = browser.post(
        f"{PAGE}/new", data={"csrf_token": token, "name": "P", "pairs": " acme/south \n"}
    )
    assert created.status_code == 200
    app = call(client, lambda: partner_apps.get_app(services_of(client).database, 1))
    assert app.pairs == (("acme", "south"),)


def test_edit_origins_and_pairs(client: TestClient) -> None:
    browser = _admin(client)
    _create(browser)
    page = browser.get(f"{PAGE}/1")
    assert ">https://partner.example\nhttp://localhost:3000</textarea>" in page.text
    assert 'value="acme/north" checked' in page.text
    response = browser.post(
        f"{PAGE}/1",
        data={
            "csrf_token": form_token(page.text),
            "name": "Renamed",
            "allowed_origins": "https://other.example:8443",
            "pair": ["acme/south"],
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}/1?done=updated"
    saved = browser.get(response.headers["location"])
    assert "The partner app was saved." in saved.text
    assert ">https://other.example:8443</textarea>" in saved.text
    assert 'value="acme/south" checked' in saved.text
    assert 'value="acme/north" checked' not in saved.text
    refused = browser.post(
        f"{PAGE}/1",
        data={"csrf_token": form_token(page.text), "name": "X", "allowed_origins": "ftp://x"},
    )
    assert refused.status_code == 422
    assert "allowed_origins: " in refused.text and ">ftp://x</textarea>" in refused.text
    app = call(client, lambda: partner_apps.get_app(services_of(client).database, 1))
    assert (app.name, app.allowed_origins) == ("Renamed", ("https://other.example:8443",))


def test_regenerate_asks_first_then_shows_the_new_secret_once(client: TestClient) -> None:
    browser = _admin(client)
    client_id, old = _create(browser)
    session_id = _embed_session(client, 1)
    token = _token(browser)
    confirm = browser.post(f"{PAGE}/1/secret", data={"csrf_token": token})
    assert confirm.status_code == 200
    assert "Give Partner a new client secret?" in confirm.text
    assert '<input type="hidden" name="confirm" value="yes">' in confirm.text
    assert 'action="/admin/partner-api/1/secret"' in confirm.text
    assert _authenticates(client, client_id, old) and _session_alive(client, session_id)
    response = browser.post(f"{PAGE}/1/secret", data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 200
    assert "New client secret" in response.text and "it will not be shown again" in response.text
    found = _SECRET.search(response.text)
    assert found and found.group(1) != old
    assert not _authenticates(client, client_id, old)
    assert _authenticates(client, client_id, found.group(1))
    assert not _session_alive(client, session_id)
    assert found.group(1) not in browser.get(f"{PAGE}/1").text


def test_revoke_asks_first_then_ends_everything(client: TestClient) -> None:
    browser = _admin(client)
    client_id, secret = _create(browser)
    session_id = _embed_session(client, 1)
    token = _token(browser)
    confirm = browser.post(f"{PAGE}/1/revoke", data={"csrf_token": token})
    assert confirm.status_code == 200
    assert "Revoke the credentials of Partner?" in confirm.text
    assert _authenticates(client, client_id, secret)
    response = browser.post(f"{PAGE}/1/revoke", data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}?done=revoked"
    listed = browser.get(response.headers["location"]).text
    assert "The credentials were revoked" in listed
    assert '<span class="badge bad">Revoked</span>' in listed
    assert 'action="/admin/partner-api/1/revoke"' not in listed
    assert not _authenticates(client, client_id, secret)
    assert not _session_alive(client, session_id)
    again = browser.post(f"{PAGE}/1/secret", data={"csrf_token": token, "confirm": "yes"})
    assert again.status_code == 409
    assert "revoked and get no new secret" in again.text
    assert _SECRET.search(again.text) is None


def test_unknown_apps_are_404(client: TestClient) -> None:
    browser = _admin(client)
    token = _token(browser)
    for app_id in ("7", "x1", "-1"):
        assert browser.get(f"{PAGE}/{app_id}").status_code == 404
        for action in ("secret", "revoke"):
            response = browser.post(f"{PAGE}/{app_id}/{action}", data={"csrf_token": token})
            assert response.status_code == 404


def test_names_render_escaped(client: TestClient) -> None:
    browser = _admin(client)
    name = """<script>alert("x")</script> O'Brien Zoë 日本"""
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; O&#39;Brien Zoë 日本"
    response = browser.post(
        f"{PAGE}/new", data={"csrf_token": _token(browser), "name": name, "allowed_origins": ""}
    )
    assert response.status_code == 200
    token = _token(browser)
    pages = [
        response.text,
        browser.get(PAGE).text,
        browser.get(f"{PAGE}/1").text,
        browser.post(f"{PAGE}/1/revoke", data={"csrf_token": token}).text,
    ]
    for text in pages:
        assert escaped in text
        assert "<script>alert" not in text
    assert f'value="{escaped}"' in pages[2]
