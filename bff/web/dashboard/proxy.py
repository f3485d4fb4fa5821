"""``proxy`` delivery: the vendor dashboard served under the BFF's own ``/vendor/`` prefix.

The browser never holds a vendor token. Each request under the prefix is checked
by ``authorize`` (a signed-in session with a mapped pair, see :class:`Grant`),
then forwarded to the one vendor directory :class:`~bff.web.dashboard.vendor_target.VendorTarget`
allows, carrying only an allowlist of harmless request headers plus the
``Authorization`` header of the pair's token and the pair itself as
``x-tenant-id`` / ``x-sub-tenant-id``, set here on every request: the browser
never chooses the tenant. The browser's cookies, credentials, tenant headers and
hop-by-hop headers never reach the vendor; the vendor's cookies and site-wide
headers (``Set-Cookie``, ``Clear-Site-Data``, HSTS) never reach the browser, and
its policy keeps every directive but ``frame-ancestors``. Responses stream;
request bodies stream unless small (below); redirects are rewritten under the
prefix or refused.

A slow or greedy browser costs a bounded amount (:mod:`bff.web.dashboard.proxy_limits`):
a request holds one of a few slots per session and per user from authorization
to its last byte (over the bound: 429, or 503 process-wide, with
``Retry-After``), its body must arrive within deadlines (else 408), a browser
that stops reading loses the response (the connection is closed) and the slot,
and one that leaves stops the vendor read at once. The proxy has its own vendor
connection pool (:mod:`bff.web.dashboard.upstream_client`); the broker's token calls
never wait behind proxied traffic.

When the vendor answers 401, the token may have been revoked upstream early:
``Grant.renew`` drops it from the broker (unless a token obtained since has
replaced it) and the request is sent once more with the pair's fresh token, if
its body can be sent again: bodiless requests and bodies of at most
``REPLAY_BODY_LIMIT`` bytes with a ``Content-Length``, which are read whole
before they are sent. A streamed body is not replayed: its 401 is passed on and
the next request carries the fresh token. A second 401 is passed on. Each case is
counted in ``bff_proxy_token_refusals_total``.

The per-request path is plain ASGI: header lists filtered against sets of bytes,
the upstream URL of a path worked out once and remembered, no Starlette request or
response object but for ``authorize`` and the error pages, and a task watching for
the browser leaving only while a response longer than one chunk streams.

The proxied pages run on the BFF's origin, so the vendor's dashboard code is
trusted like the BFF's own pages; the session cookie stays ``HttpOnly``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import httpx2
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from bff.logs import request_id
from bff.web.dashboard.proxy_limits import ProxyBusy, ProxyLimits, ProxySlots
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.upstream_client import (
    Body,
    RawHeaders,
    UpstreamResponse,
    VendorPoolExhausted,
    VendorUnreachable,
)
from bff.web.dashboard.vendor_target import PREFIX, UnsafePath, VendorTarget
from bff.web.services import services

logger = logging.getLogger(__name__)

# Seed 004's names for the pair, as the vendor reads them.
TENANT_HEADER = "x-tenant-id"
SUB_TENANT_HEADER = "x-sub-tenant-id"


@dataclasses.dataclass(frozen=True)
class Grant:
    """What ``authorize`` allows one proxied request: whose it is, for which pair, and
    the ``Authorization`` value of that pair's vendor token."""

    session_id: str = dataclasses.field(repr=False)
    user_id: int
    pair: tuple[str, str]
    authorization: str = dataclasses.field(repr=False)
    # After the vendor refused this token: drops it from the broker, so the next
    # ``authorize`` carries a fresh one, unless a token obtained since replaced it.
    renew: Callable[[], Awaitable[None]] = dataclasses.field(repr=False, compare=False)


# The grant for this request's session, or the response that refuses it.
Authorize = Callable[[Request], Awaitable["Grant | Response"]]

