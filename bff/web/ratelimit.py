"""Sign-in throttling: failed attempts per account and per client address.

A sliding window of failure times per key. Failures are counted whether or not
the account exists, so the limit reveals nothing about which e-mails are real.
A successful sign-in clears the account's failures but not the address's, so one
valid account cannot be used to reset guessing against others.

The counters live in process memory: with several instances each enforces the
limit on its own share of the traffic.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from datetime import datetime, timedelta

from bff.clock import Clock

MAX_KEYS = 100_000


class SlidingWindowLimiter:
    """At most ``limit`` recorded events per key within ``window``."""

    def __init__(self, clock: Clock, *, limit: int, window: timedelta) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._events: OrderedDict[str, deque[datetime]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        events = self._prune(key)
        if events is None or len(events) < self.limit:
            return None
        wait = (events[0] + self.window - self._clock.now()).total_seconds()
        return max(1, math.ceil(wait))

    def record(self, key: str) -> None:
        events = self._prune(key)
        if events is None:
            events = self._events[key] = deque()
        events.append(self._clock.now())
        self._events.move_to_end(key)
        while len(self._events) > MAX_KEYS:
            self._events.popitem(last=False)

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def _prune(self, key: str) -> deque[datetime] | None:
        events = self._events.get(key)
        if events is None:
            return None
        horizon = self._clock.now() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events


class LoginRateLimiter:
    """Failed sign-ins: ``per_account`` per e-mail and ``per_address`` per client address,
    each within ``window``."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_account: int = 5,
        # Higher: many people may share one address (an office behind NAT).
        per_address: int = 50,
        window: timedelta = timedelta(minutes=15),
    ) -> None:
        self.per_account, self.per_address = per_account, per_address
        self._accounts = SlidingWindowLimiter(clock, limit=per_account, window=window)
        self._addresses = SlidingWindowLimiter(clock, limit=per_address, window=window)

    def retry_after(self, email: str, address: str) -> int | None:
        waits = [
            wait
            for wait in (self._accounts.retry_after(email), self._addresses.retry_after(address))
            if wait is not None
        ]
        return max(waits) if waits else None

    def failed(self, email: str, address: str) -> None:
        self._accounts.record(email)
        self._addresses.record(address)

    def succeeded(self, email: str) -> None:
        self._accounts.clear(email)
