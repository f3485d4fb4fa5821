"""Oversized request bodies: a friendly 413, and the route never acts on them."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message

from bff.web.body_limit import MAX_BODY_BYTES, limit_body
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
    async def receive() -> Message:
        raise AssertionError("the body was read")

    limited = limit_body(receive, str(MAX_BODY_BYTES + 1).encode())
    with pytest.raises(HTTPException) as refused:
        await limited()
    assert refused.value.status_code == 413


@pytest.mark.anyio
async def test_chunks_are_counted_until_the_limit() -> None:
    chunks = [b"x" * 40_000, b"x" * 25_536, b"x"]

    async def receive() -> Message:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    limited = limit_body(receive, None)
    assert len((await limited())["body"]) == 40_000
    assert len((await limited())["body"]) == 25_536  # exactly the limit: still read
    with pytest.raises(HTTPException) as refused:
        await limited()
    assert refused.value.status_code == 413


def test_a_request_without_a_body_keeps_the_servers_receive(client: TestClient) -> None:
    # No Content-Length and no Transfer-Encoding: no body (RFC 9112), nothing to wrap.
    seen: list[object] = []

    async def probe(request: Request) -> Response:
        seen.append(request.receive)
        return PlainTextResponse("ok")

    app = client.app
    assert isinstance(app, Starlette)
    app.router.routes.insert(0, Route("/_probe", probe, methods=["GET", "POST"]))
    client.get("/_probe")
    client.post("/_probe", content=b"abc")
    unwrapped, wrapped = seen
    assert getattr(unwrapped, "__name__", "") != "limited_receive"
    assert getattr(wrapped, "__name__", "") == "limited_receive"
