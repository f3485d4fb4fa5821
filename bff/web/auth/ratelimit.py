"""Sign-in throttling: failed attempts per (account, address), per address and per account.

An attempt is *reserved* before its password is checked, in the same step that checks
the limits (:meth:`LoginRateLimiter.reserve`), so concurrent attempts cannot all pass a
check that none of them has yet been counted against. When the outcome is known the
reservation is *settled* (:meth:`LoginRateLimiter.settle`): a failure stays counted, a
success is not a failure, and an attempt that was never checked (sign-in was busy)
costs nothing. An attempt that ends any other way (an error, a cancelled request)
stays counted: it may have been checked.

Three windows, each a sliding window of ``WINDOW``:

- per (account, address), ``PER_ACCOUNT_AT_ADDRESS``: the limit a guesser at one
  address meets first, and the only one a success clears. It locks out that address
  only, so an attacker elsewhere cannot lock the owner out.
- per address, ``PER_ADDRESS``: guessing many accounts from one address.
- per account across all addresses, ``PER_ACCOUNT``: a ceiling on distributed guessing
  of one account. One address can add at most ``PER_ACCOUNT_AT_ADDRESS`` to it, so
  locking the owner out this way takes ``PER_ACCOUNT // PER_ACCOUNT_AT_ADDRESS``
  addresses at once.

A success clears the (account, address) window but neither the address's nor the
account's failures, so one valid account cannot reset guessing against others, nor the
owner's sign-in the distributed guessing against their own account. Failures are
counted whether or not the account exists, so the limits reveal nothing about which
e-mails are real.

The counters live in process memory (at most ``MAX_KEYS`` keys per window): with several
instances each enforces the limits on its own share of the traffic. Everything that
reads or changes them is :meth:`~LoginRateLimiter.reserve` and
:meth:`~LoginRateLimiter.settle`, which a shared (Redis) implementation can provide in
one round trip each.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from typing import Literal

from bff.clock import Clock

# A typing slip or two and a forgotten password manager fit in 5; more from the same
# place is guessing.
PER_ACCOUNT_AT_ADDRESS = 5
# Higher: many people may share one address (an office behind NAT).
PER_ADDRESS = 50
# Twenty times the per-address share: 100 guesses per account per window at most (9,600 a
# day), and the owner is locked out only by 20 addresses guessing together.
PER_ACCOUNT = 100
WINDOW_SECONDS = 15 * 60
MAX_KEYS = 100_000

Outcome = Literal["success", "failure", "not_checked"]


class SlidingWindowLimiter:
    """At most ``limit`` recorded events per key within ``window`` seconds (on the
    clock's monotonic time, so setting the wall clock neither lifts nor extends a limit)."""

    def __init__(self, clock: Clock, *, limit: int, window: float) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may record again, or None when it may now."""
        events = self._prune(key)
        if events is None or len(events) < self.limit:
            return None
        wait = events[0] + self.window - self._clock.monotonic()
        return max(1, math.ceil(wait))

    def record(self, key: str) -> float:
        """Record an event now; returns its time, to :meth:`discard` it later."""
        now = self._clock.monotonic()
        events = self._prune(key)
        if events is None:
            events = self._events[key] = deque()
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > MAX_KEYS:
            self._events.popitem(last=False)
        return now

    def discard(self, key: str, at: float) -> None:
        """Forget one event recorded at ``at`` (nothing if it has expired or was cleared)."""
        events = self._events.get(key)
        if events is None:
            return
        try:
            events.remove(at)
        except ValueError:
            return
        if not events:
            del self._events[key]

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def __len__(self) -> int:
        return len(self._events)

    def _prune(self, key: str) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        horizon = self._clock.monotonic() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events


@dataclasses.dataclass(frozen=True)
class Reservation:
    """One sign-in attempt, counted as a failure until it is settled otherwise."""

    email: str
    address: str
    at: float


@dataclasses.dataclass(frozen=True)
class Refusal:
    """The attempt was not counted: a limit is reached until ``retry_after`` seconds pass."""

    retry_after: int


class LoginRateLimiter:
    """Failed sign-ins per (account, address), per address and per account (see the
    module docstring for the numbers and why)."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_account_at_address: int = PER_ACCOUNT_AT_ADDRESS,
        per_address: int = PER_ADDRESS,
        per_account: int = PER_ACCOUNT,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.per_account_at_address = per_account_at_address
        self.per_address = per_address
        self.per_account = per_account
        self.window = window
        self._pairs = SlidingWindowLimiter(clock, limit=per_account_at_address, window=window)
        self._addresses = SlidingWindowLimiter(clock, limit=per_address, window=window)
        self._accounts = SlidingWindowLimiter(clock, limit=per_account, window=window)

    def reserve(self, email: str, address: str) -> Reservation | Refusal:
        """Count an attempt before its password is checked, or refuse it. Synchronous on
        purpose: nothing can run between the check and the count."""
        pair = _pair(email, address)
        waits = [
            wait
            for wait in (
                self._pairs.retry_after(pair),
                self._addresses.retry_after(address),
                self._accounts.retry_after(email),
            )
            if wait is not None
        ]
        if waits:
            return Refusal(max(waits))
        at = self._pairs.record(pair)
        self._addresses.record(address)
        self._accounts.record(email)
        return Reservation(email, address, at)

    def settle(self, reservation: Reservation, outcome: Outcome) -> None:
        """Record how the attempt ended: a failure stays counted; a success clears the
        (account, address) window and is not counted against the address or the account;
        an attempt that was never checked is not counted at all."""
        if outcome == "failure":
            return
        pair = _pair(reservation.email, reservation.address)
        if outcome == "success":
            self._pairs.clear(pair)
        else:
            self._pairs.discard(pair, reservation.at)
        self._addresses.discard(reservation.address, reservation.at)
        self._accounts.discard(reservation.email, reservation.at)


def _pair(email: str, address: str) -> str:
    # An address never contains NUL, so the last one separates the two parts.
    return f"{email}\0{address}"
