"""A circuit breaker per vendor connection.

Closed: calls flow. After ``threshold`` consecutive failures it opens: calls are
refused without touching the vendor for ``open_for`` seconds. Then it is half
open: one probe call goes through; success closes it, failure opens it again.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from bff.clock import Clock


class CircuitState(enum.IntEnum):
    # Values are what the metrics gauge shows.
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(self, clock: Clock, *, threshold: int = 5, open_for: float = 15.0) -> None:
        self._clock = clock
        self._threshold = threshold
        self._open_for = timedelta(seconds=open_for)
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock.now() < self._opened_at + self._open_for:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def retry_after(self) -> float:
        """Seconds until a call may be tried again (0 when it may be tried now)."""
        if self._opened_at is None:
            return 0.0
        remaining = (self._opened_at + self._open_for - self._clock.now()).total_seconds()
        if remaining > 0:
            return remaining
        # Half open with a probe already out: the others wait for its verdict.
        return 1.0 if self._probing else 0.0

    def acquire(self) -> bool:
        """Whether a call may go out now; in the half-open state only the first caller may."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN or self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at = self._clock.now()
        self._probing = False

    def neutral(self) -> None:
        """The call ended without saying anything about the vendor's health (e.g. a 429)."""
        self._probing = False
