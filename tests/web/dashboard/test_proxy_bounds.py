"""The proxy's bounds, deadlines and vendor-401 retry, driven at the ASGI interface.

Each test calls :class:`VendorProxy` directly with its own ``receive`` and
``send``, so a browser that stalls its body or stops reading is an awaitable that
never returns, and a vendor that holds a request waits on an event the test sets.
Deadlines are made tiny only where nothing ever arrives, so no outcome depends on
how fast the machine is. How the dashboard decides what to purge after a 401 is
tested in the app (``tests/web/dashboard/delivery/test_delivery.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
import anyio.lowlevel
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from bff.web.dashboard.proxy import Grant, VendorProxy
from bff.web.dashboard.proxy_limits import ProxyLimits
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.upstream_client import UpstreamClient, open_upstream
from bff.web.dashboard.vendor_target import VendorTarget
from bff.web.template_helpers import create_templates
from tests.web.dashboard.test_proxy import ProxyServices
from tests.web.dashboard.vendor_server import serve_in_loop

pytestmark = pytest.mark.anyio

FIRST = "Bearer first-token"
FRESH = "Bearer fresh-token"
# 64 MiB in 16 KiB chunks: far more than the sockets between vendor and proxy buffer.
BIG = 64 << 20
CHUNK = 16 * 1024
# Only guards against a hang; no outcome depends on it.
HANG_GUARD = 30.0
Receive = Callable[[], Awaitable[Message]]


@dataclasses.dataclass
class Reply:
    """What the browser got: the start message, the body, and whether it ended."""

    status: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytearray = dataclasses.field(default_factory=bytearray)
    complete: bool = False


class HeldStream:
    """A vendor response body: ``size`` bytes in chunks, or endless; counts the chunks
    it produced and notes when it was stopped (the proxy closed the connection) or ended."""

    def __init__(self, size: int | None = BIG) -> None:
        self.size = size
        self.read = 0
        self.closed = anyio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while self.size is None or self.read * CHUNK < self.size:
                await anyio.lowlevel.checkpoint()
                self.read += 1
                yield b"x" * CHUNK
        finally:
            self.closed.set()

    async def wait_closed(self) -> None:
        with anyio.fail_after(HANG_GUARD):
            await self.closed.wait()


@dataclasses.dataclass(frozen=True)
class Seen:
    headers: Headers
    body: bytes


@dataclasses.dataclass
class Vendor:
    """Answers by path; ``/dashboard/hold`` waits until ``release`` is set. Served for
    real, in the test's own event loop."""

    release: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    held: int = 0
    seen: list[Seen] = dataclasses.field(default_factory=list)
    streams: list[HeldStream] = dataclasses.field(default_factory=list)
    refused: set[str] = dataclasses.field(default_factory=set)
    more_held: anyio.Event = dataclasses.field(default_factory=anyio.Event)

    @property
    def bodies(self) -> list[bytes]:
        return [seen.body for seen in self.seen]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._answer, methods=["GET", "POST"])])

    async def _answer(self, request: Request) -> Response:
        self.seen.append(Seen(request.headers, await request.body()))
        if request.headers["authorization"] in self.refused:
            return PlainTextResponse("token revoked", 401)
        path = request.url.path
        if path == "/dashboard/hold":
            self.held += 1
            self.more_held.set()
            await self.release.wait()
        if path in ("/dashboard/big", "/dashboard/endless"):
            stream = HeldStream(BIG if path == "/dashboard/big" else None)
            self.streams.append(stream)
            return StreamingResponse(stream, media_type="application/octet-stream")
        return PlainTextResponse(f"ok {request.headers['authorization']}")

    async def wait_held(self, count: int) -> None:
        while self.held < count:
            self.more_held = anyio.Event()
            await self.more_held.wait()


@dataclasses.dataclass(frozen=True)
class Upstream:
    """The production client, and where it finds the vendor."""

    client: UpstreamClient
    target: VendorTarget


@dataclasses.dataclass
class Authorizer:
    """Grants the session and user named by the request's ``x-test-*`` headers."""

    authorization: str = FIRST
    fresh: str = FRESH  # what the grants carry once renewed
    renewed: int = 0

    async def __call__(self, request: Request) -> Grant | Response:
        async def renew() -> None:
            self.renewed += 1
            self.authorization = self.fresh

        return Grant(
            session_id=request.headers.get("x-test-session", "s1"),
            user_id=int(request.headers.get("x-test-user", "1")),
            pair=("acme", "north"),
            authorization=self.authorization,
            renew=renew,
        )


@pytest.fixture
def vendor() -> Vendor:
    return Vendor()


@pytest.fixture
async def http(vendor: Vendor) -> AsyncIterator[Upstream]:
    async with serve_in_loop(vendor.app()) as url, open_upstream(ProxyLimits()) as client:
        yield Upstream(client, VendorTarget.from_dashboard_url(f"{url}/dashboard/"))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def proxy(
    registry: CollectorRegistry,
    http: Upstream,
    authorize: Authorizer | None = None,
    **limits: float,
) -> VendorProxy:
    return VendorProxy(
        http.target,
        authorize or Authorizer(),
        ProxyMetrics(registry),
        ProxyLimits(**limits),  # type: ignore[arg-type]
    )


