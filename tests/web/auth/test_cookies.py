"""Forged, tampered and retired session cookies are treated as signed out, never a 500."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from itsdangerous import Signer
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings
from bff.web.auth.cookies import CookieJar, set_cookie_header
from tests.conftest import random_key
from tests.web.conftest import PUBLIC_URL
from tests.web.helpers import (
    add_probe_routes,
    call,
    make_user,
    other_browser,
    services_of,
    session_cookie,
    sign_in,
)

EMAIL = "ann@example.com"
NAME = "__Host-bff_session"


@pytest.fixture(autouse=True)
def _probes(app: Starlette) -> None:
    add_probe_routes(app)


@pytest.fixture
def signed_in(client: TestClient) -> str:
    """A genuine session cookie value (the client itself stays signed in)."""
    make_user(client, EMAIL)
    assert sign_in(client, EMAIL).status_code == 303
    cookie = session_cookie(client)
    assert cookie is not None
    return cookie


def whoami(client: TestClient, cookie: str, name: str = NAME) -> tuple[int, str]:
    """What another browser presenting ``cookie`` gets from the running app."""
    response = other_browser(client).get("/_probe/whoami", headers={"Cookie": f"{name}={cookie}"})
    return response.status_code, response.headers.get("location", response.text)


def flip(value: str, index: int) -> str:
    char = value[index]
    return value[:index] + ("A" if char != "A" else "B") + value[index + 1 :]


def test_the_genuine_cookie_works(client: TestClient, signed_in: str) -> None:
    assert whoami(client, signed_in) == (200, f"{EMAIL} -")


@pytest.mark.parametrize("where", ["id-start", "id-end", "signature-start", "signature-end"])
def test_one_changed_byte_is_refused(client: TestClient, signed_in: str, where: str) -> None:
    dot = signed_in.rindex(".")
    index = {"id-start": 0, "id-end": dot - 1, "signature-start": dot + 1, "signature-end": -1}
    status, location = whoami(client, flip(signed_in, index[where]))
    assert (status, location) == (303, "/login?next=%2F_probe%2Fwhoami")


def test_the_id_without_its_signature_is_refused(client: TestClient, signed_in: str) -> None:
    session_id = signed_in.rsplit(".", 1)[0]
    assert whoami(client, session_id)[0] == 303
    assert whoami(client, session_id + ".")[0] == 303


def test_a_cookie_signed_with_a_guessed_key_is_refused(client: TestClient, signed_in: str) -> None:
    session_id = signed_in.rsplit(".", 1)[0]
    for key in ("secret", "changeme", random_key()):
        forged = Signer(key, salt="bff.session").sign(session_id).decode()
        assert whoami(client, forged)[0] == 303


@pytest.mark.parametrize(
    "garbage",
    [
        "x" * 8192,
        secrets.token_urlsafe(6144),
        "." * 4000,
        "é" * 3000,
        '"' + "a" * 100 + '"',
        "\\x00\\x01",
        "",
    ],
)
def test_garbage_is_refused_without_a_server_error(client: TestClient, garbage: str) -> None:
    header = f"{NAME}={garbage}".encode()  # raw bytes, as a hostile client may send
    response = other_browser(client).get("/_probe/whoami", headers={b"Cookie": header})
    assert response.status_code == 303
    assert other_browser(client).get("/login", headers={b"Cookie": header}).status_code == 200


def test_a_stale_cookie_is_deleted(client: TestClient) -> None:
    response = client.get("/login", headers={"Cookie": f"{NAME}=tampered.value"})
    assert response.status_code == 200
    assert f"{NAME}=; Path=/; Max-Age=0" in response.headers["set-cookie"]


def test_key_rotation(settings: Settings, clock: ManualClock) -> None:
    """A new key in front signs new cookies while the old one still verifies; once the old
    key is dropped from the list, its cookies are worthless."""
    old_key, new_key = settings.secret_keys[0], random_key()
    database = settings.database_url

    def app_with(keys: tuple[str, ...]) -> Starlette:
        rotated = dataclasses.replace(settings, secret_keys=keys, database_url=database)
        app = create_app(rotated, clock=clock)
        add_probe_routes(app)
        return app

    before = app_with((old_key,))
    with TestClient(before, base_url=PUBLIC_URL, follow_redirects=False) as client:
        make_user(client, EMAIL)
        sign_in(client, EMAIL)
        old_cookie = session_cookie(client)
    assert old_cookie is not None

    with TestClient(
        app_with((new_key, old_key)), base_url=PUBLIC_URL, follow_redirects=False
    ) as client:
        assert whoami(client, old_cookie) == (200, f"{EMAIL} -")
        sign_in(client, EMAIL)
        new_cookie = session_cookie(client)
    assert new_cookie is not None
    session_id = new_cookie.rsplit(".", 1)[0]
    assert new_cookie == Signer(new_key, salt="bff.session").sign(session_id).decode()

    with TestClient(app_with((new_key,)), base_url=PUBLIC_URL, follow_redirects=False) as client:
        assert whoami(client, new_cookie) == (200, f"{EMAIL} -")
        assert whoami(client, old_cookie)[0] == 303


def test_an_embedded_session_cookie_is_not_a_first_party_one(
    client: TestClient, settings: Settings
) -> None:
    user_id = make_user(client, EMAIL)
    store = services_of(client).sessions
    session = call(client, lambda: store.create(user_id, embedded=True))
    signed = CookieJar(settings).sign_session(session.id)
    assert whoami(client, signed, "__Host-bff_embed_session") == (200, f"{EMAIL} -")
    assert whoami(client, signed, NAME)[0] == 303


def test_cookie_attributes(settings: Settings) -> None:
    jar = CookieJar(settings)
    assert jar.session_name == "__Host-bff_session"
    assert jar.embed_session_name == "__Host-bff_embed_session"
    assert set_cookie_header(
        "n", "v", max_age=60, secure=True, same_site="None", partitioned=True
    ) == ("n=v; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=None; Partitioned")
    local = CookieJar(dataclasses.replace(settings, public_url="http://localhost:8000"))
    assert (local.secure, local.session_name) == (False, "bff_session")
    assert local.embed_session_name == "bff_embed_session"
    remote_http = CookieJar(dataclasses.replace(settings, public_url="http://bff.example"))
    assert (remote_http.secure, remote_http.session_name) == (True, "__Host-bff_session")
