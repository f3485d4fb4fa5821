"""The session store on its own: timeouts, revocation, the cache, the metrics."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import delete, event, select, update

from bff.clock import ManualClock
from bff.errors import NotFoundError, SessionEnded
from bff.shared.revocations import SessionsRevoked
from bff.store.database import Database
from bff.store.models import SessionRecord, User
from bff.store.schema import prepare_schema
from bff.store.users import add_user
from bff.web.auth.metrics import AuthMetrics
from bff.web.auth.sessions import REVALIDATE_SECONDS, SessionStore, hash_session_id

pytestmark = pytest.mark.anyio

IDLE = 30 * 60
MAX = 8 * 60 * 60


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'sessions.db'}")
    await prepare_schema(database)
    yield database
    await database.dispose()


@pytest.fixture
def metrics() -> AuthMetrics:
    return AuthMetrics(CollectorRegistry())


@pytest.fixture
def store(database: Database, clock: ManualClock, metrics: AuthMetrics) -> SessionStore:
    return SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX, metrics=metrics)


async def new_user(database: Database, email: str = "ann@example.com") -> int:
    async with database.session() as db:
        return (await add_user(db, email, None)).id


class QueryCounter:
    def __init__(self, database: Database) -> None:
        self.count = 0
        event.listen(database.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.count += 1


async def test_a_new_session_loads_with_its_user_and_scope(
    store: SessionStore, database: Database
) -> None:
    user_id = await new_user(database)
    session = await store.create(user_id, scope=("acme", "north"))
    loaded = await store.load(session.id)
    assert loaded is not None
    assert (loaded.user_id, loaded.email, loaded.is_admin) == (user_id, "ann@example.com", False)
    assert loaded.scope == ("acme", "north")
    assert not loaded.embedded
    assert len(session.id) >= 43  # 32 random bytes, base64url
    assert session.id not in repr(session) and session.csrf_secret not in repr(session)


async def test_only_a_hash_of_the_id_is_stored(store: SessionStore, database: Database) -> None:
    session = await store.create(await new_user(database))
    async with database.session() as db:
        stored = list(await db.scalars(select(SessionRecord.id_hash)))
    assert stored == [hashlib.sha256(session.id.encode()).hexdigest()]


async def test_ids_are_fresh_every_time(store: SessionStore, database: Database) -> None:
    user_id = await new_user(database)
    ids = {(await store.create(user_id)).id for _ in range(20)}
    assert len(ids) == 20


async def test_unknown_ids_load_as_none(store: SessionStore) -> None:
    assert await store.load("no-such-session") is None


async def test_idle_timeout(store: SessionStore, database: Database, clock: ManualClock) -> None:
    session = await store.create(await new_user(database))
    clock.advance(IDLE - 1)
    assert await store.load(session.id) is not None  # activity resets the idle clock
    clock.advance(IDLE - 1)
    assert await store.load(session.id) is not None
    clock.advance(IDLE)
    assert await store.load(session.id) is None
    clock.advance(-IDLE)  # even if the clock went back, the record is gone
    assert await store.load(session.id) is None


async def test_absolute_timeout_despite_activity(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    session = await store.create(await new_user(database))
    for _ in range(MAX // 600 - 1):
        clock.advance(600)
        assert await store.load(session.id) is not None
    clock.advance(600)
    assert await store.load(session.id) is None


async def test_idle_timeout_survives_a_restart(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    """A second store (another instance, or after a restart) sees the written-back
    last-seen time and applies the same timeouts."""
    session = await store.create(await new_user(database))
    clock.advance(IDLE - 60)
    assert await store.load(session.id) is not None
    other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
    clock.advance(IDLE - 60)
    assert await other.load(session.id) is not None
    clock.advance(IDLE + 1)
    assert await other.load(session.id) is None


async def test_validating_a_cached_session_costs_no_query(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    session = await store.create(await new_user(database))
    queries = QueryCounter(database)
    for _ in range(50):
        assert await store.load(session.id) is not None
    assert queries.count == 0
    clock.advance(600)
    await store.load(session.id)
    assert 1 <= queries.count <= 3  # revalidated once and last-seen written back


async def test_revoke_ends_the_session_at_once(store: SessionStore, database: Database) -> None:
    session = await store.create(await new_user(database))
    assert await store.load(session.id) is not None
    await store.revoke(session.id)
    assert await store.load(session.id) is None
    async with database.session() as db:
        assert list(await db.scalars(select(SessionRecord))) == []


async def test_revoke_user_ends_every_session_of_that_user_only(
    store: SessionStore, database: Database
) -> None:
    ann, bob = await new_user(database), await new_user(database, "bob@example.com")
    ann_sessions = [await store.create(ann) for _ in range(3)]
    bob_session = await store.create(bob)
    assert await store.revoke_user(ann) == 3
    for session in ann_sessions:
        assert await store.load(session.id) is None
    assert await store.load(bob_session.id) is not None


async def test_revoke_scope_ends_sessions_on_that_pair(
    store: SessionStore, database: Database
) -> None:
    ann = await new_user(database)
    on_pair = await store.create(ann, scope=("acme", "north"))
    elsewhere = await store.create(ann, scope=("acme", "south"))
    assert await store.revoke_scope(ann, "acme", "north") == 1
    assert await store.load(on_pair.id) is None
    assert await store.load(elsewhere.id) is not None


async def test_set_scope(store: SessionStore, database: Database) -> None:
    session = await store.create(await new_user(database))
    updated = await store.set_scope(session.id, ("acme", "north"))
    assert updated.scope == ("acme", "north")
    other = SessionStore(database, ManualClock(), idle_seconds=IDLE, max_seconds=MAX)
    reloaded = await other.load(session.id)
    assert reloaded is not None and reloaded.scope == ("acme", "north")
    await store.revoke(session.id)
    with pytest.raises(SessionEnded):
        await store.set_scope(session.id, ("acme", "south"))


async def test_a_disabled_user_cannot_start_a_session(
    store: SessionStore, database: Database
) -> None:
    user_id = await new_user(database)
    async with database.session() as db:
        await db.execute(update(User).where(User.id == user_id).values(disabled=True))
    with pytest.raises(NotFoundError):
        await store.create(user_id)


async def test_changes_by_another_instance_arrive_within_the_revalidation_window(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    user_id = await new_user(database)
    session = await store.create(user_id)
    other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
    await other.revoke(session.id)
    clock.advance(16)
    assert await store.load(session.id) is None

    disabled = await store.create(user_id)
    async with database.session() as db:
        await db.execute(update(User).where(User.id == user_id).values(disabled=True))
    clock.advance(16)
    assert await store.load(disabled.id) is None


async def test_setting_the_wall_clock_back_does_not_extend_the_window(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    session = await store.create(await new_user(database))
    other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
    await other.revoke(session.id)
    clock.set_wall(-3600)
    clock.advance(16)
    assert await store.load(session.id) is None


async def test_sweep_deletes_expired_records_and_sets_the_gauge(
    store: SessionStore, database: Database, clock: ManualClock, metrics: AuthMetrics
) -> None:
    user_id = await new_user(database)
    old = await store.create(user_id)
    clock.advance(IDLE - 10)
    fresh = await store.create(user_id)
    assert metrics.active_sessions._value.get() == 2
    clock.advance(20)
    assert await store.sweep() == 1
    assert metrics.active_sessions._value.get() == 1
    assert await store.load(old.id) is None
    assert await store.load(fresh.id) is not None
    await store.revoke(fresh.id)
    assert metrics.active_sessions._value.get() == 0


# The warm load (cached, fresh, live, no write due) only touches the cache entry: each
# test below warms the entry first, then checks that the warm path still gives way.


async def _warm(store: SessionStore, session_id: str) -> None:
    for _ in range(3):
        assert await store.load(session_id) is not None


async def test_a_warm_session_revoked_here_is_refused_at_once(
    store: SessionStore, database: Database
) -> None:
    session = await store.create(await new_user(database))
    await _warm(store, session.id)
    await store.revoke(session.id)
    assert await store.load(session.id) is None


async def test_a_warm_session_revoked_elsewhere_is_refused_on_receipt(
    store: SessionStore, database: Database
) -> None:
    user_id = await new_user(database)
    by_id, by_user = await store.create(user_id), await store.create(user_id)
    await _warm(store, by_id.id)
    await _warm(store, by_user.id)
    # What a revocation broadcast delivers: the ids, or every session of the user.
    store._revoked_elsewhere(SessionsRevoked(hashes=(hash_session_id(by_id.id),)))
    assert await store.load(by_id.id) is None
    async with database.session() as db:
        await db.execute(delete(SessionRecord).where(SessionRecord.user_id == user_id))
    assert await store.load(by_user.id) is not None  # cached: the row's removal is unseen
    store._revoked_elsewhere(SessionsRevoked(user_id=user_id))
    assert await store.load(by_user.id) is None


async def test_a_warm_session_still_revalidates_within_the_window(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    session = await store.create(await new_user(database))
    await _warm(store, session.id)
    async with database.session() as db:
        await db.execute(delete(SessionRecord))
    clock.advance(REVALIDATE_SECONDS - 0.5)
    assert await store.load(session.id) is not None
    clock.advance(0.5)
    assert await store.load(session.id) is None


async def test_a_warm_session_expires_at_the_exact_idle_and_absolute_limits(
    database: Database, clock: ManualClock
) -> None:
    # No revalidation in between: only the warm path's own deadline can end them.
    store = SessionStore(
        database, clock, idle_seconds=IDLE, max_seconds=MAX, revalidate_seconds=10 * MAX
    )
    idle = await store.create(await new_user(database))
    await _warm(store, idle.id)
    clock.advance(IDLE - 0.000001)
    assert await store.load(idle.id) is not None
    clock.advance(IDLE)
    assert await store.load(idle.id) is None
    absolute = await store.create(await new_user(database, "bob@example.com"))
    for _ in range(MAX // (IDLE // 2) - 1):
        clock.advance(IDLE // 2)
        assert await store.load(absolute.id) is not None
    clock.advance(IDLE // 2 - 0.000001)
    assert await store.load(absolute.id) is not None
    clock.advance(0.000001)
    assert await store.load(absolute.id) is None


async def test_a_warm_session_writes_last_seen_back_once_the_interval_is_due(
    store: SessionStore, database: Database, clock: ManualClock
) -> None:
    session = await store.create(await new_user(database))
    started = clock.now()
    await _warm(store, session.id)
    interval = store._write_interval.total_seconds()
    clock.advance(interval - 1)
    await _warm(store, session.id)
    assert await _stored_last_seen(database) == started.replace(tzinfo=None)
    clock.advance(1)
    await _warm(store, session.id)
    assert await _stored_last_seen(database) == clock.now().replace(tzinfo=None)


async def _stored_last_seen(database: Database) -> Any:
    async with database.session() as db:
        stored = await db.scalar(select(SessionRecord.last_seen_at))
    return None if stored is None else stored.replace(tzinfo=None)
