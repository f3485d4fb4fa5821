"""Every tunable number of the broker, in one place, with the reason for its default."""

from __future__ import annotations

import dataclasses

from bff.broker.retry import Backoff


@dataclasses.dataclass(frozen=True)
class BrokerPolicy:
    # A token stops being handed out this long before it expires, so a page that
    # embeds it has time to load; at most a tenth of a short token's life.
    skew: float = 30.0
    max_skew_fraction: float = 0.1
    # No token is trusted for longer than this, whatever its `exp` says.
    max_lifetime: float = 7 * 24 * 60 * 60
    # Background refresh starts at this fraction of a token's life (jittered, so
    # thousands of pairs fetched together do not all refresh together).
    refresh_window: tuple[float, float] = (0.75, 0.85)
    # How often the background task looks for tokens due for refresh.
    poll: float = 1.0
    # Tries per user-facing fetch for 5xx, timeouts and refused connections.
    attempts: int = 3
    retry_backoff: Backoff = dataclasses.field(default_factory=lambda: Backoff(0.2, 2.0))
    # After a fetch or refresh failed for good: how long that key waits before the next try.
    failure_backoff: Backoff = dataclasses.field(default_factory=lambda: Backoff(1.0, 60.0))
    # Every 429 pauses that key (or connection) at least this long, whatever it asked for:
    # `Retry-After: 0`, a date already past or a vendor clock behind ours would otherwise
    # let every page view call again (three calls each, with retries). 5 s bounds a
    # vendor that keeps refusing to one call per key per 5 s and still feels immediate
    # to a user whose page retries itself. A 429 is never retried inside the same call.
    min_cooldown: float = 5.0
    # 429 without a usable Retry-After, and the most any Retry-After can make us wait.
    default_cooldown: float = 30.0
    max_cooldown: float = 300.0
    # 400/401/403 are configuration errors: remembered this long instead of retried.
    rejection_ttl: float = 60.0
    circuit_threshold: int = 5
    circuit_open_for: float = 15.0
