"""The partner API's rate limits: failed token requests, and API calls per app.

Each is a sliding window of :data:`WINDOW_SECONDS` (one minute) in process memory
(:class:`~bff.web.auth.ratelimit.SlidingWindowLimiter`), so with several instances each
enforces them on its own share of the traffic.

- **Failed token requests**, :data:`FAILURES_PER_CLIENT` per client id (from any
  address) and :data:`FAILURES_PER_ADDRESS` per address (for any client id). An
  attempt is counted *before* its secret is checked, in the same synchronous step that
  checks the limits (:meth:`PartnerLimits.reserve_token_attempt`), so concurrent
  attempts cannot all slip under a limit; a success is then not counted. Over a limit
  the endpoint answers 429 with ``Retry-After`` and ``{"error": "slow_down"}`` (the
  RFC 8628 code; RFC 6749 has none for this) without checking the secret. Someone who
  knows a client id can hold its token requests at 429 by failing ten times a minute;
  the partner's current token keeps working meanwhile (tokens last an hour), and the
  per-address limit caps how fast any one address can do it.
- **API calls**, :data:`REQUESTS_PER_APP` per partner app, every call that presents a
  valid token (refused or not) counted; over it 429 problem+json with ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import hashlib

from bff.clock import Clock
from bff.web.auth.ratelimit import SlidingWindowLimiter

WINDOW_SECONDS = 60
FAILURES_PER_CLIENT = 10
FAILURES_PER_ADDRESS = 30
REQUESTS_PER_APP = 120
# Longer client ids are counted by their hash: an attacker's ids must not fill memory.
_MAX_KEY = 64


@dataclasses.dataclass(frozen=True)
class TokenAttempt:
    """One token request, counted as a failure until :meth:`PartnerLimits.succeeded`."""

    client_id: str
    address: str
    client_at: float
    address_at: float


class PartnerLimits:
    def __init__(
        self,
        clock: Clock,
        *,
        failures_per_client: int = FAILURES_PER_CLIENT,
        failures_per_address: int = FAILURES_PER_ADDRESS,
        requests_per_app: int = REQUESTS_PER_APP,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._clients = SlidingWindowLimiter(clock, limit=failures_per_client, window=window)
        self._addresses = SlidingWindowLimiter(clock, limit=failures_per_address, window=window)
        self._apps = SlidingWindowLimiter(clock, limit=requests_per_app, window=window)

    def reserve_token_attempt(self, client_id: str, address: str) -> TokenAttempt | int:
        """Count an attempt before its secret is checked, or the seconds to wait."""
        client_id = _client_key(client_id)
        waits = [
            wait
            for wait in (self._clients.retry_after(client_id), self._addresses.retry_after(address))
            if wait is not None
        ]
        if waits:
            return max(waits)
        return TokenAttempt(
            client_id, address, self._clients.record(client_id), self._addresses.record(address)
        )

    def succeeded(self, attempt: TokenAttempt) -> None:
        """The secret was right: the attempt is no failure."""
        self._clients.discard(attempt.client_id, attempt.client_at)
        self._addresses.discard(attempt.address, attempt.address_at)

    def api_call(self, app_id: int) -> int | None:
        """Count one API call of the app; the seconds to wait when it is over its limit."""
        key = str(app_id)
        wait = self._apps.retry_after(key)
        if wait is None:
            self._apps.record(key)
        return wait


def _client_key(client_id: str) -> str:
    if len(client_id) <= _MAX_KEY:
        return client_id
    return "sha256:" + hashlib.sha256(client_id.encode(errors="surrogatepass")).hexdigest()
