"""The token broker: the only component that asks the vendor for tokens.

``get(scope)`` answers from the cache while a token is valid, and otherwise makes
exactly one upstream call per key however many requests wait for it. Tokens are
renewed in the background once most of their life is used; failures there only
re-arm the refresh, so a valid token keeps being served through a vendor outage.
With no valid token, ``get`` raises from the :mod:`bff.errors` Upstream branch:
``UpstreamRejected`` for configuration errors (remembered briefly), otherwise an
``UpstreamUnavailable`` carrying ``retry_after``. Every 429 pauses its key (or the
connection) for at least ``BrokerPolicy.min_cooldown``, background refreshes
included, and never counts against the circuit.

A connection with the per-pair step (:class:`PairTokenConnector`) keeps its
connection-wide credential under the shared key like any connection-wide token,
and obtains each pair's dashboard token with it; ``get`` only ever returns the
latter. A 401 from the per-pair endpoint drops the credential once and retries
with a fresh one, since the vendor may have revoked it.

A purge discards the calls in flight for what it purged: they finish for whoever
waits on them, but leave nothing behind — no token, no remembered failure, no
cool-down, no circuit failure — and the cache frees their keys' locks, so new
credentials are tried at once, without waiting for the discarded call.

Background work runs as asyncio tasks owned by the broker and cancelled by
``aclose()``; ``refresh_due()`` and ``wait_idle()`` let tests drive it step by step.

With a cache shared by several processes (:class:`bff.shared.token_cache.RedisTokenCache`)
every upstream call happens under the cache's lock for its key, after re-reading the
cache: a token another instance obtained meanwhile is adopted without a vendor call,
so refresh-ahead runs once per key across the fleet. An OAuth2 refresh token is then
taken from that re-read token (never from this process's memory, which another
instance's renewal may have made stale). A connection saved through
:meth:`TokenBroker.announce_connection` is reloaded by every other broker sharing
the cache, with the ``loader`` it was given.

For the admin: ``snapshot()`` tells what this process knows of every key (expiry,
last refresh, last error — never a token), ``refresh(scope)`` renews one key now,
and ``history`` counts upstream calls and errors per hour (in this process only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import anyio
import httpx2
from prometheus_client import Counter

from bff.broker.cache import InMemoryTokenCache, TokenCache, matches
from bff.broker.circuit import CircuitBreaker
from bff.broker.connectors import AnyConnector, OAuth2ClientCredentialsConnector, PairTokenConnector
from bff.broker.connectors.base import Issued, Send
from bff.broker.expiry import refresh_time, vendor_token
from bff.broker.history import UpstreamHistory
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope, VendorToken
from bff.broker.snapshot import SHARED, KeySnapshot
from bff.broker.upstream import Gateway
from bff.clock import Clock
from bff.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Reads a connection's current settings (from the database) and builds its connector;
# None when the connection is gone.
ConnectionLoader = Callable[[str], Awaitable[AnyConnector | None]]
# One upstream request of a connector, given the gateway's send.
_Request = Callable[[Send], Awaitable[Issued]]
__all__ = ["SHARED", "TokenBroker"]

_OUTCOMES: dict[type[UpstreamError], str] = {
    UpstreamRejected: "rejected",
    UpstreamRateLimited: "rate_limited",
    UpstreamTimeout: "timeout",
    UpstreamUnreachable: "unreachable",
    UpstreamBadResponse: "bad_response",
    CircuitOpen: "circuit_open",
}


@dataclasses.dataclass(eq=False)
class _Connection:
    id: str
    connector: AnyConnector
    breaker: CircuitBreaker
    # This connection's cache-hit counter, labelled once: a hit is every page view.
    hits: Counter
    cooldown_until: datetime | None = None
    # Recent upstream call duration (seconds), so refreshes start early enough to finish.
    latency: float = 0.0

    @property
    def shared(self) -> TokenScope:
        """The key of the connection-wide token (or credential)."""
        return TokenScope(self.id, SHARED, SHARED)

    def key(self, scope: TokenScope) -> TokenScope:
        return scope if self.connector.per_pair else self.shared

    def source(self, key: TokenScope) -> AnyConnector:
        """What obtains the token for ``key``: under the shared key of a connection with
        the per-pair step, its connection-wide credential."""
        if isinstance(self.connector, PairTokenConnector) and key == self.shared:
            return self.connector.inner
        return self.connector


@dataclasses.dataclass(eq=False)
class _KeyState:
    expires_at: datetime | None = None
    obtained_at: datetime | None = None
    refresh_at: datetime | None = None
    # Requested during the current token's life: worth renewing in the background.
    wanted: bool = False
    failures: int = 0
    retry_at: datetime | None = None
    last_error: UpstreamError | None = None
    rejected_until: datetime | None = None
    # For the admin: the latest failure, kept after a success (last_error is not).
    error_message: str | None = None
    error_at: datetime | None = None


class _Call:
    """Upstream work in progress for a key; ``discard`` once the key was purged, so its
    outcome leaves no trace (its credentials may be the ones just replaced)."""

    def __init__(self, key: TokenScope) -> None:
        self.key = key
        self.discard = False


class _Flight(_Call):
    """A call shared by every waiter for its key."""

    task: asyncio.Task[VendorToken]


class TokenBroker:
    def __init__(
        self,
        connections: Mapping[str, AnyConnector],
        client: httpx2.AsyncClient,
        metrics: BrokerMetrics,
        clock: Clock,
        *,
        cache: TokenCache | None = None,
        policy: BrokerPolicy | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
        background: bool = True,
        loader: ConnectionLoader | None = None,
    ) -> None:
        self._clock = clock
        self._policy = policy or BrokerPolicy()
        self._metrics = metrics
        self._cache = cache or InMemoryTokenCache(clock)
        self._gateway = Gateway(
            client,
            clock,
            timeout=timeout,
            min_cooldown=self._policy.min_cooldown,
            default_cooldown=self._policy.default_cooldown,
            max_cooldown=self._policy.max_cooldown,
        )
        self._semaphore = anyio.Semaphore(max_concurrency)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._background = background
        self._connections: dict[str, _Connection] = {}
        self._keys: dict[TokenScope, _KeyState] = {}
        self._flights: dict[TokenScope, _Flight] = {}
        # Single-use fetches: not shared, but a purge must discard them all the same.
        self._unshared: set[_Call] = set()
        self._tasks: set[asyncio.Task[VendorToken]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._closed = False
        # A token was asked for: from then on, a replaced connection's tokens go everywhere.
        self._serving = False
        self.history = UpstreamHistory(clock)
        for connection_id, connector in connections.items():
            self.add_connection(connection_id, connector)
        self._loader = loader
        if loader is not None:
            self._cache.on_connection_changed(self._reload)

    # -- public interface ------------------------------------------------------------

    def add_connection(self, connection_id: str, connector: AnyConnector) -> None:
        """Add a new connection; replacing one goes through :meth:`replace_connection`,
        which drops the tokens the old connector obtained."""
        if connection_id in self._connections:
            raise ValueError(f"connection {connection_id!r} exists; use replace_connection")
        self._connections[connection_id] = self._new_connection(connection_id, connector)
        self._metrics.circuit_state.labels(connection_id).set(0)

    async def replace_connection(self, connection_id: str, connector: AnyConnector) -> int:
        """Add the connection, or replace it (new credentials, another kind): its cached
        tokens, remembered failures, cool-down and circuit go, and calls the old
        connector has in flight are discarded. Returns how many tokens were dropped.

        Before this broker served any token (start-up, loading the stored connections)
        only this process's state goes: the tokens other instances share were obtained
        with the same stored settings, and purging them would cost the whole fleet a
        vendor call per key each time an instance starts."""
        # Swapped before the purge: every call started from here on uses the new connector.
        self._connections[connection_id] = self._new_connection(connection_id, connector)
        self._metrics.circuit_state.labels(connection_id).set(0)
        return await self._purge(connection_id, None, None, everywhere=self._serving)

    def _new_connection(self, connection_id: str, connector: AnyConnector) -> _Connection:
        breaker = CircuitBreaker(
            self._clock,
            threshold=self._policy.circuit_threshold,
            open_for=self._policy.circuit_open_for,
        )
        hits = self._metrics.hits.labels(connection_id)
        return _Connection(connection_id, connector, breaker, hits)

    async def remove_connection(self, connection_id: str) -> int:
        """Drop the connection with its tokens, cool-down and circuit: one added again
        under the same id starts afresh."""
        # Gone before the purge, so no new call can start for it while the purge runs.
        self._connections.pop(connection_id, None)
        return await self.purge(connection_id=connection_id)

    def has_connection(self, connection_id: str) -> bool:
        return connection_id in self._connections

    async def announce_connection(self, connection_id: str) -> None:
        """After a connection was saved or deleted (and replaced here): its tokens go
        from the shared cache, whoever obtained them (with the old settings), and every
        other broker sharing the cache reloads it with its ``loader``."""
        await self._cache.purge(connection_id)
        await self._cache.announce_connection(connection_id)

    async def _reload(self, connection_id: str) -> None:
        assert self._loader is not None
        if self._closed:
            return
        try:
            connector = await self._loader(connection_id)
        except Exception:
            logger.exception(
                "vendor connection %s changed elsewhere; reloading failed", connection_id
            )
            return
        logger.info("vendor connection %s changed on another instance; reloaded", connection_id)
        if connector is None:
            await self.remove_connection(connection_id)
        else:
            await self.replace_connection(connection_id, connector)

    async def get(self, scope: TokenScope) -> VendorToken:
        """A valid token for ``scope``; see the module docstring for what it raises."""
        connection = self._connection(scope.connection_id)
        self._serving = True
        if self._scheduler is None:
            self._start_scheduler()
        connector = connection.connector
        if connector.per_pair and not connector.single_use:
            # The warm case of a pair's own token (every page view): _token's cache hit,
            # without its frame and with one reading of the clock.
            if isinstance(connector, PairTokenConnector) and scope == connection.shared:
                # That key holds the connection-wide credential, which never leaves the broker.
                raise UpstreamRejected("a dashboard token needs a tenant and a sub-tenant")
            now = self._clock.now()
            token = await self._cache.get(scope)
            if token is not None and token.expires_at > now:
                return self._hit(connection, scope, token, now)
            return await self._miss(connection, scope)
        key = connection.key(scope)
        if isinstance(connector, PairTokenConnector) and key == connection.shared:
            raise UpstreamRejected("a dashboard token needs a tenant and a sub-tenant")
        return await self._token(connection, key)

    async def _token(self, connection: _Connection, key: TokenScope) -> VendorToken:
        if connection.source(key).single_use:
            return await self._fetch_single_use(connection, key)
        now = self._clock.now()
        token = await self._cache.get(key)
        if token is not None and token.expires_at > now:
            return self._hit(connection, key, token, now)
        return await self._miss(connection, key)

    def _hit(
        self, connection: _Connection, key: TokenScope, token: VendorToken, now: datetime
    ) -> VendorToken:
        connection.hits.inc()
        state = self._state(key, token, connection)
        state.wanted = True
        if self._background and state.refresh_at is not None and state.refresh_at <= now:
            self._start_refresh(connection, key, token)
        return token

    async def _miss(self, connection: _Connection, key: TokenScope) -> VendorToken:
        self._metrics.misses.labels(connection.id).inc()
        flight = self._flights.get(key)
        if flight is None:
            self._raise_if_blocked(connection, key)
            flight = self._start_flight(connection, key, stale=None, background=False)
        return await _joined(flight)

    async def _fetch_single_use(self, connection: _Connection, key: TokenScope) -> VendorToken:
        # Every use needs its own token: no cache, no sharing between callers; failures
        # are still remembered, so a refusal or a cool-down is not retried per request.
        self._metrics.misses.labels(connection.id).inc()
        self._raise_if_blocked(connection, key)
        call = _Call(key)
        self._unshared.add(call)
        try:
            token = await self._fetch(connection, key, self._policy.attempts, call)
        except UpstreamError as exc:
            self._failed(connection, key, exc, call, background=False)
            raise
        finally:
            self._unshared.discard(call)
        if not call.discard:
            self._keys.pop(key, None)
        return token

    async def purge(
        self, *, connection_id: str, tenant_id: str | None = None, sub_tenant_id: str | None = None
    ) -> int:
        """Drop cached tokens (and remembered failures) of a pair, a tenant or a connection.

        Calls in flight for them are discarded (see the module docstring). The
        connection's cool-down and circuit stay: they describe the vendor, not the
        tokens; :meth:`remove_connection` drops those too.
        """
        return await self._purge(connection_id, tenant_id, sub_tenant_id, everywhere=True)

    async def _purge(
        self,
        connection_id: str,
        tenant_id: str | None,
        sub_tenant_id: str | None,
        *,
        everywhere: bool,
    ) -> int:
        for key, flight in list(self._flights.items()):
            if matches(key, connection_id, tenant_id, sub_tenant_id):
                # Let the call finish for whoever waits on it, but keep nothing from it.
                flight.discard = True
                del self._flights[key]
        for call in self._unshared:
            if matches(call.key, connection_id, tenant_id, sub_tenant_id):
                call.discard = True
        for key in [k for k in self._keys if matches(k, connection_id, tenant_id, sub_tenant_id)]:
            del self._keys[key]
        return await self._cache.purge(
            connection_id, tenant_id, sub_tenant_id, everywhere=everywhere
        )

    async def purge_pairs(self, tenant_id: str, sub_tenant_id: str | None = None) -> int:
        """Drop a tenant's (or one sub-tenant's) tokens on every connection."""
        purged = 0
        for connection_id in list(self._connections):
            purged += await self.purge(
                connection_id=connection_id, tenant_id=tenant_id, sub_tenant_id=sub_tenant_id
            )
        return purged

    def cached(self) -> list[tuple[TokenScope, datetime]]:
        """Keys with a valid token known to this process, and when each expires."""
        now = self._clock.now()
        return sorted(
            (key, state.expires_at)
            for key, state in self._keys.items()
            if state.expires_at is not None and state.expires_at > now
        )

    def snapshot(self) -> list[KeySnapshot]:
        """Every key this process holds a valid token or a remembered failure for, sorted.

        Only this process's knowledge: with a shared (Redis) cache, tokens another
        instance obtained appear once this one has served them.
        """
        now = self._clock.now()
        found = []
        for key, state in self._keys.items():
            valid = state.expires_at is not None and state.expires_at > now
            if not valid and state.error_message is None:
                continue
            blocked = max(
                (m for m in (state.retry_at, state.rejected_until) if m is not None and m > now),
                default=None,
            )
            found.append(
                KeySnapshot(
                    scope=key,
                    expires_at=state.expires_at if valid else None,
                    obtained_at=state.obtained_at if valid else None,
                    error=state.error_message,
                    error_at=state.error_at,
                    blocked_until=blocked,
                )
            )
        return sorted(found, key=lambda snapshot: snapshot.scope)

    async def refresh(self, scope: TokenScope) -> VendorToken:
        """Renew the token of ``scope``'s key now, however long the current one still
        lasts: joins the call in flight for the key, or starts one and waits for it.

        A remembered refusal or cool-down still holds (raised as by :meth:`get`):
        an admin's click must not become a way around the vendor's limits. Under the
        shared key of a connection with the per-pair step this renews its credential.
        """
        connection = self._connection(scope.connection_id)
        self._serving = True
        key = connection.key(scope)
        if connection.source(key).single_use:
            return await self._fetch_single_use(connection, key)
        flight = self._flights.get(key)
        if flight is None:
            self._raise_if_blocked(connection, key)
            current = await self._cache.get(key)
            # A flight may have started while the cache answered.
            flight = self._flights.get(key) or self._start_flight(
                connection, key, stale=current, background=False
            )
        return await _joined(flight)

    async def refresh_due(self, *, wait: bool = True) -> int:
        """Start renewing every wanted token past its refresh time; return how many started."""
        now = self._clock.now()
        started: list[_Flight] = []
        for key, state in list(self._keys.items()):
            if state.expires_at is None or state.expires_at <= now:
                if _passed(state.retry_at, now) and _passed(state.rejected_until, now):
                    # An idle token ran out and no failure is remembered: forget the key
                    # instead of renewing it forever. Reading drops it from the cache if
                    # it ran out there too (a shared cache may hold a newer one).
                    del self._keys[key]
                    await self._cache.get(key)
                continue
            if not state.wanted or state.refresh_at is None or state.refresh_at > now:
                continue
            connection = self._connections.get(key.connection_id)
            token = await self._cache.get(key)
            if connection is None or token is None or key in self._flights:
                continue
            flight = self._start_refresh(connection, key, token)
            if flight is not None:
                started.append(flight)
        if wait:
            await asyncio.gather(*(f.task for f in started), return_exceptions=True)
        return len(started)

    async def wait_idle(self) -> None:
        """Wait until no upstream call started by this broker is in flight."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        self._closed = True
        tasks: list[asyncio.Task[VendorToken] | asyncio.Task[None]] = list(self._tasks)
        if self._scheduler is not None:
            tasks.append(self._scheduler)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._flights.clear()
        await self._cache.aclose()

    # -- keys and their state ----------------------------------------------------------

    def _connection(self, connection_id: str) -> _Connection:
        connection = self._connections.get(connection_id)
        if connection is None:
            if not self._connections:
                raise UpstreamRejected("no vendor connection configured")
            raise UpstreamRejected(f"no vendor connection {connection_id!r}")
        return connection

    def _state(self, key: TokenScope, token: VendorToken, connection: _Connection) -> _KeyState:
        state = self._keys.get(key)
        if state is None or state.expires_at != token.expires_at:
            # A token this process has not scheduled (another instance fetched it).
            state = self._keys.setdefault(key, _KeyState())
            self._schedule(state, token, connection)
        return state

    def _schedule(self, state: _KeyState, token: VendorToken, connection: _Connection) -> None:
        state.expires_at = token.expires_at
        state.obtained_at = token.obtained_at
        lead = 2 * connection.latency + self._policy.poll
        state.refresh_at = refresh_time(token, self._policy, self._rng, lead=lead)

    def _not_due(self, token: VendorToken, connection: _Connection, now: datetime) -> bool:
        """``token`` is younger than any refresh time :meth:`_schedule` could give it."""
        lead = 2 * connection.latency + self._policy.poll
        fraction = min(self._policy.refresh_window)
        planned = token.obtained_at + (token.expires_at - token.obtained_at) * fraction
        latest = token.expires_at - timedelta(seconds=lead)
        return now < max(token.obtained_at, min(planned, latest))

    def _raise_if_blocked(self, connection: _Connection, key: TokenScope) -> None:
        self._raise_if_cooling(connection)
        now = self._clock.now()
        state = self._keys.get(key)
        if state is None or state.last_error is None:
            return
        if state.rejected_until is not None and state.rejected_until > now:
            raise _copy(state.last_error)
        if state.retry_at is not None and state.retry_at > now:
            raise _copy(state.last_error, retry_after=_seconds(state.retry_at - now))

    # -- flights: one upstream call per key, shared by every waiter --------------------

    def _start_flight(
        self,
        connection: _Connection,
        key: TokenScope,
        *,
        stale: VendorToken | None,
        background: bool,
    ) -> _Flight:
        flight = _Flight(key)
        # The coroutine only starts at the next scheduling point, after this assignment.
        flight.task = self._spawn(self._obtain(connection, key, flight, stale, background))
        self._flights[key] = flight
        return flight

    def _start_refresh(
        self, connection: _Connection, key: TokenScope, stale: VendorToken
    ) -> _Flight | None:
        if key in self._flights or self._closed:
            return None
        return self._start_flight(connection, key, stale=stale, background=True)

    async def _obtain(
        self,
        connection: _Connection,
        key: TokenScope,
        flight: _Flight,
        stale: VendorToken | None,
        background: bool,
    ) -> VendorToken:
        try:
            async with self._cache.lock(key):
                # Another instance sharing the cache may have fetched it while we waited.
                current = await self._cache.get(key)
                now = self._clock.now()
                fresh = current is not None and current.expires_at > now
                # A refresh-ahead whose `stale` was read after another instance's renewal
                # (this process's memory emptied by a Redis reconnect, say) names that
                # renewal's token: one too young for any instance to renew is adopted.
                early = (
                    background and current is not None and self._not_due(current, connection, now)
                )
                if current is not None and fresh and (current != stale or early):
                    if not flight.discard:
                        state = self._keys.setdefault(key, _KeyState())
                        self._schedule(state, current, connection)
                    return current
                attempts = 1 if background else self._policy.attempts
                self._resume(connection, key, current)
                try:
                    token = await self._fetch(connection, key, attempts, flight)
                except UpstreamError as exc:
                    self._failed(connection, key, exc, flight, background=background)
                    raise
                if not flight.discard:
                    await self._cache.set(key, token)
                    state = self._keys.setdefault(key, _KeyState())
                    self._schedule(state, token, connection)
                    state.wanted = not background
                    state.failures = 0
                    state.retry_at = state.rejected_until = state.last_error = None
                if background:
                    self._metrics.refreshes.labels(connection.id, "ok").inc()
                return token
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def _resume(
        self, connection: _Connection, key: TokenScope, current: VendorToken | None
    ) -> None:
        """Give an OAuth2 connector the refresh token of the latest token in the cache.

        With a shared cache, another instance may have renewed the token (and been
        given a new refresh token) since this process last did: its own is then stale,
        and a vendor may revoke the whole grant when a used refresh token comes back.
        """
        source = connection.source(key)
        if isinstance(source, OAuth2ClientCredentialsConnector) and (
            current is not None or self._cache.shared
        ):
            source.resume(current)

    def _failed(
        self,
        connection: _Connection,
        key: TokenScope,
        exc: UpstreamError,
        call: _Call,
        *,
        background: bool,
    ) -> None:
        if call.discard:
            logger.info("vendor connection %s: a purged key's call failed; ignored", connection.id)
            return
        now = self._clock.now()
        state = self._keys.setdefault(key, _KeyState())
        state.last_error = exc
        state.error_message, state.error_at = str(exc), now
        # The vendor (or our circuit) named a time before which no call may go out.
        told_to_wait = isinstance(exc, UpstreamRateLimited | CircuitOpen)
        if isinstance(exc, UpstreamRejected):
            logger.warning("vendor connection %s refused a token request: %s", connection.id, exc)
            delay = self._policy.rejection_ttl
            state.rejected_until = now + timedelta(seconds=delay)
        else:
            assert isinstance(exc, UpstreamUnavailable)
            if told_to_wait:
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else self._policy.default_cooldown
                )
            else:
                delay = self._policy.failure_backoff.delay(state.failures)
                state.failures += 1
                exc.retry_after = max(exc.retry_after or 0.0, delay)
            logger.info(
                "vendor connection %s: no token (%s); next try in %.1f s",
                connection.id,
                type(exc).__name__,
                delay,
            )
        if background:
            self._metrics.refreshes.labels(connection.id, "failed").inc()
            rearm = delay
            if state.expires_at is not None and not told_to_wait:
                # Re-arm, but early enough to get another try in before the token runs out.
                remaining = _seconds(state.expires_at - now)
                rearm = min(delay, max(remaining / 2, self._policy.poll))
            state.refresh_at = now + timedelta(seconds=rearm)
            if told_to_wait:
                # Honoured even if the token runs out first: users then wait too, uncalled.
                state.retry_at = now + timedelta(seconds=delay)
        else:
            state.retry_at = now + timedelta(seconds=delay)

    # -- one upstream fetch, with in-call retries ----------------------------------------

    async def _fetch(
        self, connection: _Connection, key: TokenScope, attempts: int, call: _Call
    ) -> VendorToken:
        source = connection.source(key)
        if isinstance(source, PairTokenConnector):
            return await self._exchange(connection, key, source, attempts, call)
        request = functools.partial(source.fetch, key)
        return await self._attempts(connection, call, attempts, request, source.lifetime)

    async def _exchange(
        self,
        connection: _Connection,
        key: TokenScope,
        connector: PairTokenConnector,
        attempts: int,
        call: _Call,
    ) -> VendorToken:
        """The pair's dashboard token, bought with the credential under the shared key."""
        # Obtained outside the attempts below: it has its own cache, flight and retries.
        credential = await self._token(connection, connection.shared)
        request = functools.partial(connector.exchange, key, credential)
        try:
            return await self._attempts(connection, call, attempts, request, connector.lifetime)
        except UpstreamRejected as exc:
            if exc.status != 401 or call.discard:
                raise
        logger.warning(
            "vendor connection %s: the pair token endpoint refused the connection's "
            "credential (401); trying once with a fresh one",
            connection.id,
        )
        await self._drop_credential(connection, credential)
        credential = await self._token(connection, connection.shared)
        request = functools.partial(connector.exchange, key, credential)
        return await self._attempts(connection, call, attempts, request, connector.lifetime)

    async def _drop_credential(self, connection: _Connection, refused: VendorToken) -> None:
        shared = connection.shared
        # Only the refused one: another pair may have replaced it already.
        if await self._cache.delete(shared, refused):
            self._keys.pop(shared, None)

    async def _attempts(
        self,
        connection: _Connection,
        call: _Call,
        attempts: int,
        request: _Request,
        lifetime: float,
    ) -> VendorToken:
        # A 429 is never retried here: it starts a cool-down of its own (min_cooldown).
        for attempt in range(attempts):
            try:
                return await self._fetch_once(connection, call, request, lifetime)
            except (UpstreamTimeout, UpstreamUnreachable, UpstreamBadResponse) as exc:
                retryable = not isinstance(exc, UpstreamBadResponse) or (exc.status or 0) >= 500
                # A purged key's call stops here: its credentials may be the replaced ones.
                if attempt + 1 >= attempts or not retryable or call.discard:
                    raise
                await self._sleep(self._policy.retry_backoff.delay(attempt))
        raise AssertionError("attempts must be at least 1")

    async def _fetch_once(
        self, connection: _Connection, call: _Call, request: _Request, lifetime: float
    ) -> VendorToken:
        async with self._semaphore:
            # Checked after queueing: a 429 or an open circuit stops those still waiting.
            self._raise_if_cooling(connection)
            if not connection.breaker.acquire():
                refused = CircuitOpen(
                    "the vendor failed repeatedly; calls are paused",
                    retry_after=max(1.0, connection.breaker.retry_after()),
                )
                self._count(connection, call, "circuit_open", refused)
                raise refused
            started = anyio.current_time()
            obtained_at = self._clock.now()
            try:
                issued = await request(self._gateway.send)
                token = vendor_token(issued, lifetime, obtained_at, self._policy)
            except UpstreamRejected as exc:
                connection.breaker.success()  # the vendor is up; our configuration is not
                self._count(connection, call, "rejected", exc)
                raise
            except UpstreamRateLimited as exc:
                connection.breaker.neutral()  # a 429 says nothing about the vendor's health
                self._count(connection, call, "rate_limited", exc)
                if not call.discard:
                    self._cool_down(connection, call.key, exc)
                raise
            except UpstreamUnavailable as exc:
                self._unhealthy(connection, call)
                self._count(connection, call, _OUTCOMES.get(type(exc), "bad_response"), exc)
                raise
            except Exception as exc:
                # A connector bug must still end in the error tree, not a stack trace page.
                self._unhealthy(connection, call)
                logger.error(
                    "vendor connection %s: %s in connector", connection.id, type(exc).__name__
                )
                bad = UpstreamBadResponse("unexpected error reading the vendor's answer")
                self._count(connection, call, "bad_response", bad)
                raise bad from None
            except BaseException:
                connection.breaker.neutral()  # cancelled: frees a half-open probe slot
                raise
            else:
                connection.breaker.success()
                self._count(connection, call, "ok")
                elapsed = anyio.current_time() - started
                connection.latency = max(elapsed, 0.8 * connection.latency + 0.2 * elapsed)
                return token
            finally:
                if self._connections.get(connection.id) is connection:  # not a removed one
                    self._metrics.circuit_state.labels(connection.id).set(connection.breaker.state)

    @staticmethod
    def _unhealthy(connection: _Connection, call: _Call) -> None:
        if call.discard:
            connection.breaker.neutral()  # a purged key's call counts for nothing
        else:
            connection.breaker.failure()

    def _raise_if_cooling(self, connection: _Connection) -> None:
        now = self._clock.now()
        if connection.cooldown_until is not None and connection.cooldown_until > now:
            raise UpstreamRateLimited(
                "the vendor asked us to slow down on this connection",
                status=429,
                retry_after=_seconds(connection.cooldown_until - now),
                connection_wide=True,
            )

    def _cool_down(
        self, connection: _Connection, key: TokenScope, exc: UpstreamRateLimited
    ) -> None:
        seconds = max(exc.retry_after or 0.0, self._policy.min_cooldown)
        # Connection-wide tokens have one key: a limit on it is a limit on the connection.
        wide = exc.connection_wide or not connection.source(key).per_pair
        self._metrics.cooldowns.labels(connection.id, "connection" if wide else "key").inc()
        if wide and seconds > 0:
            until = self._clock.now() + timedelta(seconds=seconds)
            if connection.cooldown_until is None or until > connection.cooldown_until:
                connection.cooldown_until = until

    def _count(
        self, connection: _Connection, call: _Call, outcome: str, exc: Exception | None = None
    ) -> None:
        self._metrics.upstream_calls.labels(connection.id, outcome).inc()
        self.history.record(call.key, outcome, None if exc is None else str(exc))

    # -- background tasks ----------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[VendorToken]) -> asyncio.Task[VendorToken]:
        task: asyncio.Task[VendorToken] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[VendorToken]) -> None:
        self._tasks.discard(task)
        # Mark the outcome retrieved: a refresh nobody awaits must not warn at exit.
        if not task.cancelled():
            task.exception()

    def _start_scheduler(self) -> None:
        if self._background and self._scheduler is None and not self._closed:
            self._scheduler = asyncio.get_running_loop().create_task(self._run_scheduler())

    async def _run_scheduler(self) -> None:
        while True:
            try:
                await self.refresh_due(wait=False)
            except Exception:
                logger.exception("token refresh scheduler failed; continuing")
            await self._sleep(self._policy.poll)


async def _joined(flight: _Flight) -> VendorToken:
    # Shielded: one waiter giving up (a closed browser tab) must not cancel the
    # call every other waiter depends on.
    try:
        return await asyncio.shield(flight.task)
    except UpstreamError as exc:
        # Each waiter gets its own exception object; one shared object would pile up tracebacks.
        raise _copy(exc) from None


def _copy(exc: UpstreamError, *, retry_after: float | None = None) -> UpstreamError:
    if isinstance(exc, UpstreamRateLimited):
        return UpstreamRateLimited(
            str(exc),
            status=exc.status,
            vendor_message=exc.vendor_message,
            retry_after=exc.retry_after if retry_after is None else retry_after,
            connection_wide=exc.connection_wide,
        )
    if isinstance(exc, UpstreamUnavailable):
        return type(exc)(
            str(exc),
            status=exc.status,
            vendor_message=exc.vendor_message,
            retry_after=exc.retry_after if retry_after is None else retry_after,
        )
    return type(exc)(str(exc), status=exc.status, vendor_message=exc.vendor_message)


def _passed(moment: datetime | None, now: datetime) -> bool:
    return moment is None or moment <= now


def _seconds(delta: timedelta) -> float:
    return max(0.0, delta.total_seconds())
