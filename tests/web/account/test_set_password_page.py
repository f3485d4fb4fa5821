"""``/account/set-password``: a signed-out browser redeems a one-time link once, within
24 hours; the page never passes its token on (no Referer, nothing logged)."""

from __future__ import annotations

import logging

import httpx2
import pytest
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.logs import JsonFormatter
from bff.operations import users
from bff.web.account.set_password import MISMATCH
from bff.web.auth.csrf import FORBIDDEN_MESSAGE
from tests.web.helpers import call, form_token, other_browser, services_of, sign_in

EMAIL = "new@example.com"
NEW_PASSWORD = "a brand new passphrase 42"
INVALID = "This link is invalid or has expired"
PATH = "/account/set-password"


def _link_token(client: TestClient) -> str:
    svc = services_of(client)

    async def create() -> str:
        created = await users.create_user(svc.database, "admin", EMAIL, now=svc.clock.now())
        assert created.set_password_token
        return created.set_password_token

    return call(client, create)


def _submit(
    browser: TestClient, token: str, password: str = NEW_PASSWORD, again: str | None = None
) -> httpx2.Response:
    page = browser.get(PATH, params={"token": token})
    assert page.status_code == 200
    data = {
        "csrf_token": form_token(page.text),
        "token": token,
        "password": password,
        "password_again": password if again is None else again,
    }
    # What a browser sends from a page whose Referrer-Policy is no-referrer.
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    return browser.post(PATH, data=data, headers=headers)


def test_the_link_sets_a_password_once(client: TestClient) -> None:
    token = _link_token(client)
    page = client.get(PATH, params={"token": token})
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert f"For <strong>{EMAIL}</strong>" in page.text
    assert f'name="token" value="{token}"' in page.text

    done = _submit(other_browser(client), token)
    assert done.status_code == 200
    assert done.headers["referrer-policy"] == "no-referrer"
    assert "Password set" in done.text and 'href="/login"' in done.text
    assert sign_in(other_browser(client), EMAIL, NEW_PASSWORD).status_code == 303

    used = client.get(PATH, params={"token": token})
    assert used.status_code == 404
    assert INVALID in used.text and used.headers["referrer-policy"] == "no-referrer"
    again = client.post(
        PATH,
        data={
            "csrf_token": form_token(page.text),
            "token": token,
            "password": NEW_PASSWORD + "!",
            "password_again": NEW_PASSWORD + "!",
        },
    )
    assert again.status_code == 404 and INVALID in again.text
    assert sign_in(other_browser(client), EMAIL, NEW_PASSWORD + "!").status_code == 400


def test_the_link_expires_after_24_hours(client: TestClient, clock: ManualClock) -> None:
    token = _link_token(client)
    clock.advance(24 * 3600 - 1)
    page = client.get(PATH, params={"token": token})
    assert page.status_code == 200
    clock.advance(1)
    expired = client.get(PATH, params={"token": token})
    assert expired.status_code == 404 and INVALID in expired.text
    late = client.post(
        PATH,
        data={
            "csrf_token": form_token(page.text),
            "token": token,
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
    )
    assert late.status_code == 404
    assert sign_in(other_browser(client), EMAIL, NEW_PASSWORD).status_code == 400


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 5000])
def test_an_unknown_link_is_refused(client: TestClient, token: str) -> None:
    page = client.get(PATH, params={"token": token} if token else None)
    assert page.status_code == 404
    assert INVALID in page.text


def test_a_mismatch_or_weak_password_is_refused_and_the_link_kept(client: TestClient) -> None:
    token = _link_token(client)
    browser = other_browser(client)
    mismatch = _submit(browser, token, again=NEW_PASSWORD + "?")
    assert mismatch.status_code == 422
    assert MISMATCH in mismatch.text and f'name="token" value="{token}"' in mismatch.text
    assert NEW_PASSWORD not in mismatch.text
    weak = _submit(browser, token, "short")
    assert weak.status_code == 422
    assert "The password must be at least 12 characters." in weak.text
    assert weak.headers["referrer-policy"] == "no-referrer"
    assert _submit(browser, token).status_code == 200


def test_the_form_needs_its_csrf_token(client: TestClient) -> None:
    token = _link_token(client)
    data = {"token": token, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    browser = other_browser(client)
    assert browser.get(PATH, params={"token": token}).status_code == 200
    missing = browser.post(PATH, data=data)
    assert missing.status_code == 403 and FORBIDDEN_MESSAGE in missing.text
    assert browser.post(PATH, data={**data, "csrf_token": "forged"}).status_code == 403
    # Another browser's pre-session token is no use either.
    foreign = form_token(client.get(PATH, params={"token": token}).text)
    assert browser.post(PATH, data={**data, "csrf_token": foreign}).status_code == 403
    cross = browser.post(
        PATH,
        data={**data, "csrf_token": form_token(browser.get(PATH, params={"token": token}).text)},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert _submit(browser, token).status_code == 200


def test_the_token_is_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    token = _link_token(client)
    caplog.set_level(logging.DEBUG)
    _submit(other_browser(client), token, "short")
    _submit(other_browser(client), token)
    client.get(PATH, params={"token": token})
    formatter = JsonFormatter()
    assert any(record.name == "bff.access" for record in caplog.records)
    assert not [record for record in caplog.records if token in formatter.format(record)]
