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

With ``shared`` (a :class:`~bff.shared.redis_link.RedisLink`) the windows are counted in
Redis, so every process and instance enforces the same limits; without it, and while
Redis is unreachable, each process counts in its own memory and enforces them on its
own share of the traffic (:mod:`bff.shared.counters`). :meth:`~LoginRateLimiter.reserve`
and :meth:`~LoginRateLimiter.settle` are one round trip each.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from bff.clock import Clock
from bff.shared.counters import Counters, Taken, Window
from bff.shared.redis_link import RedisLink

# A typing slip or two and a forgotten password manager fit in 5; more from the same
# place is guessing.
PER_ACCOUNT_AT_ADDRESS = 5
# Higher: many people may share one address (an office behind NAT).
PER_ADDRESS = 50
# Twenty times the per-address share: 100 guesses per account per window at most (9,600 a
# day), and the owner is locked out only by 20 addresses guessing together.
PER_ACCOUNT = 100
WINDOW_SECONDS = 15 * 60

Outcome = Literal["success", "failure", "not_checked"]


@dataclasses.dataclass(frozen=True)
class Reservation:
    """One sign-in attempt, counted as a failure until it is settled otherwise."""

    email: str
    address: str
    taken: Taken = dataclasses.field(repr=False)


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
        shared: RedisLink | None = None,
    ) -> None:
        self.per_account_at_address = per_account_at_address
        self.per_address = per_address
        self.per_account = per_account
        self.window = window
        self._pairs = Window("signin.account-address", per_account_at_address, window)
        self._addresses = Window("signin.address", per_address, window)
        self._accounts = Window("signin.account", per_account, window)
        self._counters = Counters(clock, shared)

    async def reserve(self, email: str, address: str) -> Reservation | Refusal:
        """Count an attempt before its password is checked, or refuse it; checking and
        counting are one atomic step."""
        taken = await self._counters.take(
            [
                (self._pairs, _pair(email, address)),
                (self._addresses, address),
                (self._accounts, email),
            ]
        )
        if isinstance(taken, int):
            return Refusal(taken)
        return Reservation(email, address, taken)

    async def settle(self, reservation: Reservation, outcome: Outcome) -> None:
        """Record how the attempt ended: a failure stays counted; a success clears the
        (account, address) window and is not counted against the address or the account;
        an attempt that was never checked is not counted at all."""
        if outcome == "failure":
            return
        others = (self._addresses, self._accounts)
        if outcome == "success":
            await self._counters.release(reservation.taken, others, clear=(self._pairs,))
        else:
            await self._counters.release(reservation.taken, (self._pairs, *others))


def _pair(email: str, address: str) -> str:
    # An address never contains NUL, so the last one separates the two parts.
    return f"{email}\0{address}"
