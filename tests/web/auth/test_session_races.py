"""Revocations racing session reads: a read that saw a row before it was deleted must
neither answer with it nor cache it. Each race is forced by holding one database
read (or a new session's insert) on an event while the revocation runs."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select, update

from bff.clock import ManualClock
from bff.errors import SessionEnded
from bff.store.database import Database
from bff.store.models import SessionRecord, User
from bff.store.schema import prepare_schema
from bff.store.users import add_user
from bff.web.auth import sessions as sessions_module
from bff.web.auth.sessions import REVALIDATE_SECONDS, Session, SessionStore

pytestmark = pytest.mark.anyio

IDLE = 30 * 60
MAX = 8 * 60 * 60
NORTH = ("acme", "north")
SOUTH = ("acme", "south")


class HeldStore(SessionStore):
    """A store whose next database read (once :meth:`hold_next_read` is called) or next
    insert (:meth:`hold_next_insert`) is held, after the database answered, until
    ``release`` is set."""

    def __init__(self, database: Database, clock: ManualClock) -> None:
        super().__init__(database, clock, idle_seconds=IDLE, max_seconds=MAX)
        self.held = anyio.Event()
        self.release = anyio.Event()
        self.reads = 0
        self._hold_read = False
        self._hold_insert = False

    def hold_next_read(self) -> None:
        self._hold_read = True

    def hold_next_insert(self) -> None:
        self._hold_insert = True

    async def _read(self, key: str) -> sessions_module._Row | None:
        row = await super()._read(key)
        self.reads += 1
        if self._hold_read:
            self._hold_read = False
            await self._wait()
        return row

    async def _insert(self, record: SessionRecord) -> tuple[str, bool]:
        found = await super()._insert(record)  # committed
        if self._hold_insert:
            self._hold_insert = False
            await self._wait()
        return found

    async def _wait(self) -> None:
        self.held.set()
        await self.release.wait()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'sessions.db'}")
    await prepare_schema(database)
    yield database
    await database.dispose()


@pytest.fixture
def store(database: Database, clock: ManualClock) -> HeldStore:
    return HeldStore(database, clock)


async def new_user(database: Database, email: str = "ann@example.com") -> int:
    async with database.session() as db:
        return (await add_user(db, email, None)).id


async def disable(database: Database, user_id: int) -> None:
    async with database.session() as db:
        await db.execute(update(User).where(User.id == user_id).values(disabled=True))


async def stored_ids(database: Database) -> list[str]:
    async with database.session() as db:
        return list(await db.scalars(select(SessionRecord.id_hash)))


async def load_while(
    store: HeldStore, session_id: str, revocation: Callable[[], Awaitable[object]]
) -> Session | None:
    """What loading ``session_id`` answers when its database read is held, after the
    row was read, while ``revocation`` runs."""
    answers: list[Session | None] = []

    async def load() -> None:
        answers.append(await store.load(session_id))

    store.hold_next_read()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(load)
        await store.held.wait()  # the row has been read: the session was still there
        await revocation()
        store.release.set()
    return answers[0]


def warm_and_stale(clock: ManualClock) -> None:
    """Age cached entries so the next load re-reads its row."""
    clock.advance(REVALIDATE_SECONDS + 1)


@pytest.mark.parametrize("cache", ["cold", "stale"])
async def test_revoke_user_during_a_load_is_not_undone_by_it(
    store: HeldStore, database: Database, clock: ManualClock, cache: str
) -> None:
    """Cold: the session was started by another instance (or before a restart), so this
    one had nothing cached to drop. Stale: cached, but due for its re-read."""
    user_id = await new_user(database)
    if cache == "cold":
        other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
        session = await other.create(user_id)
    else:
        session = await store.create(user_id)
        warm_and_stale(clock)

    async def revoke_user() -> None:
        assert await store.revoke_user(user_id) == 1

    assert await load_while(store, session.id, revoke_user) is None
    reads = store.reads
    assert await store.load(session.id) is None
    assert store.reads == reads  # ended for good here, not merely not cached
    assert await stored_ids(database) == []


async def test_revoke_scope_during_a_load_ends_only_the_sessions_on_that_pair(
    store: HeldStore, database: Database, clock: ManualClock
) -> None:
    user_id = await new_user(database)
    other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
    on_pair = await other.create(user_id, scope=NORTH)
    elsewhere = await other.create(user_id, scope=SOUTH)

    async def revoke_scope() -> None:
        assert await store.revoke_scope(user_id, *NORTH) == 1

    assert await load_while(store, on_pair.id, revoke_scope) is None
    assert await store.load(on_pair.id) is None

    store.held, store.release = anyio.Event(), anyio.Event()

    async def revoke_other_pair() -> None:
        assert await store.revoke_scope(user_id, "globex", "emea") == 0

    # A read that overlapped a revocation not covering its session is re-read, and kept.
    kept = await load_while(store, elsewhere.id, revoke_other_pair)
    assert kept is not None and kept.scope == SOUTH
    loaded = await store.load(elsewhere.id)
    assert loaded is not None and loaded.scope == SOUTH


async def test_revoke_during_a_load_is_not_undone_by_it(
    store: HeldStore, database: Database, clock: ManualClock
) -> None:
    """Logging out in one tab while another tab's request is re-reading the session."""
    session = await store.create(await new_user(database))
    warm_and_stale(clock)

    async def revoke() -> None:
        await store.revoke(session.id)

    assert await load_while(store, session.id, revoke) is None
    assert await store.load(session.id) is None
    assert await stored_ids(database) == []


