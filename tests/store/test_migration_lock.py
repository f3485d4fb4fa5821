"""Migrations never race: instances that migrate at once queue on a lock, and each one
after the first finds the schema at head."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text

from bff.store.database import Database
from bff.store.migrate import MIGRATION_LOCK, current_revision, upgrade
from bff.store.schema import head_revision

pytestmark = pytest.mark.anyio


async def _tables(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _versions(database: Database) -> list[str]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
        return [row[0] for row in rows]


async def _upgrade_both(first: Database, second: Database) -> None:
    await asyncio.gather(upgrade(first.engine), upgrade(second.engine))


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_migrations_at_once_on_postgresql_both_succeed_once(postgres_url: str) -> None:
    first, second = Database(postgres_url), Database(postgres_url)
    try:
        await _upgrade_both(first, second)
        assert await current_revision(first.engine) == head_revision()
        assert await _versions(first) == [head_revision()]
    finally:
        await first.dispose()
        await second.dispose()


async def _advisory_waiters(database: Database) -> int:
    async with database.engine.connect() as connection:
        waiting = await connection.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    return int(waiting or 0)


@pytest.mark.postgres
async def test_a_migration_waits_for_the_lock_on_postgresql(postgres_url: str) -> None:
    holder, migrator = Database(postgres_url), Database(postgres_url)
    try:
        async with holder.engine.connect() as held:
            await held.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(upgrade, migrator.engine)
                with anyio.fail_after(30):
                    while not await _advisory_waiters(holder):  # noqa: ASYNC110 (another server's state)
                        await anyio.sleep(0.02)
                # Queued on the lock, it has changed nothing.
                assert "alembic_version" not in await _tables(holder)
                await held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                await held.commit()
        assert await _versions(holder) == [head_revision()]
    finally:
        await holder.dispose()
        await migrator.dispose()


# -- SQLite ----------------------------------------------------------------------------


def _blocked_on(path: Path) -> bool:
    """Some process waits for a lock on ``path`` (Linux lists waiters with ``->``)."""
    inode = f":{os.stat(path).st_ino} "
    return any(
        "->" in line and inode in line for line in Path("/proc/locks").read_text().split("\n")
    )


async def test_two_migrations_at_once_on_sqlite_both_succeed_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bff.db'}"
    first, second = Database(url), Database(url)
    try:
        await _upgrade_both(first, second)
        assert await _versions(first) == [head_revision()]
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
async def test_a_migration_waits_for_the_file_lock_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bff.db'}"
    lock_path = tmp_path / "bff.db.migrate-lock"
    migrator = Database(url)
    try:
        with open(lock_path, "a") as held:  # noqa: ASYNC230 (a local file, at once)
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process migrating
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(upgrade, migrator.engine)
                with anyio.fail_after(30):
                    while not _blocked_on(lock_path):  # noqa: ASYNC110 (the kernel's lock table)
                        await anyio.sleep(0.02)
                assert "alembic_version" not in await _tables(migrator)
                fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        assert await _versions(migrator) == [head_revision()]
    finally:
        await migrator.dispose()
