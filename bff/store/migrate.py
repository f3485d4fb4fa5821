"""Schema migrations (Alembic), applied by ``bff migrate`` and by ``bff serve`` on SQLite.

Migrations never race: on PostgreSQL the upgrade runs in one transaction that first
takes a transaction-scoped advisory lock (:data:`MIGRATION_LOCK`), so instances
migrating at once queue, and each one after the first finds the schema at head; on
SQLite an exclusive ``flock`` on a file beside the database does the same for the
processes of one machine.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import anyio
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bff.store.database import sqlite_file

_MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock's key: bff's migrations, in every database of the server
# (advisory locks are per database, so one key serves all of them).
MIGRATION_LOCK = 0x62FF_0001


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` over an open engine, one migrator at a time."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            # Released at commit or rollback, so a migrator that dies never leaves it held.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
            await connection.run_sync(_upgrade_sync, revision)
        return
    async with _sqlite_migration_lock(engine), engine.connect() as connection:
        # Batch mode rebuilds a SQLite table by copy, drop and rename; with foreign keys
        # on, the drop would cascade into every table that refers to it (a user's keys,
        # sessions and mappings). The pragma only takes outside a transaction.
        await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await connection.commit()
        try:
            await connection.run_sync(_upgrade_sync, revision)
            broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if broken:
                await connection.rollback()
                raise RuntimeError(f"migration left {len(broken)} dangling reference(s)")
            await connection.commit()
        finally:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.commit()


@contextlib.asynccontextmanager
async def _sqlite_migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on ``<database>.migrate-lock`` (not the database file
    itself, whose locks are SQLite's own); an in-memory database has no one to race."""
    path = sqlite_file(engine.url.render_as_string(hide_password=False))
    if path is None:
        yield
        return
    lock = await anyio.to_thread.run_sync(_locked, path.with_name(f"{path.name}.migrate-lock"))
    try:
        yield
    finally:
        lock.close()  # releases the lock


def _locked(path: Path) -> IO[str]:
    lock = open(path, "a")  # noqa: SIM115 (closed by the caller)
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    except BaseException:
        lock.close()
        raise
    return lock


def _upgrade_sync(connection: object, revision: str) -> None:
    config = alembic_config("")
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
