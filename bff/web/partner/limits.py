"""The partner API's rate limits: failed token requests, and API calls per app.

Each is a sliding window of :data:`WINDOW_SECONDS` (one minute), counted in Redis when
the app has one, so every process and instance enforces the same limits, else (and
while Redis is unreachable) in each process's memory, on its own share of the traffic
(:mod:`bff.shared.counters`).

- **Failed token requests**, :data:`FAILURES_PER_CLIENT` per client id (from any
  address) and :data:`FAILURES_PER_ADDRESS` per address (for any client id). An
  attempt is counted *before* its secret is checked, in the same atomic step that
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
from bff.shared.counters import Counters, Taken, Window
from bff.shared.redis_link import RedisLink

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
    taken: Taken = dataclasses.field(repr=False)


class PartnerLimits:
    def __init__(
        self,
        clock: Clock,
        *,
        failures_per_client: int = FAILURES_PER_CLIENT,
        failures_per_address: int = FAILURES_PER_ADDRESS,
        requests_per_app: int = REQUESTS_PER_APP,
        window: float = WINDOW_SECONDS,
        shared: RedisLink | None = None,
    ) -> None:
        self._clients = Window("partner.token-client", failures_per_client, window)
        self._addresses = Window("partner.token-address", failures_per_address, window)
        self._apps = Window("partner.api-app", requests_per_app, window)
        self._counters = Counters(clock, shared)

    async def reserve_token_attempt(self, client_id: str, address: str) -> TokenAttempt | int:
        """Count an attempt before its secret is checked, or the seconds to wait."""
        client_id = _client_key(client_id)
        taken = await self._counters.take([(self._clients, client_id), (self._addresses, address)])
        if isinstance(taken, int):
            return taken
        return TokenAttempt(client_id, address, taken)

    async def succeeded(self, attempt: TokenAttempt) -> None:
        """The secret was right: the attempt is no failure."""
        await self._counters.release(attempt.taken, (self._clients, self._addresses))

    async def api_call(self, app_id: int) -> int | None:
        """Count one API call of the app; the seconds to wait when it is over its limit."""
        taken = await self._counters.take([(self._apps, str(app_id))])
        return taken if isinstance(taken, int) else None


def _client_key(client_id: str) -> str:
    if len(client_id) <= _MAX_KEY:
        return client_id
    return "sha256:" + hashlib.sha256(client_id.encode(errors="surrogatepass")).hexdigest()
