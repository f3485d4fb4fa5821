"""Which (tenant, sub-tenant) a user may see: the database's mappings, checked on the
server every time a pair is used, never a value the browser sent or the session
remembered.

Every page view asks, so the answers are cached in process the way sessions are
(:mod:`bff.web.auth.sessions`): a user's pairs are re-read at most every
``revalidate_seconds``, and at once whenever a pair is asked for that the cache
does not hold, so a new mapping shows up on the next request. A mapping removed
through :func:`bff.operations.mappings.unmap_pair` is forgotten at once and ends the
sessions using it, in every process that hears the revocation broadcast
(:mod:`bff.shared.revocations`); one removed behind the server's back (the CLI, a manual
SQL fix), or while the broadcast is down, stops working within the revalidation window,
like a session revoked elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import select

from bff.clock import Clock
from bff.shared.revocations import MappingsRevoked, Revocations
from bff.store.database import Database
from bff.store.models import UserScope
from bff.web.auth.sessions import CACHE_SIZE, REVALIDATE_SECONDS

Pair = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class _Entry:
    pairs: tuple[Pair, ...]
    fetched_at: float  # Clock.monotonic(): a stepped wall clock must not extend it


class Mappings:
    """The users' mapped pairs, read from the database behind an in-process cache."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        revalidate_seconds: float = REVALIDATE_SECONDS,
        cache_size: int = CACHE_SIZE,
        revocations: Revocations | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._revalidate = revalidate_seconds
        self._cache_size = cache_size
        self._cache: OrderedDict[int, _Entry] = OrderedDict()
        # Bumped by every forget(): a read that overlapped one may predate the removal.
        self._forgotten = 0
        self._revocations = revocations
        if revocations is not None:
            revocations.on_mappings(self._revoked_elsewhere, self._drop_all)

    async def pairs(self, user_id: int) -> tuple[Pair, ...]:
        """The user's mapped pairs, in a stable order; an empty answer is always re-read."""
        entry = self._cache.get(user_id)
        if (
            entry is not None
            and entry.pairs
            and self._clock.monotonic() - entry.fetched_at < self._revalidate
        ):
            return entry.pairs
        return (await self._fetch(user_id)).pairs

    async def allows(self, user_id: int, pair: Pair) -> bool:
        entry = self._cache.get(user_id)
        if (
            entry is not None
            and pair in entry.pairs
            and self._clock.monotonic() - entry.fetched_at < self._revalidate
        ):
            return True
        # A miss is always asked of the database: the mapping may be new.
        return pair in (await self._fetch(user_id)).pairs

    async def forget(self, user_ids: Iterable[int]) -> None:
        """The users' mappings changed: drop their pairs here and in every other process."""
        user_ids = set(user_ids)
        if not user_ids:
            return
        self._drop(user_ids)
        if self._revocations is not None:
            await self._revocations.mappings_revoked(user_ids)

    def _drop(self, user_ids: Iterable[int]) -> None:
        self._forgotten += 1
        for user_id in user_ids:
            self._cache.pop(user_id, None)

    def _drop_all(self) -> None:
        self._forgotten += 1
        self._cache.clear()

    def _revoked_elsewhere(self, revoked: MappingsRevoked) -> None:
        if revoked.user_ids is None:
            self._drop_all()
        else:
            self._drop(revoked.user_ids)

    async def _fetch(self, user_id: int) -> _Entry:
        while True:
            forgotten = self._forgotten
            pairs = await self._read(user_id)
            if forgotten == self._forgotten:
                break
            # A mapping was removed while this read ran: it may have seen it still
            # there, and caching that would undo the removal for a whole window.
        entry = _Entry(pairs, self._clock.monotonic())
        self._cache[user_id] = entry
        self._cache.move_to_end(user_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    async def _read(self, user_id: int) -> tuple[Pair, ...]:
        # One plain read on a pooled connection: an ORM unit of work (begin, flush,
        # commit) would double its cost for nothing.
        async with self._database.engine.connect() as connection:
            rows = await connection.execute(
                select(UserScope.tenant_id, UserScope.sub_tenant_id)
                .where(UserScope.user_id == user_id)
                .order_by(UserScope.tenant_id, UserScope.sub_tenant_id)
            )
            return tuple((tenant, sub_tenant) for tenant, sub_tenant in rows.all())


def parse_pair(value: object) -> Pair | None:
    """``"tenant/sub-tenant"`` from the scope switcher; ids cannot contain ``/``."""
    if not isinstance(value, str):
        return None
    tenant, slash, sub_tenant = value.partition("/")
    if not slash or not tenant or not sub_tenant:
        return None
    return tenant, sub_tenant
