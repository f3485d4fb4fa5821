"""The dashboard page is rendered once per (session, context) and still gets a fresh
nonce per response; no session ever sees another's page."""

from __future__ import annotations

import re
from typing import Any

import jinja2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.settings import Settings
from bff.web.security import content_security_policy
from tests.web.dashboard.fixtures import (
    ANALYST,
    ANALYST_PAIRS,
    RecordingVendor,
    dashboard_app,
    sign_in_analyst,
)
from tests.web.helpers import form_token, make_user, other_browser, services_of, sign_in

_NONCE_ATTR = re.compile(r'nonce="([^"]+)"')
_NONCE_POLICY = re.compile(r"'nonce-([^']+)'")


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return dashboard_app(settings, clock, vendor, "post")


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every template render from now on, by template name."""
    rendered: list[str] = []
    original = jinja2.Template.render

    def counting(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        rendered.append(str(self.name))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", counting)
    return rendered


def nonces(response_text: str, policy: str) -> tuple[set[str], set[str]]:
    return set(_NONCE_ATTR.findall(response_text)), set(_NONCE_POLICY.findall(policy))


def test_each_view_has_its_own_nonce_matching_its_policy(client: TestClient) -> None:
    sign_in_analyst(client)
    first, second = client.get("/"), client.get("/")
    seen = []
    for page in (first, second):
        in_page, in_policy = nonces(page.text, page.headers["content-security-policy"])
        assert len(in_page) == 1 and in_page == in_policy
        seen.append(in_page.pop())
    assert seen[0] != seen[1]
    assert first.text.replace(seen[0], "") == second.text.replace(seen[1], "")


def test_a_second_view_is_not_rendered_again(client: TestClient, renders: list[str]) -> None:
    sign_in_analyst(client)
    # The first view settles the session's active pair: the next one's session differs.
    client.get("/")
    client.get("/")
    renders.clear()
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert renders == []


def test_a_scope_switch_shows_the_new_pair_at_once(client: TestClient) -> None:
    sign_in_analyst(client)
    page = client.get("/")
    assert '<option value="acme/north" selected>' in page.text
    switched = client.post(
        "/scope", data={"scope": "globex/emea", "csrf_token": form_token(page.text)}
    )
    assert switched.status_code == 303
    after = client.get("/")
    assert '<option value="globex/emea" selected>' in after.text
    assert '<option value="acme/north" selected>' not in after.text


def test_another_session_never_gets_this_sessions_page(client: TestClient) -> None:
    alice, bob = client, other_browser(client)
    sign_in_analyst(alice)
    make_user(bob, "bob@example.com", scopes=ANALYST_PAIRS)
    assert sign_in(bob, "bob@example.com").status_code == 303
    alice_page, bob_page = alice.get("/"), bob.get("/")
    # The same pairs and the same cached token: only the session tells the pages apart.
    assert ANALYST in alice_page.text and ANALYST not in bob_page.text
    assert "bob@example.com" in bob_page.text
    assert form_token(alice_page.text) != form_token(bob_page.text)


def test_the_memo_keeps_at_most_its_size(client: TestClient) -> None:
    memo = services_of(client).pages
    memo._size = 2
    sign_in_analyst(client)
    for pair in ANALYST_PAIRS:
        page = client.get("/")
        client.post("/scope", data={"scope": "/".join(pair), "csrf_token": form_token(page.text)})
        client.get("/")
    assert len(memo._pages) == 2


def test_the_pages_headers_are_built_once_and_the_body_length_is_exact(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def counting(nonce: str, **directives: Any) -> str:
        built.append(nonce)
        return content_security_policy(nonce, **directives)

    monkeypatch.setattr("bff.web.dashboard.page.content_security_policy", counting)
    sign_in_analyst(client)
    client.get("/")
    client.get("/")
    built.clear()
    views = [client.get("/") for _ in range(3)]
    assert built == []
    for view in views:
        assert view.headers["content-length"] == str(len(view.content))
        assert view.headers["content-type"] == "text/html; charset=utf-8"
        assert (view.headers["cache-control"], view.headers["referrer-policy"]) == (
            "no-store",
            "no-referrer",
        )
        in_page, in_policy = nonces(view.text, view.headers["content-security-policy"])
        assert len(in_page) == 1 and in_page == in_policy
