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
access line. A line is put together from fragments kept per (method, path, route,
status): the redacted message, and the method, route and status, encoded once and
rebuilt when a secret is registered; per line only the time (once per millisecond),
the request id, the duration and the client (kept per address) are written. Any other
set-up (tests capturing records, extra handlers, filters) goes through ``logging`` at
once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import Scope

from bff.logs import (
    TRUSTED,
    direct_handler,
    json_value,
    line_time,
    redact_repeated,
    redaction_epoch,
    request_id,
    write_lines,
)

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


# Per (method, path, route, status): the line from after its time to the request id
# (the redacted message) and from after the request id to the duration (method, route,
# status). Built once, while the registered secrets stay the same.
_Fragments = tuple[str, str]
_MEMO_SIZE = 1024
_fragments: dict[tuple[str, str, str, int], _Fragments] = {}
_fragments_epoch: list[object] = [None]
_clients: dict[Any, str] = {}
# Durations written with three decimals (the formatter's round(…, 3) read back is the
# same number); beyond, or not a number, as the formatter writes them.
_PLAIN_FLOAT = 1e15


def _fragments_of(method: str, path: str, route: str, status: int) -> _Fragments:
    message = json_value(redact_repeated(f"{method} {path} {status}"))
    return (
        f'","level":"INFO","logger":{json_value(logger.name)},"message":{message}',
        f',"method":{json_value(method)},"route":{json_value(route)},"status":{status}'
        ',"duration_ms":',
    )


def _client(client: Any) -> str:
    return json_value(f"{client[0]}:{client[1]}" if client else None)


def _write(noted: Sequence[_Noted]) -> None:
    """The formatter's lines, field for field, from fragments kept per route and path."""
    epoch = redaction_epoch()
    if _fragments_epoch[0] is not epoch:
        _fragments.clear()
        _fragments_epoch[0] = epoch
    fragments, clients = _fragments, _clients
    lines: list[str] = []
    current = noted[0][0]
    millisecond, stamp = -1, ""
    for handler, created, rid, method, path, status, route, seconds, client in noted:
        if handler is not current:
            write_lines(current, "".join(lines))
            current, lines = handler, []
        key = (method, path, route, status)
        parts = fragments.get(key)
        if parts is None:
            if len(fragments) >= _MEMO_SIZE:
                fragments.clear()
            parts = fragments[key] = _fragments_of(method, path, route, status)
        now = int(created * 1000)
        if now != millisecond:
            millisecond, stamp = now, line_time(created)
        if rid is None:
            id_part = ""
        elif rid.isascii() and rid.isprintable() and '"' not in rid and "\\" not in rid:
            id_part = f',"request_id":"{rid}"'
        else:
            id_part = f',"request_id":{json_value(rid)}'
        milliseconds = seconds * 1000
        if -_PLAIN_FLOAT < milliseconds < _PLAIN_FLOAT:
            # round(milliseconds, 3)'s value, in a third of its time.
            duration_part = f"{milliseconds:.3f}"
        else:
            duration_part = json_value(round(milliseconds, 3))
        if type(client) is tuple:
            client_part = clients.get(client)
            if client_part is None:
                if len(clients) >= _MEMO_SIZE:
                    clients.clear()
                client_part = clients[client] = _client(client)
        else:
            client_part = _client(client)
        lines.append(
            f'{{"time":"{stamp}{parts[0]}{id_part}{parts[1]}{duration_part}'
            f',"client":{client_part}}}{current.terminator}'
        )
    write_lines(current, "".join(lines))
