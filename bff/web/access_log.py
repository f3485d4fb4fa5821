"""The access record: bff's own (uvicorn's access log is off), one INFO line per
request on the ``bff.access`` logger.

Its fields are safe as they are (method from a fixed set, route template, status,
duration, client address, the request id), so they are written without the redaction
walk; only the message, which holds the path, is redacted. The query string is never
logged: tickets and tokens travel there. Below INFO nothing is built at all.

With the handler :func:`bff.logs.configure_logging` installs, a record skips
``logging`` (:func:`bff.logs.direct_handler`): the request notes its fields, and the
lines noted during one turn of the event loop are built and written together at the
start of the next turn, one write for all of them, so each request pays for a tuple
and the line-building code runs warm. Each line keeps the time and request id of its
request; a line from another logger may come out between a request's end and its
access line. Any other set-up (tests capturing records, extra handlers, filters) goes
through ``logging`` at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import Scope

from bff.logs import TRUSTED, direct_handler, line_time, redact_repeated, request_id, write_direct

logger = logging.getLogger("bff.access")

# handler, time, request id, method, path, status, route, seconds, client
_Noted = tuple[logging.StreamHandler[Any], float, str | None, str, str, int, str, float, Any]


class _NotedLines(threading.local):
    def __init__(self) -> None:
        self.noted: list[_Noted] = []


_this_thread = _NotedLines()


def access_log_enabled() -> bool:
    return logger.isEnabledFor(logging.INFO)


def log_access(scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
    """One access record; the caller has checked :func:`access_log_enabled` and passes a
    method from a fixed set and a route template."""
    client = scope.get("client")
    handler = direct_handler(logger, logging.INFO)
    if handler is None:
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        logger.info("%s %s %d", method, scope["path"], status, extra={TRUSTED: fields})
        return
    noted = (
        handler,
        time.time(),
        request_id.get(),
        method,
        scope["path"],
        status,
        route,
        seconds,
        client,
    )
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # outside an event loop: at once
        _write([noted])
        return
    pending = _this_thread.noted
    if not pending:
        loop.call_soon(_write_noted, pending)
    pending.append(noted)


def _write_noted(pending: list[_Noted]) -> None:
    noted = pending.copy()
    pending.clear()
    _write(noted)


def _write(noted: Sequence[_Noted]) -> None:
    lines: list[dict[str, Any]] = []
    current = noted[0][0]
    for handler, created, rid, method, path, status, route, seconds, client in noted:
        if handler is not current:
            write_direct(current, lines)
            current, lines = handler, []
        # The formatter's line, field for field.
        entry = {
            "time": line_time(created),
            "level": "INFO",
            "logger": logger.name,
            "message": redact_repeated(f"{method} {path} {status}"),
            "request_id": rid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        if rid is None:
            del entry["request_id"]
        lines.append(entry)
    write_direct(current, lines)
