"""How long to wait before calling the vendor again: ``Retry-After`` and backoff."""

from __future__ import annotations

import dataclasses
import random
import re
from datetime import datetime
from email.utils import parsedate_to_datetime

# "Rate limit exceeded. Try again in 60 seconds." (the reference vendor's 429 body).
# ASCII only: "²" or "٣" are digits to str.isdigit() and \d, but no vendor means them.
_TRY_AGAIN = re.compile(r"(?ai)try again in\s+([0-9]{1,9})\s*(second|sec|s\b|minute|min)")


def retry_after(
    header: str | None,
    message: str | None,
    *,
    now: datetime,
    default: float,
    cap: float,
    floor: float = 0.0,
    vendor_date: str | None = None,
) -> float:
    """Seconds the vendor asked us to wait, in ``[floor, cap]``; never raises.

    The ``Retry-After`` header wins (delta-seconds or an HTTP date); then the
    "Try again in N seconds" text; anything unparseable falls back to ``default``.
    An HTTP date is measured from the vendor's own ``Date`` header when it sent a
    valid one, so a vendor clock behind or ahead of ours neither cancels nor
    stretches the wait; otherwise from ``now``.
    """
    reference = _http_date(vendor_date) or now
    seconds = _from_header(header, reference)
    if seconds is None:
        seconds = _from_text(message)
    if seconds is None:
        seconds = default
    return min(max(seconds, floor, 0.0), cap)


def _from_header(value: str | None, reference: datetime) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)  # a float, never an int: no digit-count limit, huge is just inf
    when = _http_date(value)
    if when is None:
        return None
    return (when - reference).total_seconds()


def _http_date(value: str | None) -> datetime | None:
    """An RFC 9110 date with a time zone, or ``None`` for anything else."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else None


def _from_text(message: str | None) -> float | None:
    match = _TRY_AGAIN.search(message or "")
    if match is None:
        return None
    amount = float(match.group(1))
    return amount * 60 if match.group(2).lower().startswith("min") else amount


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits in ``[base·2ⁿ/2, base·2ⁿ]``."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = dataclasses.field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt, 32))
        # Half fixed, half random: spreads retries of many keys without ever retrying at once.
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
