"""Where vendor tokens are kept between requests.

:class:`TokenCache` is the seam between the broker and its storage:
:class:`InMemoryTokenCache` for one process, and
:class:`bff.shared.token_cache.RedisTokenCache` for several processes and
instances, where ``lock`` is the distributed single-flight lock (one upstream call
per key across instances) and the tokens written to Redis are encrypted. The
broker itself deduplicates concurrent calls inside one process before it ever
takes that lock, and re-reads the cache once it holds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import anyio

from bff.broker.scope import TokenScope, VendorToken
from bff.clock import Clock


class TokenCache(Protocol):
    async def get(self, scope: TokenScope) -> VendorToken | None:
        """The stored token, or ``None`` when absent or expired."""
        ...

    async def set(self, scope: TokenScope, token: VendorToken) -> None:
        """Store ``token`` until its ``expires_at``."""
        ...

    async def delete(self, scope: TokenScope, token: VendorToken | None = None) -> bool:
        """Drop the token of ``scope`` (with ``token``: only if it is still that one)."""
        ...

    async def purge(
        self,
        connection_id: str,
        tenant_id: str | None = None,
        sub_tenant_id: str | None = None,
        *,
        everywhere: bool = True,
    ) -> int:
        """Drop every token of the connection matching the given ids; return how many.

        Also frees their locks: a call still holding one was discarded by the purge
        (its credentials may be the replaced ones), and the next must not wait for it.
        Not ``everywhere``: only from this process (a shared cache keeps them).
        """
        ...

    def lock(self, scope: TokenScope) -> AbstractAsyncContextManager[None]:
        """Held while fetching a token for ``scope``; exclusive across every sharer of the
        cache. Inside it, ``get`` answers what the sharers last wrote, and ``set`` writes
        only while no later holder took the lock."""
        ...

    @property
    def shared(self) -> bool:
        """Other processes write to this cache too."""
        ...

    async def announce_connection(self, connection_id: str) -> None:
        """Tell every other sharer of the cache that the connection's settings changed."""
        ...

    def on_connection_changed(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """Call ``callback(connection_id)`` for each change another sharer announces."""
        ...

    async def aclose(self) -> None: ...


def matches(
    scope: TokenScope, connection_id: str, tenant_id: str | None, sub_tenant_id: str | None
) -> bool:
    return (
        scope.connection_id == connection_id
        and (tenant_id is None or scope.tenant_id == tenant_id)
        and (sub_tenant_id is None or scope.sub_tenant_id == sub_tenant_id)
    )


class InMemoryTokenCache:
    """A dict in this process; the default for a single instance."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tokens: dict[TokenScope, VendorToken] = {}
        self._locks: dict[TokenScope, anyio.Lock] = {}

    async def get(self, scope: TokenScope) -> VendorToken | None:
        token = self._tokens.get(scope)
        if token is not None and token.expires_at <= self._clock.now():
            del self._tokens[scope]
            return None
        return token

    async def set(self, scope: TokenScope, token: VendorToken) -> None:
        self._tokens[scope] = token

    async def delete(self, scope: TokenScope, token: VendorToken | None = None) -> bool:
        if token is not None and self._tokens.get(scope) != token:
            return False
        return self._tokens.pop(scope, None) is not None

    async def purge(
        self,
        connection_id: str,
        tenant_id: str | None = None,
        sub_tenant_id: str | None = None,
        *,
        everywhere: bool = True,
    ) -> int:
        doomed = [s for s in self._tokens if matches(s, connection_id, tenant_id, sub_tenant_id)]
        for scope in doomed:
            del self._tokens[scope]
        for scope in [
            s for s in self._locks if matches(s, connection_id, tenant_id, sub_tenant_id)
        ]:
            del self._locks[scope]  # its holder keeps its own lock object; newcomers get a new one
        return len(doomed)

    @asynccontextmanager
    async def _locked(self, scope: TokenScope) -> AsyncIterator[None]:
        lock = self._locks.setdefault(scope, anyio.Lock())
        try:
            async with lock:
                yield
        finally:
            # Forget idle locks so thousands of pairs do not leave thousands of locks behind
            # (only this one: a purge may have put a newer lock in its place).
            idle = not lock.locked() and lock.statistics().tasks_waiting == 0
            if idle and self._locks.get(scope) is lock:
                del self._locks[scope]

    def lock(self, scope: TokenScope) -> AbstractAsyncContextManager[None]:
        return self._locked(scope)

    @property
    def shared(self) -> bool:
        return False

    async def announce_connection(self, connection_id: str) -> None:
        return None  # nobody else shares this cache

    def on_connection_changed(self, callback: Callable[[str], Awaitable[None]]) -> None:
        return None

    async def aclose(self) -> None:
        self._tokens.clear()
