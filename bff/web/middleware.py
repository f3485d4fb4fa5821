"""Pure ASGI middleware that wraps every request: a request id, request metrics and
the access record.

The access record is bff's own (uvicorn's access log is off): one INFO line per
request on the ``bff.access`` logger, built from fields that are safe as they are
(method from a fixed set, route template, status, duration, client address) and
the path, which the formatter redacts like any message. The query string is never
logged: tickets and tokens travel there. Below INFO nothing is built at all.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.logs import TRUSTED, redact, request_id
from bff.metrics import HttpMetrics

access_log = logging.getLogger("bff.access")

_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Anything else is counted as OTHER: a client must not mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestContextMiddleware:
    """Gives each request an id (a sane incoming ``X-Request-ID`` is kept), logs carry it,
    and counts the request by route template once the response has started."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        rid = incoming if incoming and _is_safe_request_id(incoming) else _new_id()
        # Not reset afterwards: the 500 handler runs outside this middleware and
        # still wants the id, and every request runs in its own task context.
        request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe(method, route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, method, route, status, seconds)


def _log_access(scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
    client = scope.get("client")
    access_log.info(
        "%s %s %d",
        method,
        scope["path"],
        status,
        extra={
            TRUSTED: {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            }
        },
    )


def _is_safe_request_id(value: str) -> bool:
    # A client's id is echoed in headers, error pages and every log line of the
    # request: one that redaction would change (a token, a secret) is not kept.
    return _SAFE_REQUEST_ID.fullmatch(value) is not None and redact(value) == value


def _new_id() -> str:
    return secrets.token_hex(8)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
