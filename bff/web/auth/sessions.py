"""Server-side sessions: database records behind an in-process cache.

The browser holds only a signed random id; the database holds a SHA-256 of it,
so a leaked table cannot be replayed as cookies. Validating a session normally
costs no database round trip: records are cached in process, re-read at most
every ``revalidate_seconds`` (so a revocation made by another instance reaches
this one within that time), and ``last_seen_at`` is written back at most every
``write_interval``. Revocations made through this store take effect at once:
the ids deleted are dropped from the cache and remembered as dead, and a
database read that overlapped a revocation (or a scope switch) is read again
before anything is cached or answered, so it cannot bring back what was just
removed. With a revocation broadcast (:mod:`bff.shared.revocations`) every other
process does the same on receipt, within a second; without one, or while Redis is
unreachable, within ``revalidate_seconds``.

Idle and absolute timeouts are checked on every load against the injected clock.
An embedded (partner iframe) session lives at most :data:`EMBED_SESSION_SECONDS`
(or the store's own absolute limit, if shorter); its idle timeout is the store's.
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
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from bff.clock import Clock
from bff.errors import NotFoundError, SessionEnded
from bff.shared.revocations import MAX_IDS, Revocations, SessionsRevoked
from bff.store.database import Database
from bff.store.models import SessionRecord, User
from bff.web.auth.metrics import AuthMetrics

logger = logging.getLogger(__name__)

ID_BYTES = 32
CACHE_SIZE = 10_000
REVALIDATE_SECONDS = 15.0
SWEEP_SECONDS = 60.0
# An embedded session's absolute lifetime: the partner renews it with a new launch.
EMBED_SESSION_SECONDS = 3600


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
    # An embedded session's partner page origin: its frame posts messages only there.
    embed_origin: str | None = None


# An entry's ``until`` before its first load: check everything.
_CHECK = datetime.min.replace(tzinfo=UTC)


@dataclasses.dataclass
class _Entry:
    session: Session
    fetched_at: float  # Clock.monotonic(): a stepped wall clock must not extend it
    written_at: datetime
    # Kept here, not on the frozen Session: it changes on every request.
    last_seen: datetime
    # Before this moment the session has not expired (idle or absolute) and
    # last_seen_at needs no write: a load then only touches the entry.
    until: datetime = _CHECK


class _Row(NamedTuple):
    user_id: int
    tenant_id: str | None
    sub_tenant_id: str | None
    csrf_secret: str
    embedded: bool
    partner_app_id: int | None
    embed_origin: str | None
    created_at: datetime
    last_seen_at: datetime
    email: str
    is_admin: bool
    disabled: bool


_COLUMNS = (
    SessionRecord.user_id,
    SessionRecord.tenant_id,
    SessionRecord.sub_tenant_id,
    SessionRecord.csrf_secret,
    SessionRecord.embedded,
    SessionRecord.partner_app_id,
    SessionRecord.embed_origin,
    SessionRecord.created_at,
    SessionRecord.last_seen_at,
    User.email,
    User.is_admin,
    User.disabled,
)


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
        embed_max_seconds: int = EMBED_SESSION_SECONDS,
        metrics: AuthMetrics | None = None,
        revalidate_seconds: float = REVALIDATE_SECONDS,
        cache_size: int = CACHE_SIZE,
        revocations: Revocations | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._revocations = revocations
        self.idle = timedelta(seconds=idle_seconds)
        self.max_age = timedelta(seconds=max_seconds)
        self.embed_max_age = min(self.max_age, timedelta(seconds=embed_max_seconds))
        self._metrics = metrics
        self._revalidate = revalidate_seconds
        # Often enough that the stored value never lags the idle timeout.
        self._write_interval = timedelta(seconds=max(1, min(60, idle_seconds // 10)))
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._dead: OrderedDict[str, None] = OrderedDict()
        # Bumped by every write a concurrent read may have missed (a revocation, a
        # scope switch): a read that overlapped one may have seen the row before it.
        self._writes = 0
        if revocations is not None:
            revocations.on_sessions(self._revoked_elsewhere, self._resync)

    async def create(
        self,
        user_id: int,
        *,
        embedded: bool = False,
        scope: tuple[str, str] | None = None,
        partner_app_id: int | None = None,
        embed_origin: str | None = None,
    ) -> Session:
        """A new session with a fresh random id; never reuses an id the browser sent.

        :class:`NotFoundError` when the user does not exist or is disabled;
        :class:`SessionEnded` when a revocation of the user's sessions that ran
        meanwhile ended it (or disabled the user) before it could be used."""
        now = self._clock.now()
        session_id = secrets.token_urlsafe(ID_BYTES)
        key = hash_session_id(session_id)
        csrf_secret = secrets.token_urlsafe(ID_BYTES)
        writes = self._writes
        email, is_admin = await self._insert(
            SessionRecord(
                id_hash=key,
                user_id=user_id,
                tenant_id=scope[0] if scope else None,
                sub_tenant_id=scope[1] if scope else None,
                csrf_secret=csrf_secret,
                embedded=embedded,
                partner_app_id=partner_app_id,
                embed_origin=embed_origin,
                created_at=now,
                last_seen_at=now,
            )
        )
        session = Session(
            id=session_id,
            user_id=user_id,
            email=email,
            is_admin=is_admin,
            scope=scope,
            csrf_secret=csrf_secret,
            embedded=embedded,
            created_at=now,
            partner_app_id=partner_app_id,
            embed_origin=embed_origin,
        )
        if writes == self._writes:
            self._remember(key, _Entry(session, self._clock.monotonic(), now, now))
        elif await self._fetch(key, session_id, None) is None:
            # A revocation ran meanwhile: it may have deleted the new row, or
            # disabled the user after the check above. The database decides.
            self._bury(key)
            await self.refresh_metrics()
            raise SessionEnded("the new session was revoked before it was used")
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
        if (
            entry is not None
            and now < entry.until
            and self._clock.monotonic() - entry.fetched_at < self._revalidate
        ):
            # The warm case: cached, fresh, live and no write due.
            entry.last_seen = now
            self._cache.move_to_end(key)
            return entry.session
        if entry is None or self._clock.monotonic() - entry.fetched_at >= self._revalidate:
            entry = await self._fetch(key, session_id, entry)
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
        # Equivalent to the checks above for every later moment before it (last_seen
        # only grows, which moves the idle deadline later still).
        entry.until = min(
            self.expires_at(entry.session),
            entry.last_seen + self.idle,
            entry.written_at + self._write_interval,
        )
        return entry.session

    async def set_scope(self, session_id: str, scope: tuple[str, str]) -> Session:
        """Make ``scope`` the session's active pair (the caller has checked the mapping).

        :class:`SessionEnded` when the session has ended, even while this ran."""
        session = await self.load(session_id)
        if session is None:
            raise SessionEnded("the session has ended")
        key = hash_session_id(session_id)
        async with self._database.session() as db:
            result = await db.execute(
                update(SessionRecord)
                .where(SessionRecord.id_hash == key)
                .values(tenant_id=scope[0], sub_tenant_id=scope[1])
            )
        self._writes += 1
        if key in self._dead or not _rowcount(result):
            self._bury(key)
            raise SessionEnded("the session has ended")
        entry = self._cache.get(key)
        if entry is not None:
            entry.session = dataclasses.replace(entry.session, scope=scope)
        return dataclasses.replace(session, scope=scope)

    async def revoke(self, session_id: str) -> None:
        key = hash_session_id(session_id)
        await self._revoke(SessionRecord.id_hash == key)
        self._bury(key)  # also when the row was already gone
        if self._revocations is not None:
            await self._revocations.sessions_revoked([key])
        await self.refresh_metrics()

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (logout everywhere, user disabled). Returns how many."""
        deleted = await self._revoke(SessionRecord.user_id == user_id)
        if self._revocations is not None:
            # The user, not only the rows: another process may be creating one right now.
            await self._revocations.sessions_revoked(deleted, user_id=user_id)
        await self.refresh_metrics()
        return len(deleted)

    async def revoke_scope(self, user_id: int, tenant_id: str, sub_tenant_id: str) -> int:
        """A mapping was removed: end the user's sessions whose active pair it is."""
        deleted = await self._revoke(
            SessionRecord.user_id == user_id,
            SessionRecord.tenant_id == tenant_id,
            SessionRecord.sub_tenant_id == sub_tenant_id,
        )
        if self._revocations is not None and deleted:
            # Another process switching to the pair meanwhile is stopped by the mappings.
            await self._revocations.sessions_revoked(
                deleted, user_id=user_id if len(deleted) > MAX_IDS else None
            )
        await self.refresh_metrics()
        return len(deleted)

    async def revoke_partner_app(self, partner_app_id: int) -> int:
        """A partner app was revoked or its secret replaced: end its embed sessions."""
        deleted = await self._revoke(SessionRecord.partner_app_id == partner_app_id)
        if self._revocations is not None:
            await self._revocations.sessions_revoked(deleted, partner_app_id=partner_app_id)
        await self.refresh_metrics()
        return len(deleted)

    async def sweep(self) -> int:
        """Delete expired records; returns how many."""
        now = self._clock.now()
        count = await self._delete(
            or_(
                SessionRecord.created_at <= now - self.max_age,
                SessionRecord.last_seen_at <= now - self.idle,
                and_(
                    SessionRecord.embedded.is_(True),
                    SessionRecord.created_at <= now - self.embed_max_age,
                ),
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
                    or_(
                        SessionRecord.embedded.is_(False),
                        SessionRecord.created_at > now - self.embed_max_age,
                    ),
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

    def lifetime(self, session: Session) -> timedelta:
        """The session's absolute lifetime: shorter for an embedded one."""
        return self.embed_max_age if session.embedded else self.max_age

    def expires_at(self, session: Session) -> datetime:
        """When the session ends at the latest (its idle timeout may end it sooner)."""
        return session.created_at + self.lifetime(session)

    def _expired(self, entry: _Entry, now: datetime) -> bool:
        return now >= self.expires_at(entry.session) or now - entry.last_seen >= self.idle

    async def _fetch(self, key: str, session_id: str, cached: _Entry | None) -> _Entry | None:
        while True:
            writes = self._writes
            row = await self._read(key)
            if writes == self._writes:
                break
            # A revocation or scope switch ran while this read did: the row may
            # predate it, and caching it would undo it for a whole window.
        if row is None:
            return None
        if row.disabled:
            await self._delete(SessionRecord.id_hash == key)
            return None
        scope = (
            (row.tenant_id, row.sub_tenant_id)
            if row.tenant_id is not None and row.sub_tenant_id is not None
            else None
        )
        last_seen = row.last_seen_at
        if cached is not None:
            # The stored value lags by up to the write interval; the cached one is exact.
            last_seen = max(last_seen, cached.last_seen)
        session = Session(
            id=session_id,
            user_id=row.user_id,
            email=row.email,
            is_admin=row.is_admin,
            scope=scope,
            csrf_secret=row.csrf_secret,
            embedded=row.embedded,
            created_at=row.created_at,
            partner_app_id=row.partner_app_id,
            embed_origin=row.embed_origin,
        )
        entry = _Entry(
            session,
            self._clock.monotonic(),
            cached.written_at if cached else row.last_seen_at,
            last_seen,
        )
        self._remember(key, entry)
        return entry

    async def _read(self, key: str) -> _Row | None:
        # One plain read on a pooled connection: an ORM unit of work (begin, flush,
        # commit) would double its cost for nothing.
        async with self._database.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*_COLUMNS)
                    .join(User, User.id == SessionRecord.user_id)
                    .where(SessionRecord.id_hash == key)
                )
            ).one_or_none()
        return None if row is None else _Row._make(row)

    async def _insert(self, record: SessionRecord) -> tuple[str, bool]:
        """Store ``record`` if its user is active; the user's e-mail and admin flag."""
        async with self._database.session() as db:
            user = await db.get(User, record.user_id)
            if user is None or user.disabled:
                raise NotFoundError(f"no active user {record.user_id}")
            db.add(record)
            return user.email, user.is_admin

    async def _revoke(self, *where: ColumnElement[bool]) -> list[str]:
        """Delete the matching records and bury exactly the ids deleted, whatever the
        cache holds for them (its copy of a session's pair may be out of date); returns
        their hashes."""
        async with self._database.engine.begin() as connection:
            result = await connection.execute(
                delete(SessionRecord).where(*where).returning(SessionRecord.id_hash)
            )
            deleted = list(result.scalars().all())
        self._writes += 1
        for key in deleted:
            self._bury(key)
        return deleted

    def _revoked_elsewhere(self, revoked: SessionsRevoked) -> None:
        """Another process ended sessions: bury those ids, and evict the named user's or
        app's sessions so that their next use reads the database."""
        self._writes += 1  # a read under way may predate the revocation
        for key in revoked.hashes:
            self._bury(key)
        user_id, app_id = revoked.user_id, revoked.partner_app_id
        if user_id is None and app_id is None:
            return
        evicted = [
            key
            for key, entry in self._cache.items()
            if (user_id is not None and entry.session.user_id == user_id)
            or (app_id is not None and entry.session.partner_app_id == app_id)
        ]
        for key in evicted:
            del self._cache[key]

    def _resync(self) -> None:
        """Revocation messages may have been lost: read every session again on its next use."""
        self._writes += 1
        self._cache.clear()

    async def _delete(self, *where: ColumnElement[bool]) -> int:
        async with self._database.session() as db:
            result = await db.execute(delete(SessionRecord).where(*where))
        return _rowcount(result)

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


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
