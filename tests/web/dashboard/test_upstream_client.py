"""The proxy's production client (aiohttp) against a vendor served for real on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bff.web.dashboard.proxy_limits import ProxyLimits
from bff.web.dashboard.upstream_client import (
    Body,
    UpstreamClient,
    UpstreamResponse,
    VendorUnreachable,
    open_upstream,
)
from tests.test_serve import free_port
from tests.web.dashboard.vendor_server import serve_in_loop

pytestmark = pytest.mark.anyio

COMPRESSED = gzip.compress(b'{"figures": [1, 2, 3]}' * 100)


async def echo(request: Request) -> Response:
    """What arrived: the client's port, the headers (in order) and the body's size."""
    body = await request.body()
    return JSONResponse(
        {
            "port": request.client.port if request.client else None,
            "headers": [[name.decode(), value.decode()] for name, value in request.headers.raw],
            "size": len(body),
        }
    )


async def compressed(request: Request) -> Response:
    return Response(COMPRESSED, headers={"content-encoding": "gzip"}, media_type="text/json")


async def cookie(request: Request) -> Response:
    response = Response(b"here")
    response.set_cookie("vendor_session", "abc", path="/")
    return response


async def redirect(request: Request) -> Response:
    return Response(status_code=302, headers={"location": "/echo"})


class Broken:
    """Declares 100 bytes and sends 10: uvicorn drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"100")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})


def vendor_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/compressed", compressed),
            Route("/cookie", cookie),
            Route("/redirect", redirect),
            Route("/broken", Broken()),
        ]
    )


@pytest.fixture
async def vendor_url() -> AsyncIterator[str]:
    async with serve_in_loop(vendor_app()) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    async with open_upstream(ProxyLimits()) as client:
        yield client


async def read(response: UpstreamResponse) -> bytes:
    try:
        chunks = []
        while chunk := await response.next_chunk():
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await response.aclose()


async def echoed(
    client: UpstreamClient,
    url: str,
    headers: list[tuple[str, str]] | None = None,
    *,
    method: str = "GET",
    body: Body = None,
) -> Any:
    """The vendor's /echo answer (JSON)."""
    response = await client.send(method, f"{url}/echo", headers or [], body)
    return json.loads(await read(response))


async def test_a_connection_is_kept_and_used_again(vendor_url: str, client: UpstreamClient) -> None:
    first = await echoed(client, vendor_url)
    second = await echoed(client, vendor_url)
    assert first["port"] == second["port"]


async def test_it_adds_no_header_of_its_own_but_host(
    vendor_url: str, client: UpstreamClient
) -> None:
    answer = await echoed(client, vendor_url, [("accept", "text/html")])
    assert answer["headers"] == [
        ["host", vendor_url.removeprefix("http://")],
        ["accept", "text/html"],
    ]


async def test_compressed_bytes_pass_through_untouched(
    vendor_url: str, client: UpstreamClient
) -> None:
    response = await client.send("GET", f"{vendor_url}/compressed", [], None)
    assert (b"content-encoding", b"gzip") in [(n.lower(), v) for n, v in response.headers]
    assert await read(response) == COMPRESSED


async def test_no_vendor_cookie_is_kept(vendor_url: str, client: UpstreamClient) -> None:
    await read(await client.send("GET", f"{vendor_url}/cookie", [], None))
    answer = await echoed(client, vendor_url)
    assert "cookie" not in [name for name, _ in answer["headers"]]


async def test_a_redirect_is_passed_back_not_followed(
    vendor_url: str, client: UpstreamClient
) -> None:
    response = await client.send("GET", f"{vendor_url}/redirect", [], None)
    await read(response)
    assert response.status == 302
    assert (b"location", b"/echo") in [(n.lower(), v) for n, v in response.headers]


async def _parts() -> AsyncIterator[bytes]:
    yield b"part1-"
    yield b"part2"


async def test_a_streamed_body_keeps_its_declared_length(
    vendor_url: str, client: UpstreamClient
) -> None:
    declared = await echoed(
        client, vendor_url, [("content-length", "11")], method="POST", body=_parts()
    )
    undeclared = await echoed(client, vendor_url, method="POST", body=_parts())
    assert declared["size"] == undeclared["size"] == 11
    declared_names = [name for name, _ in declared["headers"]]
    assert "content-length" in declared_names
    assert "transfer-encoding" not in declared_names
    assert ["transfer-encoding", "chunked"] in undeclared["headers"]


async def test_a_vendor_breaking_off_mid_body_is_unreachable(
    vendor_url: str, client: UpstreamClient
) -> None:
    response = await client.send("GET", f"{vendor_url}/broken", [], None)
    assert response.status == 200
    with pytest.raises(VendorUnreachable):
        await read(response)


async def test_nobody_listening_is_unreachable(client: UpstreamClient) -> None:
    with pytest.raises(VendorUnreachable):
        await client.send("GET", f"http://127.0.0.1:{free_port()}/echo", [], None)
