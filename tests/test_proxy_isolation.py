"""One signed-in user cannot starve everyone else of the vendor (proxy mode).

Real servers on 127.0.0.1: a vendor (the demo vendor, plus a large download and an
upload sink of this file's own) and bff, each uvicorn in a thread. One session
opens 120 proxied requests that stall: uploads that declare 1 MB and send one
byte, and downloads of a large answer the client never reads. Meanwhile another
user's cold dashboard (a token call for a pair nobody asked for yet) and proxied
page and assets answer 200, before any stalled request was let go.

The order is proven with the vendor's own counts (a condition variable), never with
wall-clock asserts; the proxy's deadlines are raised out of the way so that only the
test lets the stalled requests go. Timeouts below only guard against hangs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import selectors
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from bff.app import create_app
from bff.demo.run import prepare, settings_for
from bff.demo.seed import demo_accounts
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.web.dashboard.proxy_limits import MAX_PER_SESSION, ProxyLimits
from tests.test_serve import free_port

STALLED = 120
# Long enough never to be what ends a stalled request here: the test does.
OUT_OF_THE_WAY = 600.0
HANG_GUARD = 60.0
LARGE_CHUNK = 64 * 1024
LARGE_CHUNKS = 4096  # 256 MiB: far more than any socket buffer holds
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_HEADING = re.compile(r"<h1>(Insights for [^<]+)</h1>")


class Stalls:
    """The vendor's count of stalled requests that started and that ended."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.started = 0
        self.ended = 0

    def start(self) -> None:
        with self._changed:
            self.started += 1
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self.ended += 1
            self._changed.notify_all()

    def wait(self, *, started: int | None = None, ended: int | None = None) -> None:
        with self._changed:
            reached = self._changed.wait_for(
                lambda: (
                    (started is None or self.started >= started)
                    and (ended is None or self.ended >= ended)
                ),
                timeout=HANG_GUARD,
            )
        assert reached, f"vendor saw {self.started} stalled requests start, {self.ended} end"


def vendor_app(config: VendorConfig, stalls: Stalls) -> Starlette:
    async def large(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            stalls.start()
            try:
                for _ in range(LARGE_CHUNKS):
                    yield b"x" * LARGE_CHUNK
            finally:
                stalls.end()

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def upload(request: Request) -> Response:
        stalls.start()
        try:
            size = sum([len(chunk) async for chunk in request.stream()])
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            stalls.end()
        return PlainTextResponse(f"received {size} bytes")

    return Starlette(
        routes=[
            Route("/dashboard/large", large, methods=["GET"]),
            Route("/dashboard/upload", upload, methods=["POST"]),
            Mount("", app=create_vendor_app(config)),
        ]
    )


@dataclasses.dataclass(frozen=True)
class Setup:
    url: str
    stalls: Stalls
    accounts: dict[str, str]  # email -> password


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    config = VendorConfig()
    stalls = Stalls()
    accounts = demo_accounts()
    port = free_port()
    with serve_in_thread(vendor_app(config, stalls)) as vendor_url:
        settings = settings_for(config, vendor_url, port, tmp_path / "bff.db", "proxy")
        asyncio.run(prepare(settings, accounts))
        limits = ProxyLimits(
            body_idle_timeout=OUT_OF_THE_WAY,
            body_deadline=OUT_OF_THE_WAY,
            send_timeout=OUT_OF_THE_WAY,
            response_deadline=OUT_OF_THE_WAY,
        )
        with serve_in_thread(create_app(settings, proxy_limits=limits), port=port) as url:
            yield Setup(url, stalls, {a.email: a.password for a in accounts})


def signed_in(setup: Setup, email: str) -> httpx2.Client:
    browser = httpx2.Client(base_url=setup.url, timeout=HANG_GUARD)
    token = _CSRF.search(browser.get("/login").text)
    assert token
    form = {"email": email, "password": setup.accounts[email], "csrf_token": token[1]}
    assert browser.post("/login", data=form).status_code == 303
    return browser


def stalled_request(setup: Setup, cookie: str, n: int) -> socket.socket:
    """An upload that declares 1 MB and sends one byte, or a download never read."""
    host = setup.url.removeprefix("http://")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small window: the unread download fills it (and the server's buffers) quickly.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(host.rpartition(":")[2])))
    if n % 2:
        head = (
            f"POST /vendor/upload HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\nx"
        )
    else:
        head = f"GET /vendor/large HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n"
    sock.sendall(head.encode())
    return sock


def refused_among(sockets: list[socket.socket], count: int) -> list[bytes]:
    """Wait until ``count`` of ``sockets`` were answered 429; their answers' heads, only
    peeked at, so no stalled download is ever read."""
    refused: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while len(refused) < count:
            ready = selector.select(timeout=HANG_GUARD)
            assert ready, f"only {len(refused)} stalled requests were refused"
            for key, _ in ready:
                answered = key.fileobj
                assert isinstance(answered, socket.socket)
                selector.unregister(answered)
                head = answered.recv(4096, socket.MSG_PEEK)
                if head.startswith(b"HTTP/1.1 429"):
                    refused.append(head)
    return refused


def test_stalled_requests_of_one_session_leave_the_vendor_to_everyone_else(
    setup: Setup,
) -> None:
    attacker = signed_in(setup, "analyst@demo.test")
    victim = signed_in(setup, "viewer@demo.test")
    assert attacker.get("/").status_code == 200  # the attacker's own pair is warm
    cookie = "; ".join(f"{c.name}={c.value}" for c in attacker.cookies.jar)
    sockets = [stalled_request(setup, cookie, n) for n in range(STALLED)]
    try:
        # The session's bound holds that many; the rest are refused at once.
        setup.stalls.wait(started=MAX_PER_SESSION)
        refused = refused_among(sockets, STALLED - MAX_PER_SESSION)
        assert all(b"\r\nretry-after: 2\r\n" in head.lower() for head in refused)
        assert setup.stalls.started == MAX_PER_SESSION

        cold_dashboard = victim.get("/")
        proxied = [victim.get(path) for path in ("/vendor/", "/vendor/app.js", "/vendor/app.css")]

        # Answered while every stalled request still held the vendor.
        assert (setup.stalls.started, setup.stalls.ended) == (MAX_PER_SESSION, 0)
    finally:
        for sock in sockets:
            sock.close()
    assert cold_dashboard.status_code == 200
    assert [response.status_code for response in proxied] == [200, 200, 200]
    heading = _HEADING.search(proxied[0].text)
    assert heading and heading[1] == "Insights for tenant globex / sub-tenant apac"

    # Let go, the stalled requests end at the vendor too and give their slots back.
    setup.stalls.wait(ended=MAX_PER_SESSION)
    assert attacker.get("/vendor/app.css").status_code == 200
    attacker.close()
    victim.close()
