"""Oversized request bodies: a friendly 413, and the route never acts on them."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from bff.web.body_limit import MAX_BODY_BYTES, BodyLimitMiddleware
from tests.web.helpers import login_token, make_user, session_cookie, sign_in

EMAIL = "ann@example.com"


def login_body(client: TestClient, padding: int) -> bytes:
    fields = {
        "email": EMAIL,
        "password": "correct horse battery",
        "csrf_token": login_token(client),
    }
    return urlencode({**fields, "padding": "x" * padding}).encode()


def post_login(client: TestClient, content: bytes | Iterator[bytes]) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/login", content=content, headers=headers)
    if response.status_code == 413:
        assert "larger than this page accepts" in response.text
        assert "Traceback" not in response.text
    return response.status_code


def test_a_form_under_the_limit_is_read(client: TestClient) -> None:
    make_user(client, EMAIL)
    assert post_login(client, login_body(client, 1000)) == 400  # read: a wrong password


def test_a_declared_oversized_body_is_refused_before_it_is_read(client: TestClient) -> None:
    make_user(client, EMAIL)
    assert post_login(client, login_body(client, MAX_BODY_BYTES)) == 413
    assert session_cookie(client) is None


def test_a_streamed_oversized_body_is_refused(client: TestClient) -> None:
    make_user(client, EMAIL)
    body = login_body(client, MAX_BODY_BYTES)
    chunks = iter([body[i : i + 4096] for i in range(0, len(body), 4096)])
    assert post_login(client, chunks) == 413
    assert session_cookie(client) is None


def test_sign_in_still_works(client: TestClient) -> None:
    make_user(client, EMAIL)
    assert sign_in(client, EMAIL).status_code == 303


@pytest.mark.anyio
async def test_a_declared_length_over_the_limit_is_refused_without_reading() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent by the middleware itself")

    declared = str(MAX_BODY_BYTES + 1).encode()
    scope = {"type": "http", "path": "/login", "headers": [(b"content-length", declared)]}
    with pytest.raises(HTTPException) as refused:
        await BodyLimitMiddleware(route)(scope, receive, send)
    assert refused.value.status_code == 413