async def test_disabling_a_user_during_a_load_ends_the_session(
    store: HeldStore, database: Database, clock: ManualClock
) -> None:
    """What the admin console does: flag the user disabled, then end its sessions."""
    user_id = await new_user(database)
    other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
    session = await other.create(user_id)

    async def disable_user() -> None:
        await disable(database, user_id)
        assert await store.revoke_user(user_id) == 1

    assert await load_while(store, session.id, disable_user) is None
    assert await store.load(session.id) is None
    assert await stored_ids(database) == []


@pytest.mark.parametrize("disabled", [False, True], ids=["logout-everywhere", "user-disabled"])
async def test_revoke_user_during_a_sign_in_ends_the_new_session(
    store: HeldStore, database: Database, monkeypatch: pytest.MonkeyPatch, disabled: bool
) -> None:
    """The new row is committed but not yet cached when every session of the user is
    ended: the sign-in must not leave this instance serving it."""
    user_id = await new_user(database)
    minted: list[str] = []
    token_urlsafe = secrets.token_urlsafe

    def recording_token(nbytes: int) -> str:
        minted.append(token_urlsafe(nbytes))
        return minted[-1]

    monkeypatch.setattr(secrets, "token_urlsafe", recording_token)
    outcome: list[BaseException] = []

    async def sign_in() -> None:
        try:
            await store.create(user_id)
        except SessionEnded as exc:
            outcome.append(exc)

    store.hold_next_insert()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(sign_in)
        await store.held.wait()
        if disabled:
            await disable(database, user_id)
        assert await store.revoke_user(user_id) == 1
        store.release.set()
    assert len(outcome) == 1
    session_id = minted[0]
    assert await store.load(session_id) is None
    assert await stored_ids(database) == []


async def test_a_sign_in_overlapping_another_users_revocation_is_kept(
    store: HeldStore, database: Database
) -> None:
    ann, bob = await new_user(database), await new_user(database, "bob@example.com")
    await store.create(bob)
    created = []

    async def sign_in() -> None:
        created.append(await store.create(ann))

    store.hold_next_insert()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(sign_in)
        await store.held.wait()
        assert await store.revoke_user(bob) == 1
        store.release.set()
    loaded = await store.load(created[0].id)
    assert loaded is not None and loaded.email == "ann@example.com"


async def test_a_scope_switch_during_a_load_is_not_undone_by_it(
    store: HeldStore, database: Database, clock: ManualClock
) -> None:
    """The held read saw the old pair; caching it would both show the old pair and hide
    the session from a revocation of the new one."""
    user_id = await new_user(database)
    session = await store.create(user_id, scope=NORTH)
    warm_and_stale(clock)
    switched: list[tuple[str, str] | None] = []

    async def switch() -> None:
        switched.append((await store.set_scope(session.id, SOUTH)).scope)

    overlapping = await load_while(store, session.id, switch)
    assert overlapping is not None and overlapping.scope == SOUTH
    assert switched == [SOUTH]
    loaded = await store.load(session.id)
    assert loaded is not None and loaded.scope == SOUTH
    assert await store.revoke_scope(user_id, *SOUTH) == 1
    assert await store.load(session.id) is None


async def test_set_scope_on_a_session_another_instance_revoked_raises_session_ended(
    store: HeldStore, database: Database, clock: ManualClock
) -> None:
    """Still cached here, already deleted there: the write finds no row."""
    session = await store.create(await new_user(database))
    other = SessionStore(database, clock, idle_seconds=IDLE, max_seconds=MAX)
    await other.revoke(session.id)
    with pytest.raises(SessionEnded):
        await store.set_scope(session.id, NORTH)
    assert await store.load(session.id) is None
    assert await stored_ids(database) == []