# The request headers forwarded, by their name as the server gives it (lower-case bytes).
_REQUEST_HEADERS = {
    name.encode("ascii"): name
    for name in (
        "accept",
        "accept-encoding",
        "accept-language",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "range",
        "user-agent",
        "x-requested-with",
    )
}
_RESPONSE_HEADERS = frozenset(
    {
        b"accept-ranges",
        b"content-disposition",
        b"content-encoding",
        b"content-language",
        b"content-length",
        b"content-range",
        b"content-type",
        b"etag",
        b"last-modified",
        b"retry-after",
        b"vary",
    }
)
# Tenant data must never sit in a shared cache; the vendor page is framed only by our own
# page (a second policy header: browsers enforce every policy they get).
_ADDED_RESPONSE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
# The proxy's own failure pages show inside the dashboard iframe, so 'self' may frame them.
FRAMED_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PREFIX = PREFIX.encode("ascii") + b"/"
# Paths (with their query) whose upstream URL is remembered, and the longest one
# remembered: a dashboard asks for the same few dozen again and again.
_REMEMBERED_URLS = 1024
_REMEMBERED_URL_LENGTH = 512
# The vendor's distinct Content-Security-Policy values, remembered without frame-ancestors.
_REMEMBERED_POLICIES = 64


class _BodyTimeout(Exception):
    """The browser stopped sending its request body (or took too long over it)."""


class _Refused(Exception):
    """The vendor's answer cannot be passed on (it redirects elsewhere)."""


@dataclasses.dataclass(slots=True)
class _Incoming:
    """What the proxy reads from the browser's request head, in one pass."""

    # The allowlisted ones, hop-by-hop ones removed. Never Content-Length: the client
    # sets it for the body it actually sends, so a bodiless request that declares one
    # cannot leave the vendor waiting for (or reading the next request as) its body.
    headers: list[tuple[str, str]]
    has_body: bool
    content_length: int | None


