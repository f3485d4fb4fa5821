"""CSRF: form tokens bound to the session, and refusal of cross-site unsafe requests."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.web.helpers import (
    PASSWORD,
    add_probe_routes,
    form_token,
    login_token,
    make_user,
    other_browser,
    sign_in,
)

EMAIL = "ann@example.com"


@pytest.fixture(autouse=True)
def _probes(app: Starlette) -> None:
    add_probe_routes(app)


@pytest.fixture
def signed_in(client: TestClient) -> TestClient:
    make_user(client, EMAIL)
    make_user(client, "bob@example.com")
    assert sign_in(client, EMAIL).status_code == 303
    return client


def session_token(client: TestClient) -> str:
    return client.get("/_probe/token").text


def test_the_right_token_is_accepted(signed_in: TestClient) -> None:
    response = signed_in.post("/_probe/form", data={"csrf_token": session_token(signed_in)})
    assert (response.status_code, response.text) == (200, "accepted")


def test_the_token_may_come_as_a_header(signed_in: TestClient) -> None:
    response = signed_in.post("/_probe/form", headers={"X-CSRF-Token": session_token(signed_in)})
    assert response.status_code == 200


def test_the_token_is_stable_within_a_session_and_differs_between_sessions(
    signed_in: TestClient,
) -> None:
    bob = other_browser(signed_in)
    sign_in(bob, "bob@example.com")
    assert session_token(signed_in) == session_token(signed_in)
    assert session_token(signed_in) != session_token(bob)


@pytest.mark.parametrize("data", [{}, {"csrf_token": ""}, {"csrf_token": "0" * 64}])
def test_a_missing_or_wrong_token_is_refused(signed_in: TestClient, data: dict[str, str]) -> None:
    response = signed_in.post("/_probe/form", data=data)
    assert response.status_code == 403
    assert "not sent from this site" in response.text


def test_another_sessions_token_is_refused(signed_in: TestClient) -> None:
    bob = other_browser(signed_in)
    sign_in(bob, "bob@example.com")
    response = signed_in.post("/_probe/form", data={"csrf_token": session_token(bob)})
    assert response.status_code == 403


def test_a_token_from_before_sign_in_is_refused_after_it(client: TestClient) -> None:
    make_user(client, EMAIL)
    pre_login = login_token(client)
    sign_in(client, EMAIL)
    assert client.post("/_probe/form", data={"csrf_token": pre_login}).status_code == 403


def test_a_token_of_an_ended_session_is_refused(signed_in: TestClient) -> None:
    old = session_token(signed_in)
    signed_in.post("/logout", data={"csrf_token": old})
    sign_in(signed_in, EMAIL)
    assert signed_in.post("/_probe/form", data={"csrf_token": old}).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver"},  # same host, other scheme
        {"Origin": "https://testserver.evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://testserver"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.testserver"},
    ],
)
def test_cross_site_requests_are_refused_even_with_a_valid_token(
    signed_in: TestClient, headers: dict[str, str]
) -> None:
    token = session_token(signed_in)
    response = signed_in.post("/_probe/form", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in response.headers
    # the same holds for every unsafe method and for sign-in and sign-out
    for method in ("PUT", "PATCH", "DELETE"):
        assert signed_in.request(method, "/_probe/form", headers=headers).status_code == 403
    assert signed_in.post("/logout", data={"csrf_token": token}, headers=headers).status_code == 403
    assert signed_in.get("/_probe/whoami").status_code == 200  # still signed in


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://testserver"},
        {"Origin": "https://TestServer"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://testserver"},
        # what a browser sends from one of our own pages with Referrer-Policy: no-referrer
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_same_origin_requests_pass(signed_in: TestClient, headers: dict[str, str]) -> None:
    token = session_token(signed_in)
    response = signed_in.post("/_probe/form", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 200


def test_safe_methods_are_not_checked(signed_in: TestClient) -> None:
    response = signed_in.get("/_probe/whoami", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


def test_api_refusals_are_problem_details(client: TestClient) -> None:
    response = client.post("/api/anything", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_sign_in_needs_the_pre_session_token(client: TestClient) -> None:
    make_user(client, EMAIL)
    form = {"email": EMAIL, "password": PASSWORD}
    # no token at all
    assert client.post("/login", data=form).status_code == 403
    # a token minted for another browser's pre-session (login CSRF)
    stranger = other_browser(client)
    response = client.post("/login", data={**form, "csrf_token": login_token(stranger)})
    assert response.status_code == 403
    assert "The sign-in form expired" in response.text
    # the page that refused offers a fresh form that works
    retry = client.post("/login", data={**form, "csrf_token": form_token(response.text)})
    assert retry.status_code == 303


def test_the_pre_session_cookie_is_signed(client: TestClient) -> None:
    make_user(client, EMAIL)
    token = login_token(client)
    client.cookies.clear()
    forged = other_browser(client).post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": "__Host-bff_presession=chosen-by-attacker"},
    )
    assert forged.status_code == 403


def test_a_cross_site_sign_in_is_refused(client: TestClient) -> None:
    make_user(client, EMAIL)
    response = client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": login_token(client)},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
