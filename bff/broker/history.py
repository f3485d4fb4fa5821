"""What the broker saw of the vendor lately: calls and errors per hour over the last
24 hours, and the most recent errors, for the admin overview.

Kept in this process only: every process (and every instance) counts its own
calls, and the history starts empty at each start. ``/metrics`` has the totals
that survive a restart in Prometheus.
"""

from __future__ import annotations

import collections
import dataclasses
from datetime import datetime, timedelta

from bff.broker.scope import TokenScope
from bff.clock import Clock

HOURS = 24
RECENT_ERRORS = 10
_HOUR = timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class HourCount:
    """Upstream calls that started in the hour from ``start``, and how many failed."""

    start: datetime
    calls: int
    errors: int


@dataclasses.dataclass(frozen=True)
class RecentError:
    at: datetime
    scope: TokenScope
    # The outcome label of ``bff_upstream_calls`` (rejected, rate_limited, timeout, …).
    outcome: str
    # The broker's error message: a status and the vendor's redacted words, never a secret.
    message: str


class UpstreamHistory:
    """Hourly buckets of calls and errors on the broker's clock, and the latest errors."""

    def __init__(self, clock: Clock, *, hours: int = HOURS, keep: int = RECENT_ERRORS) -> None:
        self._clock = clock
        self._hours = hours
        # Hour start -> [calls, errors]; at most ``hours`` of them are kept.
        self._buckets: dict[datetime, list[int]] = {}
        self._errors: collections.deque[RecentError] = collections.deque(maxlen=keep)

    def record(self, scope: TokenScope, outcome: str, message: str | None = None) -> None:
        """One upstream outcome; anything but ``ok`` counts as an error."""
        now = self._clock.now()
        hour = _hour(now)
        bucket = self._buckets.get(hour)
        if bucket is None:
            bucket = self._buckets[hour] = [0, 0]
            oldest = hour - (self._hours - 1) * _HOUR
            for stale in [start for start in self._buckets if start < oldest]:
                del self._buckets[stale]
        bucket[0] += 1
        if outcome != "ok":
            bucket[1] += 1
            self._errors.append(RecentError(now, scope, outcome, message or outcome))

    def hours(self) -> list[HourCount]:
        """The last ``hours`` hours, oldest first, ending with the current one; quiet
        hours count zero."""
        current = _hour(self._clock.now())
        starts = [current - (self._hours - 1 - i) * _HOUR for i in range(self._hours)]
        counts = [self._buckets.get(start, [0, 0]) for start in starts]
        return [
            HourCount(start, calls, errors)
            for start, (calls, errors) in zip(starts, counts, strict=True)
        ]

    def recent_errors(self) -> list[RecentError]:
        """The latest errors, newest first."""
        return list(reversed(self._errors))


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)