class VendorProxy:
    """ASGI app for ``Mount(PREFIX, app=VendorProxy(...))``."""

    def __init__(
        self,
        target: VendorTarget | None,
        authorize: Authorize,
        metrics: ProxyMetrics,
        limits: ProxyLimits | None = None,
    ) -> None:
        self.target = target
        self.authorize = authorize
        self.metrics = metrics
        self.limits = limits or ProxyLimits()
        self.slots = ProxySlots(self.limits)
        self._urls: dict[bytes, str | None] = {}
        self._policies: dict[bytes, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # Websockets are not proxied: closing before accepting refuses the handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        response: Response | None
        if self.target is None:
            response = framed_page(
                request, 404, "No dashboard here", "The dashboard is not proxied by this server."
            )
        elif (url := self._upstream_url(scope)) is None:
            response = framed_page(
                request, 400, "Bad request", "This dashboard address is not valid."
            )
        elif isinstance(granted := await self.authorize(request), Response):
            response = granted
        else:
            try:
                slot = self.slots.acquire(granted.session_id, granted.user_id)
            except ProxyBusy as busy:
                response = self._busy(request, busy)
            else:
                with slot:
                    response = await self._exchange(request, url, granted, send)
        if response is not None:
            await response(scope, receive, send)

    def _upstream_url(self, scope: Scope) -> str | None:
        """The vendor URL for this request's path and query, or None when it is unsafe."""
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        query: bytes = scope.get("query_string", b"")
        key = raw + b"?" + query if query else raw
        try:
            return self._urls[key]
        except KeyError:
            pass
        url = self._resolve(raw, query)
        if len(key) <= _REMEMBERED_URL_LENGTH:
            if len(self._urls) >= _REMEMBERED_URLS:
                self._urls.clear()
            self._urls[key] = url
        return url

    def _resolve(self, raw: bytes, query: bytes) -> str | None:
        assert self.target is not None
        if not raw.startswith(_PREFIX):
            return None
        try:
            rest = raw[len(_PREFIX) :].decode("ascii")
            return str(self.target.upstream_url(rest, query))
        except (UnicodeDecodeError, UnsafePath):
            return None

    async def _exchange(
        self, request: Request, url: str, granted: Grant, send: Send
    ) -> Response | None:
        incoming = _incoming(request.scope)
        http = services(request).http
        body: Body | _StreamedBody = None
        try:
            if incoming.has_body:
                body = await self._request_body(request, incoming)
            sent = await http.send(request.method, url, *_outgoing(incoming, granted, body))
            upstream = (
                await self._after_refusal(request, url, incoming, granted, body, sent)
                if sent.status == 401
                else sent
            )
        except _BodyTimeout:
            return self._body_timed_out(request)
        except ClientDisconnect:
            return None  # the browser left; nobody to answer
        except VendorPoolExhausted:
            self.metrics.limited.labels("vendor_pool").inc()
            logger.warning("no vendor connection free for a proxied request")
            return self._unavailable(request)
        except VendorUnreachable as exc:
            # A streamed body fails inside the client: what stopped it is ours to answer.
            if isinstance(body, _StreamedBody) and isinstance(body.failure, _BodyTimeout):
                return self._body_timed_out(request)
            if isinstance(body, _StreamedBody) and isinstance(body.failure, ClientDisconnect):
                return None
            logger.warning("vendor dashboard unreachable: %s", exc)
            return framed_page(
                request, 502, "Dashboard unreachable", "The dashboard could not be reached."
            )
        if isinstance(upstream, Response):
            return upstream
        try:
            try:
                headers, length = self._response_headers(upstream.headers, url)
            except _Refused:
                logger.warning("vendor dashboard redirected outside its directory; refused")
                return framed_page(
                    request, 502, "Dashboard not available", "The dashboard sent us elsewhere."
                )
            await self._relay(request.receive, upstream, headers, length, send)
        finally:
            await upstream.aclose()
        return None

    def _body_timed_out(self, request: Request) -> Response:
        self.metrics.limited.labels("body_deadline").inc()
        logger.warning("a proxied request body did not arrive in time; answered 408")
        timed_out = framed_page(
            request, 408, "Request timed out", "The dashboard request took too long to send."
        )
        # The rest of the body may still trickle in: this connection is done.
        timed_out.headers["Connection"] = "close"
        return timed_out

    async def _request_body(self, request: Request, incoming: _Incoming) -> Body | _StreamedBody:
        """The body to forward: read whole when small enough to be sent again."""
        length = incoming.content_length
        if length is not None and length <= self.limits.replay_body_limit:
            return b"".join([chunk async for chunk in self._body(request.receive)])
        return _StreamedBody(self._body(request.receive))

    async def _after_refusal(
        self,
        request: Request,
        url: str,
        incoming: _Incoming,
        granted: Grant,
        body: Body | _StreamedBody,
        refused: UpstreamResponse,
    ) -> UpstreamResponse | Response:
        """After the vendor's 401 the token is renewed and, when the body can be sent
        again, the request is sent once more."""
        try:
            await granted.renew()
        except BaseException:
            await refused.aclose()
            raise
        if isinstance(body, _StreamedBody):
            self.metrics.refused("not_replayable")
            logger.warning("vendor refused a proxied request's token; renewed for the next one")
            return refused
        await refused.aclose()
        again = await self.authorize(request)
        if isinstance(again, Response):
            return again
        http = services(request).http
        retried = await http.send(request.method, url, *_outgoing(incoming, again, body))
        if retried.status == 401:
            self.metrics.refused("refused_again")
            logger.warning("vendor refused a proxied request's fresh token too; passed on")
        else:
            self.metrics.refused("retried")
            logger.info("vendor refused a proxied request's token; sent again with a fresh one")
        return retried

    async def _body(self, receive: Receive) -> AsyncIterator[bytes]:
        """The browser's body as it arrives, or :class:`_BodyTimeout` past a deadline."""
        deadline = anyio.current_time() + self.limits.body_deadline
        while True:
            wait = min(self.limits.body_idle_timeout, deadline - anyio.current_time())
            message: Message | None = None
            # The scope covers only the wait, never a yield.
            with anyio.move_on_after(max(wait, 0.0)):
                message = await receive()
            if message is None:
                raise _BodyTimeout
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def _relay(
        self,
        receive: Receive,
        upstream: UpstreamResponse,
        headers: list[tuple[bytes, bytes]],
        length: int | None,
        send: Send,
    ) -> None:
        """Stream the vendor's answer to the browser until it ends, the browser leaves,
        or the browser misses a deadline (returning mid-response makes the server close
        the browser's connection).

        One timeout guards it all, moved as it goes: the response deadline while the
        vendor is read, the send timeout (or the deadline, if sooner) while the browser
        is sent to. The head goes out with the first chunk."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.response_deadline
        patience = self.limits.send_timeout
        start: Message | None = {
            "type": "http.response.start",
            "status": upstream.status,
            "headers": headers,
        }
        watch: _DisconnectWatch | None = None
        sending = False
        try:
            async with asyncio.timeout_at(deadline) as guard:
                sent = 0
                while chunk := await upstream.next_chunk():
                    sent += len(chunk)
                    last = length is not None and sent >= length
                    sending = True
                    _arm(guard, watch, min(deadline, loop.time() + patience))
                    if start is not None:
                        await send(start)
                        start = None
                    await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                    if last:
                        return
                    sending = False
                    _arm(guard, watch, deadline)
                    if watch is None:
                        # uvicorn drops what is sent after a disconnect: without this watch
                        # the rest of a large answer would still be read from the vendor.
                        watch = _DisconnectWatch(receive, guard)
                sending = True
                _arm(guard, watch, min(deadline, loop.time() + patience))
                if start is not None:
                    await send(start)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            if watch is not None and watch.left:
                return
            missed = "send_timeout" if sending and loop.time() < deadline else "response_deadline"
            self.metrics.limited.labels(missed).inc()
            logger.warning("a browser stopped reading a proxied response (%s)", missed)
        except VendorUnreachable as exc:
            logger.warning("vendor dashboard failed mid-response: %s", exc)
        finally:
            if watch is not None:
                watch.stop()

    def _busy(self, request: Request, busy: ProxyBusy) -> Response:
        self.metrics.limited.labels(busy.bound).inc()
        logger.info("proxied request refused: %s bound reached", busy.bound)
        if busy.bound == "total":
            return self._unavailable(request)
        return framed_page(
            request,
            429,
            "Too many requests",
            "The dashboard asked for too much at once. Retrying shortly.",
            retry_after=self.limits.retry_after,
        )

    def _unavailable(self, request: Request) -> Response:
        return framed_page(
            request,
            503,
            "Dashboard busy",
            "The dashboard is busy right now. Retrying shortly.",
            retry_after=self.limits.retry_after,
        )

    def _response_headers(
        self, raw: RawHeaders, url: str
    ) -> tuple[list[tuple[bytes, bytes]], int | None]:
        """The headers the browser gets and the body's length when the vendor gave it;
        :class:`_Refused` for a redirect out of the dashboard's directory."""
        assert self.target is not None
        headers: list[tuple[bytes, bytes]] = []
        policies: list[tuple[bytes, bytes]] = []
        locations: list[bytes] = []
        length: int | None = None
        for name, value in raw:
            lower = name.lower()
            if lower in _RESPONSE_HEADERS:
                headers.append((lower, value))
                if lower == b"content-length":
                    length = int(value) if value.isdigit() else None
            elif lower == b"content-security-policy":
                kept = self._policy(value)
                if kept:
                    policies.append((lower, kept))
            elif lower == b"location":
                locations.append(value)
        headers += policies
        if locations:
            rewritten = (
                self.target.browser_location(locations[0].decode("latin-1"), httpx2.URL(url))
                if len(locations) == 1
                else None
            )
            if rewritten is None:
                raise _Refused
            headers.append((b"location", rewritten.encode("latin-1")))
        headers.extend(_ADDED_RESPONSE_HEADERS)
        return headers, length

    def _policy(self, value: bytes) -> bytes:
        kept = self._policies.get(value)
        if kept is None:
            kept = _without_frame_ancestors(value.decode("latin-1")).encode("latin-1")
            if len(self._policies) >= _REMEMBERED_POLICIES:
                self._policies.clear()
            self._policies[value] = kept
        return kept


class _StreamedBody:
    """A browser body streamed to the vendor; the client sends it from its own task, so
    what stopped it (a deadline, the browser leaving) is kept for the proxy to answer."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.failure: Exception | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except (_BodyTimeout, ClientDisconnect) as exc:
            self.failure = exc
            raise


def _arm(guard: asyncio.Timeout, watch: _DisconnectWatch | None, when: float) -> None:
    """Move ``guard`` to ``when``, unless the browser has left (it then fires at once)."""
    if watch is None or not watch.left:
        guard.reschedule(when)


class _DisconnectWatch:
    """Reads the browser's side while a response streams; when the browser leaves, ends
    the ``whole`` timeout at once, which stops the vendor read wherever it waits."""

    def __init__(self, receive: Receive, whole: asyncio.Timeout) -> None:
        self.left = False
        self._receive = receive
        self._whole = whole
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass  # the rest of a body the vendor did not wait for
        self.left = True
        self._whole.reschedule(asyncio.get_running_loop().time())

    def stop(self) -> None:
        self._task.cancel()


def framed_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    *,
    link: tuple[str, str] | None = None,
    retry_after: int | None = None,
) -> Response:
    """A notice shown inside the dashboard iframe: ``'self'`` may frame it (the default
    policy forbids framing), and its ``link`` opens in the top window."""
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": FRAMED_PAGE_CSP}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    context = {
        "title": title,
        "message": message,
        "link": link,
        "retry_after": retry_after,
        "request_id": request_id.get(),
    }
    return services(request).templates.TemplateResponse(
        request, "framed_notice.html", context, status_code=status, headers=headers
    )


def _without_frame_ancestors(policy: str) -> str:
    """The vendor's own policy still protects its page; only who may frame it is ours to say."""
    directives = [part.strip() for part in policy.split(";")]
    return "; ".join(
        part for part in directives if part and part.split()[0].lower() != "frame-ancestors"
    )


def _outgoing(
    incoming: _Incoming, granted: Grant, body: Body | _StreamedBody
) -> tuple[list[tuple[str, str]], Body]:
    """The headers and body to send the vendor for ``granted``."""
    # The browser's own tenant headers are not in the allowlist: the pair is pinned here.
    headers = [
        *incoming.headers,
        ("authorization", granted.authorization),
        (TENANT_HEADER, granted.pair[0]),
        (SUB_TENANT_HEADER, granted.pair[1]),
    ]
    if not isinstance(body, _StreamedBody):
        return headers, body
    if incoming.content_length is not None:
        headers.append(("content-length", str(incoming.content_length)))
    return headers, body.chunks()


def _incoming(scope: Scope) -> _Incoming:
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    headers: list[tuple[str, str]] = []
    hop_by_hop: list[str] = []
    framed = False
    length: int | None = None
    for name, value in raw:
        forwarded = _REQUEST_HEADERS.get(name)
        if forwarded is not None:
            headers.append((forwarded, value.decode("latin-1")))
        elif name == b"connection":
            hop_by_hop += [item.strip().lower() for item in value.decode("latin-1").split(",")]
        elif name == b"content-length":
            framed = True
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            framed = True
    # Headers the browser named in ``Connection`` are hop-by-hop, whatever they are called.
    if hop_by_hop and any(name in hop_by_hop for name, _ in headers):
        headers = [(name, value) for name, value in headers if name not in hop_by_hop]
    has_body = framed and scope["method"] not in _BODYLESS_METHODS
    return _Incoming(headers, has_body, length)
