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
connection pool; the broker's token calls never wait behind proxied traffic.

When the vendor answers 401, the token may have been revoked upstream early:
``Grant.renew`` drops it from the broker (unless a token obtained since has
replaced it) and the request is sent once more with the pair's fresh token, if
its body can be sent again: bodiless requests and bodies of at most
``REPLAY_BODY_LIMIT`` bytes with a ``Content-Length``, which are read whole
before they are sent. A streamed body is not replayed: its 401 is passed on and
the next request carries the fresh token. A second 401 is passed on. Each case is
counted in ``bff_proxy_token_refusals_total``.

The proxied pages run on the BFF's origin, so the vendor's dashboard code is
trusted like the BFF's own pages; the session cookie stays ``HttpOnly``.
"""

from __future__ import annotations

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


# A request body to forward: none, read whole (can be sent again), or streamed.
_Body = bytes | AsyncIterator[bytes] | None


# The grant for this request's session, or the response that refuses it.
Authorize = Callable[[Request], Awaitable["Grant | Response"]]

_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-length",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "range",
        "user-agent",
        "x-requested-with",
    }
)
_RESPONSE_HEADERS = frozenset(
    {
        "accept-ranges",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-range",
        "content-type",
        "etag",
        "last-modified",
        "retry-after",
        "vary",
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


class _BodyTimeout(Exception):
    """The browser stopped sending its request body (or took too long over it)."""


class _SlowBrowser(Exception):
    """The browser stopped taking the response; ``deadline`` names the one it missed."""

    def __init__(self, deadline: str) -> None:
        super().__init__(deadline)
        self.deadline = deadline


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # Websockets are not proxied: closing before accepting refuses the handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        response = await self._forward(request, send)
        if response is not None:
            await response(scope, receive, send)

    async def _forward(self, request: Request, send: Send) -> Response | None:
        if self.target is None:
            return framed_page(
                request, 404, "No dashboard here", "The dashboard is not proxied by this server."
            )
        raw_rest = _raw_rest(request.scope)
        try:
            if raw_rest is None:
                raise UnsafePath("path outside the prefix")
            url = self.target.upstream_url(raw_rest, request.scope.get("query_string", b""))
        except UnsafePath:
            return framed_page(request, 400, "Bad request", "This dashboard address is not valid.")
        granted = await self.authorize(request)
        if isinstance(granted, Response):
            return granted
        try:
            slot = self.slots.acquire(granted.session_id, granted.user_id)
        except ProxyBusy as busy:
            return self._busy(request, busy)
        with slot:
            return await self._exchange(request, url, granted, send)

    async def _exchange(
        self, request: Request, url: httpx2.URL, granted: Grant, send: Send
    ) -> Response | None:
        try:
            body = await self._request_body(request)
            upstream = await self._open(request, url, granted, body)
        except _BodyTimeout:
            self.metrics.limited.labels("body_deadline").inc()
            logger.warning("a proxied request body did not arrive in time; answered 408")
            timed_out = framed_page(
                request, 408, "Request timed out", "The dashboard request took too long to send."
            )
            # The rest of the body may still trickle in: this connection is done.
            timed_out.headers["Connection"] = "close"
            return timed_out
        except ClientDisconnect:
            return None  # the browser left; nobody to answer
        except httpx2.PoolTimeout:
            self.metrics.limited.labels("vendor_pool").inc()
            logger.warning("no vendor connection free for a proxied request")
            return self._unavailable(request)
        except httpx2.HTTPError as exc:
            logger.warning("vendor dashboard unreachable: %s", type(exc).__name__)
            return framed_page(
                request, 502, "Dashboard unreachable", "The dashboard could not be reached."
            )
        if isinstance(upstream, Response):
            return upstream
        try:
            headers = self._response_headers(upstream, url)
            if headers is None:
                logger.warning("vendor dashboard redirected outside its directory; refused")
                return framed_page(
                    request, 502, "Dashboard not available", "The dashboard sent us elsewhere."
                )
            await self._relay(request, upstream, headers, send)
        finally:
            await upstream.aclose()
        return None

    async def _request_body(self, request: Request) -> _Body:
        """The body to forward: read whole when small enough to be sent again."""
        if not _has_body(request):
            return None
        length = _content_length(request)
        if length is not None and length <= self.limits.replay_body_limit:
            return b"".join([chunk async for chunk in self._body(request.receive)])
        return self._body(request.receive)

    async def _open(
        self, request: Request, url: httpx2.URL, granted: Grant, body: _Body
    ) -> httpx2.Response | Response:
        """The vendor's streamed answer; after a 401 the token is renewed and, when the
        body can be sent again, the request is sent once more."""
        upstream = await self._send(request, url, granted, body)
        if upstream.status_code != 401:
            return upstream
        try:
            await granted.renew()
        except BaseException:
            await upstream.aclose()
            raise
        if not isinstance(body, bytes | None):
            self.metrics.refused("not_replayable")
            logger.warning("vendor refused a proxied request's token; renewed for the next one")
            return upstream
        await upstream.aclose()
        again = await self.authorize(request)
        if isinstance(again, Response):
            return again
        retried = await self._send(request, url, again, body)
        if retried.status_code == 401:
            self.metrics.refused("refused_again")
            logger.warning("vendor refused a proxied request's fresh token too; passed on")
        else:
            self.metrics.refused("retried")
            logger.info("vendor refused a proxied request's token; sent again with a fresh one")
        return retried

    async def _send(
        self, request: Request, url: httpx2.URL, granted: Grant, body: _Body
    ) -> httpx2.Response:
        upstream_request = httpx2.Request(
            request.method, url, headers=_request_headers(request, granted), content=body
        )
        http = services(request).http
        return await http.send(upstream_request, stream=True, follow_redirects=False)

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
        request: Request,
        upstream: httpx2.Response,
        headers: list[tuple[bytes, bytes]],
        send: Send,
    ) -> None:
        """Stream the vendor's answer to the browser until it ends, the browser leaves,
        or the browser misses a deadline (returning mid-response makes the server close
        the browser's connection)."""
        async with anyio.create_task_group() as group:
            # uvicorn drops what is sent after a disconnect: without this watch the
            # rest of a large answer would still be read from the vendor.
            group.start_soon(_cancel_on_disconnect, request.receive, group.cancel_scope)
            try:
                await self._stream(upstream, headers, send)
            except _SlowBrowser as slow:
                self.metrics.limited.labels(slow.deadline).inc()
                logger.warning("a browser stopped reading a proxied response (%s)", slow.deadline)
            except httpx2.HTTPError as exc:
                logger.warning("vendor dashboard failed mid-response: %s", type(exc).__name__)
            finally:
                group.cancel_scope.cancel()

    async def _stream(
        self, upstream: httpx2.Response, headers: list[tuple[bytes, bytes]], send: Send
    ) -> None:
        with anyio.move_on_after(self.limits.response_deadline) as whole:
            start = {"type": "http.response.start", "status": upstream.status_code}
            await self._give(send, {**start, "headers": headers})
            async for chunk in upstream.aiter_raw():
                await self._give(
                    send, {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await self._give(send, {"type": "http.response.body", "body": b"", "more_body": False})
        if whole.cancelled_caught:
            raise _SlowBrowser("response_deadline")

    async def _give(self, send: Send, message: Message) -> None:
        """``send``, unless the browser leaves it waiting past the send timeout."""
        with anyio.move_on_after(self.limits.send_timeout) as waited:
            await send(message)
        if waited.cancelled_caught:
            raise _SlowBrowser("send_timeout")

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
        self, upstream: httpx2.Response, url: httpx2.URL
    ) -> list[tuple[bytes, bytes]] | None:
        assert self.target is not None
        headers = [
            (name.lower(), value)
            for name, value in upstream.headers.raw
            if name.lower().decode("latin-1") in _RESPONSE_HEADERS
        ]
        for policy in upstream.headers.get_list("content-security-policy"):
            kept = _without_frame_ancestors(policy)
            if kept:
                headers.append((b"content-security-policy", kept.encode("latin-1")))
        location = upstream.headers.get("location")
        if location is not None:
            rewritten = self.target.browser_location(location, url)
            if rewritten is None:
                return None
            headers.append((b"location", rewritten.encode("latin-1")))
        headers.extend(_ADDED_RESPONSE_HEADERS)
        return headers


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


def _raw_rest(scope: Scope) -> str | None:
    """The still-encoded path after the prefix, as the browser sent it."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    prefix = PREFIX.encode("ascii") + b"/"
    if not raw.startswith(prefix):
        return None
    try:
        return raw[len(prefix) :].decode("ascii")
    except UnicodeDecodeError:
        return None


def _request_headers(request: Request, granted: Grant) -> list[tuple[str, str]]:
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name in _REQUEST_HEADERS and not _is_connection_header(request, name)
    ]
    # The browser's own tenant headers are not in the allowlist: the pair is pinned here.
    headers.append(("authorization", granted.authorization))
    headers.append((TENANT_HEADER, granted.pair[0]))
    headers.append((SUB_TENANT_HEADER, granted.pair[1]))
    return headers


def _is_connection_header(request: Request, name: str) -> bool:
    """Headers the browser named in ``Connection`` are hop-by-hop, whatever they are called."""
    listed = request.headers.get("connection", "")
    return name in {item.strip().lower() for item in listed.split(",")}


def _has_body(request: Request) -> bool:
    if request.method in _BODYLESS_METHODS:
        return False
    return "content-length" in request.headers or "transfer-encoding" in request.headers


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body the vendor did not wait for
    scope.cancel()
