"""How much of the vendor proxy one browser may hold, and for how long.

A proxied request holds a slot from the moment it is authorized until its
response has left: at most :data:`MAX_PER_SESSION` per session,
:data:`MAX_PER_USER` per user and :data:`MAX_TOTAL` in the process (the size of
the proxy's own vendor connection pool, which the broker never shares). Beyond a
bound the request is refused at once (429, or 503 for the process-wide one) with
``Retry-After``; nothing queues. Deadlines bound how long a slot can be held by a
browser that stops sending its body or stops reading the response, so a slow or
hostile client costs at most ``MAX_PER_USER`` slots for a bounded time.

The counters live in one process: with several workers or instances each one
applies the bounds on its own.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, TypeVar

import httpx2

# Every number below is documented in the README; change both together.

# A browser opens at most 6 connections to one origin over HTTP/1.1 and multiplexes
# a few dozen over HTTP/2; a dashboard's page, scripts and data calls load through 16
# without visible queueing, and a session holding more is not a page loading.
MAX_PER_SESSION = 16
# Two sessions of one user (a second browser or device) at full speed; more share it.
MAX_PER_USER = 32
# The proxy's vendor connections in this process; each slot costs one connection and
# a few buffers, so this is what a vendor outage or a crowd of slow readers can cost.
MAX_TOTAL = 128
# Seconds a refused browser is asked to wait: a dashboard's burst of asset loads is
# over by then.
RETRY_AFTER = 2
# Seconds the browser may pause while sending a request body, and seconds the whole
# body may take: dashboards send small JSON or form bodies, which arrive in well under
# a second even on a poor mobile uplink; a trickle cannot stretch a slot beyond this.
BODY_IDLE_TIMEOUT = 10.0
BODY_DEADLINE = 30.0
# Seconds one response chunk may wait for the browser to take it: a browser that
# reads nothing for this long (its buffers full) is not reading.
SEND_TIMEOUT = 10.0
# Seconds a whole proxied response may stream: a large export on a slow link fits,
# and a long-lived stream (server-sent events) reconnects by itself.
RESPONSE_DEADLINE = 300.0
# The vendor side of a proxied request. Reads are per chunk: a dashboard's data
# query may take a while to start answering.
VENDOR_CONNECT_TIMEOUT = 5.0
VENDOR_READ_TIMEOUT = 30.0
VENDOR_WRITE_TIMEOUT = 10.0
# Only a backstop: MAX_TOTAL refuses before the pool would make anyone wait.
VENDOR_POOL_TIMEOUT = 5.0
VENDOR_KEEPALIVE = 32
# Seconds an idle pooled connection is kept (httpx2's default).
VENDOR_KEEPALIVE_EXPIRY = 5.0
# Bytes of request body read whole before the request is sent, so it can be sent
# again after a vendor 401: dashboards' data queries are small JSON; a bigger body
# (or one without Content-Length) streams and is never replayed.
REPLAY_BODY_LIMIT = 64 * 1024

Bound = Literal["session", "user", "total"]
_K = TypeVar("_K", str, int)


@dataclasses.dataclass(frozen=True)
class ProxyLimits:
    """The proxy's bounds and deadlines (seconds); the defaults are the constants above."""

    max_per_session: int = MAX_PER_SESSION
    max_per_user: int = MAX_PER_USER
    max_total: int = MAX_TOTAL
    retry_after: int = RETRY_AFTER
    body_idle_timeout: float = BODY_IDLE_TIMEOUT
    body_deadline: float = BODY_DEADLINE
    send_timeout: float = SEND_TIMEOUT
    response_deadline: float = RESPONSE_DEADLINE
    replay_body_limit: int = REPLAY_BODY_LIMIT

    def vendor_pool(self) -> httpx2.Limits:
        """The connection pool of the proxy's own vendor client."""
        return httpx2.Limits(
            max_connections=self.max_total,
            max_keepalive_connections=min(VENDOR_KEEPALIVE, self.max_total),
            keepalive_expiry=VENDOR_KEEPALIVE_EXPIRY,
        )

    def vendor_timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(
            connect=VENDOR_CONNECT_TIMEOUT,
            read=VENDOR_READ_TIMEOUT,
            write=VENDOR_WRITE_TIMEOUT,
            pool=VENDOR_POOL_TIMEOUT,
        )


class ProxyBusy(Exception):
    """A proxied request over one of the bounds; ``bound`` says which."""

    def __init__(self, bound: Bound) -> None:
        super().__init__(f"proxy bound reached: {bound}")
        self.bound: Bound = bound


class ProxySlots:
    """Counts the proxied requests in flight per session, per user and in total.

    ``acquire`` never waits: it takes a slot or raises :class:`ProxyBusy`. Check and
    count happen without an ``await`` in between, so concurrent requests on the
    event loop cannot both take the last slot.
    """

    def __init__(self, limits: ProxyLimits) -> None:
        self._limits = limits
        # Plain dicts: a Counter's missing keys cost a Python call on every request.
        self._sessions: dict[str, int] = {}
        self._users: dict[int, int] = {}
        self.in_use = 0

    def acquire(self, session_id: str, user_id: int) -> Slot:
        in_session = self._sessions.get(session_id, 0)
        if in_session >= self._limits.max_per_session:
            raise ProxyBusy("session")
        of_user = self._users.get(user_id, 0)
        if of_user >= self._limits.max_per_user:
            raise ProxyBusy("user")
        if self.in_use >= self._limits.max_total:
            raise ProxyBusy("total")
        self._sessions[session_id] = in_session + 1
        self._users[user_id] = of_user + 1
        self.in_use += 1
        return Slot(self, session_id, user_id)

    def held_by(self, session_id: str) -> int:
        return self._sessions.get(session_id, 0)

    def _release(self, session_id: str, user_id: int) -> None:
        _decrement(self._sessions, session_id)
        _decrement(self._users, user_id)
        self.in_use -= 1


class Slot:
    """One taken slot; leaving the ``with`` block gives it back, exactly once."""

    def __init__(self, slots: ProxySlots, session_id: str, user_id: int) -> None:
        self._slots = slots
        self._session_id = session_id
        self._user_id = user_id
        self._held = True

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._session_id, self._user_id)


def _decrement(counts: dict[_K, int], key: _K) -> None:
    # Keys at zero are dropped: ended sessions leave nothing behind.
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