def body_of(*chunks: bytes, then: Callable[[], Awaitable[Message]] | None = None) -> Receive:
    """A browser body: ``chunks``, then (if given) whatever ``then`` does instead of ending."""
    queue = list(chunks)

    async def receive() -> Message:
        if queue:
            chunk = queue.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(queue) or bool(then)}
        if then is not None:
            return await then()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


async def stall() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def request(
    app: VendorProxy,
    http: Upstream,
    path: str = "/vendor/page",
    *,
    method: str = "GET",
    session: str = "s1",
    user: int = 1,
    headers: Sequence[tuple[str, str]] = (),
    receive: Receive | None = None,
    reader: Callable[[Message], Awaitable[None]] | None = None,
) -> Reply:
    """One proxied request; ``reader`` replaces the browser taking each body message."""
    reply = Reply()
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"x-test-session", session.encode()),
            (b"x-test-user", str(user).encode()),
            *((name.encode(), value.encode()) for name, value in headers),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {"services": ProxyServices(http.client, create_templates())},
    }

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            reply.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            return
        if reader is not None:
            await reader(message)
        reply.body += message.get("body", b"")
        reply.complete = not message.get("more_body", False)

    await app(scope, receive or body_of(b""), send)
    return reply


def counted(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"{name}_total", labels) or 0.0


