"""Server-side sessions: database records behind an in-process cache.

The browser holds only a signed random id; the database holds a SHA-256 of it,
so a leaked table cannot be replayed as cookies. Validating a session normally
costs no database round trip: records are cached in process, re-read at most
every ``revalidate_seconds`` (so a revocation made by another instance reaches
this one within that time), and ``last_seen_at`` is written back at most every
``write_interval``. Revocations made through this store take effect at once:
the id is dropped from the cache and remembered as dead.

Idle and absolute timeouts are checked on every load against the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from bff.clock import Clock
from bff.errors import NotFoundError
from bff.store.database import Database
from bff.store.models import SessionRecord, User
from bff.web.auth_metrics import AuthMetrics

logger = logging.getLogger(__name__)

ID_BYTES = 32
CACHE_SIZE = 10_000
REVALIDATE_SECONDS = 15.0
SWEEP_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Session:
    """One signed-in session as routes see it."""

    id: str = dataclasses.field(repr=False)
    user_id: int
    email: str
    is_admin: bool
    # The active (tenant, sub-tenant); routes still check it against the mappings.
    scope: tuple[str, str] | None
    csrf_secret: str = dataclasses.field(repr=False)
    embedded: bool
    created_at: datetime
    partner_app_id: int | None = None


@dataclasses.dataclass
class _Entry:
    session: Session
    fetched_at: float  # Clock.monotonic(): a stepped wall clock must not extend it
    written_at: datetime
    # Kept here, not on the frozen Session: it changes on every request.
    last_seen: datetime


@functools.lru_cache(maxsize=CACHE_SIZE)  # asked on every request
def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        idle_seconds: int,
        max_seconds: int,
        metrics: AuthMetrics | None = None,
        revalidate_seconds: float = REVALIDATE_SECONDS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._database = database
        self._clock = clock
        self.idle = timedelta(seconds=idle_seconds)
        self.max_age = timedelta(seconds=max_seconds)
        self._metrics = metrics
        self._revalidate = revalidate_seconds
        # Often enough that the stored value never lags the idle timeout.
        self._write_interval = timedelta(seconds=max(1, min(60, idle_seconds // 10)))
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._dead: OrderedDict[str, None] = OrderedDict()

    async def create(
        self,
        user_id: int,
        *,
        embedded: bool = False,
        scope: tuple[str, str] | None = None,
        partner_app_id: int | None = None,
    ) -> Session:
        """A new session with a fresh random id; never reuses an id the browser sent."""
        now = self._clock.now()
        session_id = secrets.token_urlsafe(ID_BYTES)
        csrf_secret = secrets.token_urlsafe(ID_BYTES)
        async with self._database.session() as db:
            user = await db.get(User, user_id)
            if user is None or user.disabled:
                raise NotFoundError(f"no active user {user_id}")
            db.add(
                SessionRecord(
                    id_hash=hash_session_id(session_id),
                    user_id=user_id,
                    tenant_id=scope[0] if scope else None,
                    sub_tenant_id=scope[1] if scope else None,
                    csrf_secret=csrf_secret,
                    embedded=embedded,
                    partner_app_id=partner_app_id,
                    created_at=now,
                    last_seen_at=now,
                )
            )
            session = Session(
                id=session_id,
                user_id=user_id,
                email=user.email,
                is_admin=user.is_admin,
                scope=scope,
                csrf_secret=csrf_secret,
                embedded=embedded,
                created_at=now,
                partner_app_id=partner_app_id,
            )
        self._remember(
            hash_session_id(session_id), _Entry(session, self._clock.monotonic(), now, now)
        )
        await self.refresh_metrics()
        return session

    async def load(self, session_id: str) -> Session | None:
        """The live session, or None: unknown, expired (idle or absolute), revoked,
        or its user disabled."""
        key = hash_session_id(session_id)
        if key in self._dead:
            return None
        now = self._clock.now()
        entry = self._cache.get(key)
        if entry is None or self._clock.monotonic() - entry.fetched_at >= self._revalidate:
            entry = await self._fetch(key, session_id, now, entry)
            if entry is None:
                self._bury(key)
                return None
        if self._expired(entry, now):
            await self._delete(SessionRecord.id_hash == key)
            self._bury(key)
            return None
        entry.last_seen = now
        self._cache.move_to_end(key)
        if now - entry.written_at >= self._write_interval:
            entry.written_at = now
            async with self._database.session() as db:
                await db.execute(
                    update(SessionRecord)
                    .where(SessionRecord.id_hash == key)
                    .values(last_seen_at=now)
                )
        return entry.session

    async def set_scope(self, session_id: str, scope: tuple[str, str]) -> Session:
        """Make ``scope`` the session's active pair (the caller has checked the mapping)."""
        session = await self.load(session_id)
        if session is None:
            raise NotFoundError("the session has ended")
        key = hash_session_id(session_id)
        async with self._database.session() as db:
            await db.execute(
                update(SessionRecord)
                .where(SessionRecord.id_hash == key)
                .values(tenant_id=scope[0], sub_tenant_id=scope[1])
            )
        session = dataclasses.replace(session, scope=scope)
        entry = self._cache.get(key)
        if entry is not None:
            entry.session = session
        return session

    async def revoke(self, session_id: str) -> None:
        key = hash_session_id(session_id)
        await self._delete(SessionRecord.id_hash == key)
        self._bury(key)
        await self.refresh_metrics()

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (logout everywhere, user disabled). Returns how many."""
        count = await self._delete(SessionRecord.user_id == user_id)
        self._bury_where(lambda s: s.user_id == user_id)
        await self.refresh_metrics()
        return count

    async def revoke_scope(self, user_id: int, tenant_id: str, sub_tenant_id: str) -> int:
        """A mapping was removed: end the user's sessions whose active pair it is."""
        count = await self._delete(
            SessionRecord.user_id == user_id,
            SessionRecord.tenant_id == tenant_id,
            SessionRecord.sub_tenant_id == sub_tenant_id,
        )
        self._bury_where(lambda s: s.user_id == user_id and s.scope == (tenant_id, sub_tenant_id))
        await self.refresh_metrics()
        return count

    async def sweep(self) -> int:
        """Delete expired records; returns how many."""
        now = self._clock.now()
        count = await self._delete(
            or_(
                SessionRecord.created_at <= now - self.max_age,
                SessionRecord.last_seen_at <= now - self.idle,
            )
        )
        await self.refresh_metrics()
        return count

    async def refresh_metrics(self) -> None:
        if self._metrics is None:
            return
        now = self._clock.now()
        async with self._database.session() as db:
            count = await db.scalar(
                select(func.count())
                .select_from(SessionRecord)
                .where(
                    SessionRecord.created_at > now - self.max_age,
                    SessionRecord.last_seen_at > now - self.idle,
                )
            )
        self._metrics.active_sessions.set(count or 0)

    @contextlib.asynccontextmanager
    async def housekeeping(self, interval: float = SWEEP_SECONDS) -> AsyncIterator[None]:
        """Sweep expired records in the background while the block runs."""

        async def loop() -> None:
            while True:
                try:
                    await self.sweep()
                except Exception:  # keep sweeping after a transient database error
                    logger.exception("session sweep failed")
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop(), name="bff-session-sweep")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _expired(self, entry: _Entry, now: datetime) -> bool:
        return now - entry.session.created_at >= self.max_age or now - entry.last_seen >= self.idle

    async def _fetch(
        self, key: str, session_id: str, now: datetime, cached: _Entry | None
    ) -> _Entry | None:
        async with self._database.session() as db:
            row = (
                await db.execute(
                    select(SessionRecord, User.email, User.is_admin, User.disabled)
                    .join(User, User.id == SessionRecord.user_id)
                    .where(SessionRecord.id_hash == key)
                )
            ).one_or_none()
            if row is None:
                return None
            record, email, is_admin, disabled = row
            if disabled:
                await db.delete(record)
                return None
        scope = (
            (record.tenant_id, record.sub_tenant_id)
            if record.tenant_id is not None and record.sub_tenant_id is not None
            else None
        )
        last_seen = record.last_seen_at
        if cached is not None:
            # The stored value lags by up to the write interval; the cached one is exact.
            last_seen = max(last_seen, cached.last_seen)
        session = Session(
            id=session_id,
            user_id=record.user_id,
            email=email,
            is_admin=is_admin,
            scope=scope,
            csrf_secret=record.csrf_secret,
            embedded=record.embedded,
            created_at=record.created_at,
            partner_app_id=record.partner_app_id,
        )
        entry = _Entry(
            session,
            self._clock.monotonic(),
            cached.written_at if cached else record.last_seen_at,
            last_seen,
        )
        self._remember(key, entry)
        return entry

    async def _delete(self, *where: ColumnElement[bool]) -> int:
        async with self._database.session() as db:
            result = await db.execute(delete(SessionRecord).where(*where))
        return int(getattr(result, "rowcount", 0) or 0)

    def _remember(self, key: str, entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _bury(self, key: str) -> None:
        self._cache.pop(key, None)
        self._dead[key] = None
        while len(self._dead) > self._cache_size:
            self._dead.popitem(last=False)

    def _bury_where(self, matches: Callable[[Session], bool]) -> None:
        for key in [k for k, entry in self._cache.items() if matches(entry.session)]:
            self._bury(key)
