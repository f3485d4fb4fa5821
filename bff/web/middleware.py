"""The request context, the outermost of bff's layers: a request id, the request
metrics and the access record, for every origin bff serves (its own and
``BFF_PROXY_ORIGIN``'s, which :mod:`bff.web.dashboard.proxy_origin` dispatches just
inside this layer). What bff's own origin adds per request is
:class:`~bff.web.request_pipeline.RequestPipeline`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.logs import redact, request_id
from bff.metrics import HttpMetrics
from bff.web.access_log import access_log_enabled, log_access
from bff.web.request_pipeline import Exchange, RequestPipeline

_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Anything else is counted as OTHER: a client must not mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestContextMiddleware:
    """Gives each request an id (a sane incoming ``X-Request-ID`` is kept), logs carry it,
    and counts and logs the request by route template once it is over."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # With bff's pipeline right inside (no proxy origin dispatched in between), its
        # send wrapper serves both layers.
        self._pipeline = app if isinstance(app, RequestPipeline) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope["headers"])
        # Not reset afterwards: the 500 handler runs outside this middleware and
        # still wants the id, and every request runs in its own task context.
        request_id.set(rid)
        exchange = Exchange((b"x-request-id", rid.encode("latin-1")))
        try:
            if self._pipeline is not None:
                await self._pipeline.serve(scope, receive, send, exchange)
            else:
                await self.app(scope, receive, _with_id(send, exchange))
        finally:
            seconds = time.perf_counter() - started
            status = 500 if exchange.status is None else exchange.status
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe(method, route, status, seconds)
            if access_log_enabled():
                log_access(scope, method, route, status, seconds)


def _with_id(send: Send, exchange: Exchange) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            # Without any id of the route's; a copy, since a response may be sent twice.
            raw = [pair for pair in message.get("headers", ()) if pair[0] != b"x-request-id"]
            raw.append(exchange.id_header)
            message["headers"] = raw
        await send(message)

    return send_with_id


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            if _is_safe_request_id(incoming):
                return incoming
            break
    # secrets.token_hex(8), without its two calls on every request.
    return os.urandom(8).hex()


def _is_safe_request_id(value: str) -> bool:
    # A client's id is echoed in headers, error pages and every log line of the
    # request: one that redaction would change (a token, a secret) is not kept.
    return _SAFE_REQUEST_ID.fullmatch(value) is not None and redact(value) == value