async def test_a_session_beyond_its_bound_is_refused_at_once_and_others_pass(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    app = proxy(registry, http, max_per_session=2)
    held: list[Reply] = []
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(_append, held, app, http)
        await vendor.wait_held(2)
        refused = await request(app, http, "/vendor/hold")
        other_session = await request(app, http, session="s2")
        assert app.slots.held_by("s1") == 2
        vendor.release.set()
    assert refused.status == 429
    assert refused.headers["retry-after"] == "2"
    assert b"Too many requests" in refused.body
    assert other_session.status == 200
    assert [reply.status for reply in held] == [200, 200]
    assert vendor.held == 2  # the refused request never reached the vendor
    assert app.slots.in_use == 0
    assert counted(registry, "bff_proxy_limited", bound="session") == 1


async def test_a_user_beyond_its_bound_is_refused_whatever_the_session(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    app = proxy(registry, http, max_per_session=5, max_per_user=2)
    async with anyio.create_task_group() as group:
        for session in ("a", "b"):
            group.start_soon(
                functools.partial(request, app, http, "/vendor/hold", session=session, user=7)
            )
        await vendor.wait_held(2)
        third_session = await request(app, http, session="c", user=7)
        other_user = await request(app, http, session="d", user=8)
        vendor.release.set()
    assert third_session.status == 429
    assert other_user.status == 200
    assert counted(registry, "bff_proxy_limited", bound="user") == 1


async def test_the_process_wide_bound_is_a_503_with_retry_after(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    app = proxy(registry, http, max_total=2)
    async with anyio.create_task_group() as group:
        for user in (1, 2):
            group.start_soon(
                functools.partial(request, app, http, "/vendor/hold", session=f"s{user}", user=user)
            )
        await vendor.wait_held(2)
        third = await request(app, http, session="s3", user=3)
        vendor.release.set()
    assert third.status == 503
    assert third.headers["retry-after"] == "2"
    assert counted(registry, "bff_proxy_limited", bound="total") == 1


async def test_a_body_that_stops_arriving_is_cut_off_with_a_408(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    app = proxy(registry, http, body_idle_timeout=0.05)
    reply = await request(
        app,
        http,
        method="POST",
        headers=[("content-length", "1000000")],
        receive=body_of(b"x", then=stall),
    )
    assert reply.status == 408
    assert reply.headers["connection"] == "close"
    assert b"took too long" in reply.body
    assert app.slots.in_use == 0
    assert counted(registry, "bff_proxy_limited", bound="body_deadline") == 1


async def test_a_small_body_that_stops_arriving_never_reaches_the_vendor(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    """Read whole before it is sent (to be replayable), so a stall holds no vendor
    connection."""
    app = proxy(registry, http, body_idle_timeout=0.05)
    reply = await request(
        app,
        http,
        method="POST",
        headers=[("content-length", "100")],
        receive=body_of(b"x", then=stall),
    )
    assert reply.status == 408
    assert vendor.seen == []
    assert app.slots.in_use == 0


async def test_a_trickling_body_is_cut_off_at_its_deadline(
    registry: CollectorRegistry, http: Upstream
) -> None:
    async def trickle() -> Message:
        await anyio.sleep(0.01)
        return {"type": "http.request", "body": b"x", "more_body": True}

    app = proxy(registry, http, body_deadline=0.2)
    reply = await request(
        app,
        http,
        method="POST",
        headers=[("content-length", "1000000")],
        receive=body_of(then=trickle),
    )
    assert reply.status == 408
    assert app.slots.in_use == 0


async def test_a_browser_leaving_mid_body_gets_nothing_and_frees_its_slot(
    registry: CollectorRegistry, http: Upstream
) -> None:
    async def leave() -> Message:
        return {"type": "http.disconnect"}

    app = proxy(registry, http)
    reply = await request(
        app,
        http,
        method="POST",
        headers=[("content-length", "10")],
        receive=body_of(b"x", then=leave),
    )
    assert reply.status is None
    assert app.slots.in_use == 0


async def test_a_browser_that_stops_reading_loses_the_response_and_the_slot(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    async def never_reads(message: Message) -> None:
        await anyio.sleep_forever()

    app = proxy(registry, http, send_timeout=0.05)
    reply = await request(app, http, "/vendor/big", reader=never_reads)
    assert reply.status == 200
    assert not reply.complete
    (stream,) = vendor.streams
    await stream.wait_closed()  # the vendor connection is closed: nobody reads it
    assert app.slots.in_use == 0
    assert counted(registry, "bff_proxy_limited", bound="send_timeout") == 1


async def test_a_response_stops_at_its_deadline(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    app = proxy(registry, http, response_deadline=0.2)
    reply = await request(app, http, "/vendor/endless")
    assert reply.status == 200
    assert not reply.complete
    await vendor.streams[0].wait_closed()
    assert app.slots.in_use == 0
    assert counted(registry, "bff_proxy_limited", bound="response_deadline") == 1


async def test_a_browser_that_leaves_mid_response_stops_the_vendor_read(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    """uvicorn drops what is sent after a disconnect, so only watching for it stops the
    proxy reading the rest of a large answer from the vendor."""
    started = anyio.Event()

    async def first_chunk_arrives(message: Message) -> None:
        started.set()

    async def leave_once_started() -> Message:
        await started.wait()
        return {"type": "http.disconnect"}

    app = proxy(registry, http)
    reply = await request(
        app,
        http,
        "/vendor/big",
        receive=body_of(b"", then=leave_once_started),
        reader=first_chunk_arrives,
    )
    assert reply.status == 200
    assert not reply.complete
    (stream,) = vendor.streams
    await stream.wait_closed()
    assert 0 < stream.read < BIG // CHUNK  # not read to the end
    assert app.slots.in_use == 0


async def test_a_refused_token_is_renewed_and_the_request_sent_once_more(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    vendor.refused = {FIRST}
    authorizer = Authorizer()
    reply = await request(proxy(registry, http, authorizer), http)
    assert reply.status == 200
    assert reply.body == f"ok {FRESH}".encode()
    assert [r.headers["authorization"] for r in vendor.seen] == [FIRST, FRESH]
    assert authorizer.renewed == 1
    assert counted(registry, "bff_proxy_token_refusals", outcome="retried") == 1


async def test_a_second_401_is_passed_on_without_another_renewal(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    vendor.refused = {FIRST, FRESH}
    authorizer = Authorizer()
    reply = await request(proxy(registry, http, authorizer), http)
    assert reply.status == 401
    assert reply.body == b"token revoked"
    assert [r.headers["authorization"] for r in vendor.seen] == [FIRST, FRESH]
    assert authorizer.renewed == 1
    assert counted(registry, "bff_proxy_token_refusals", outcome="refused_again") == 1
    assert counted(registry, "bff_proxy_token_refusals", outcome="retried") == 0


async def test_a_small_body_is_read_whole_and_replayed_with_the_fresh_token(
    registry: CollectorRegistry, http: Upstream, vendor: Vendor
) -> None:
    vendor.refused = {FIRST}
    reply = await request(
        proxy(registry, http, Authorizer()),
        http,
        method="POST",
        headers=[("content-length", "9")],
        receive=body_of(b"data", b"=1234"),
    )
    assert reply.status == 200
    assert reply.body == f"ok {FRESH}".encode()
    assert vendor.bodies == [b"data=1234", b"data=1234"]
    assert [r.headers["authorization"] for r in vendor.seen] == [FIRST, FRESH]


@pytest.mark.parametrize(
    "framing",
    [("content-length", "9"), ("transfer-encoding", "chunked")],
    ids=["over-the-limit", "no-length"],
)
async def test_a_streamed_body_is_not_replayed_but_the_next_request_is_renewed(
    registry: CollectorRegistry,
    http: Upstream,
    vendor: Vendor,
    framing: tuple[str, str],
) -> None:
    vendor.refused = {FIRST}
    authorizer = Authorizer()
    app = proxy(registry, http, authorizer, replay_body_limit=8)
    posted = await request(
        app, http, method="POST", headers=[framing], receive=body_of(b"data", b"=1234")
    )
    assert posted.status == 401
    assert vendor.bodies == [b"data=1234"]
    assert authorizer.renewed == 1
    assert counted(registry, "bff_proxy_token_refusals", outcome="not_replayable") == 1
    following = await request(app, http)
    assert following.status == 200
    assert following.body == f"ok {FRESH}".encode()
    assert len(vendor.seen) == 2


async def _streamed(text: str | bytes) -> AsyncIterator[bytes]:
    yield text.encode() if isinstance(text, str) else text


async def _append(replies: list[Reply], app: VendorProxy, http: Upstream) -> None:
    replies.append(await request(app, http, "/vendor/hold"))
