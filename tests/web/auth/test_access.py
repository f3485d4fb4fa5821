"""The mapping cache against a real SQLite file: removals are never undone by a
read that was already under way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import delete

from bff.clock import ManualClock
from bff.operations.live import Live
from bff.operations.mappings import unmap_pair
from bff.shared.revocations import MappingsRevoked
from bff.store.database import Database
from bff.store.migrate import upgrade
from bff.store.models import User, UserScope
from bff.store.users import add_user, map_user
from bff.web.auth.access import Mappings, Pair
from bff.web.auth.sessions import SessionStore

pytestmark = pytest.mark.anyio

NORTH = ("acme", "north")
EMEA = ("globex", "emea")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'bff.db'}")
    await upgrade(database.engine)
    yield database
    await database.dispose()


async def mapped_user(database: Database, *pairs: Pair) -> User:
    async with database.session() as db:
        user = await add_user(db, "ann@example.com", None)
        for pair in pairs:
            await map_user(db, user, *pair)
    return user


class SlowMappings(Mappings):
    """Holds each database read's answer until ``release`` is set."""

    def __init__(self, database: Database, clock: ManualClock) -> None:
        super().__init__(database, clock)
        self.read_done = anyio.Event()
        self.release = anyio.Event()

    async def _read(self, user_id: int) -> tuple[Pair, ...]:
        pairs = await super()._read(user_id)
        self.read_done.set()
        await self.release.wait()
        return pairs


async def test_a_removal_during_a_read_is_not_undone_by_it(database: Database) -> None:
    clock = ManualClock()
    user = await mapped_user(database, NORTH, EMEA)
    mappings = SlowMappings(database, clock)
    sessions = SessionStore(database, clock, idle_seconds=600, max_seconds=3600)
    answers: list[bool] = []

    async def ask() -> None:
        answers.append(await mappings.allows(user.id, EMEA))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ask)
        await mappings.read_done.wait()  # the read has seen EMEA still mapped
        live = Live(sessions, mappings)
        assert await unmap_pair(database, "test", user.email, EMEA, live=live)
        mappings.release.set()
    assert answers == [False]
    assert await mappings.allows(user.id, NORTH)
    assert not await mappings.allows(user.id, EMEA)
    assert await mappings.pairs(user.id) == (NORTH,)


@pytest.mark.parametrize("wall_step", [0, -3600], ids=["steady", "wall-clock-set-back"])
async def test_cached_pairs_are_reread_after_the_window(
    database: Database, wall_step: float
) -> None:
    """The window runs on elapsed time: setting the wall clock back does not stretch it."""
    clock = ManualClock()
    user = await mapped_user(database, NORTH)
    mappings = Mappings(database, clock, revalidate_seconds=15)
    assert await mappings.pairs(user.id) == (NORTH,)
    async with database.session() as db:
        await map_user(db, user, *EMEA)
    assert await mappings.pairs(user.id) == (NORTH,)  # cached, within the window
    clock.set_wall(wall_step)
    clock.advance(15)
    assert await mappings.pairs(user.id) == (NORTH, EMEA)


async def test_a_warm_answer_gives_way_to_a_removal_at_once(database: Database) -> None:
    """The warm path (a cached, fresh entry) still hears ``forget`` and the broadcast."""
    clock = ManualClock()
    user = await mapped_user(database, NORTH, EMEA)
    mappings = Mappings(database, clock, revalidate_seconds=15)
    for _ in range(3):
        assert await mappings.allows(user.id, NORTH)
        assert await mappings.pairs(user.id) == (NORTH, EMEA)
    async with database.session() as db:
        await db.execute(delete(UserScope).where(UserScope.tenant_id == NORTH[0]))
    assert await mappings.allows(user.id, NORTH)  # unseen: removed behind the cache's back
    await mappings.forget([user.id])
    assert not await mappings.allows(user.id, NORTH)
    assert await mappings.pairs(user.id) == (EMEA,)
    async with database.session() as db:
        await db.execute(delete(UserScope))
    mappings._revoked_elsewhere(MappingsRevoked(user_ids=(user.id,)))
    assert not await mappings.allows(user.id, EMEA)
    assert await mappings.pairs(user.id) == ()


async def test_a_warm_answer_lasts_exactly_the_window(database: Database) -> None:
    clock = ManualClock()
    user = await mapped_user(database, NORTH)
    mappings = Mappings(database, clock, revalidate_seconds=15)
    assert await mappings.allows(user.id, NORTH)
    async with database.session() as db:
        await db.execute(delete(UserScope))
    clock.advance(14.999)
    assert await mappings.allows(user.id, NORTH)
    assert await mappings.pairs(user.id) == (NORTH,)
    clock.advance(0.001)
    assert not await mappings.allows(user.id, NORTH)
