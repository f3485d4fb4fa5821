"""A failing statement must not carry its bound values into errors, tracebacks or logs."""

from __future__ import annotations

import logging
import secrets
import sqlite3
import traceback
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bff.errors import DatabaseBusyError
from bff.logs import JsonFormatter
from bff.settings import Settings
from bff.store.database import Database
from bff.store.migrate import upgrade
from bff.store.models import SessionRecord
from tests.conftest import random_key

pytestmark = pytest.mark.anyio

NO_SUCH_USER = 424242


async def orphan_session_error(database: Database, csrf_secret: str) -> IntegrityError:
    """Store a session for a user that does not exist: the foreign key refuses it."""
    await upgrade(database.engine)
    with pytest.raises(IntegrityError) as caught:
        async with database.session() as session:
            session.add(
                SessionRecord(
                    id_hash=secrets.token_hex(32), user_id=NO_SUCH_USER, csrf_secret=csrf_secret
                )
            )
    return caught.value


def everything_said(error: BaseException) -> str:
    """The error as raised, as a traceback, and as a log line (plain and JSON)."""
    record = logging.LogRecord(
        "bff.web.errors", logging.ERROR, __file__, 1, "unhandled error", None,
        (type(error), error, error.__traceback__),
    )  # fmt: skip
    return "\n".join(
        (
            str(error),
            repr(error),
            "".join(traceback.format_exception(error)),
            logging.Formatter().format(record),
            JsonFormatter().format(record),
        )
    )


def assert_bound_value_hidden(error: IntegrityError, csrf_secret: str) -> None:
    said = everything_said(error)
    assert csrf_secret not in said
    # The statement itself is still reported, only its values are withheld.
    assert "INSERT INTO sessions" in said
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(error)


async def test_a_failing_statement_on_sqlite_never_shows_its_bound_secret(tmp_path: Path) -> None:
    csrf_secret = f"csrf-{secrets.token_urlsafe(24)}"
    database = Database(f"sqlite:///{tmp_path / 'bff.db'}")
    try:
        error = await orphan_session_error(database, csrf_secret)
    finally:
        await database.dispose()
    assert_bound_value_hidden(error, csrf_secret)


@pytest.mark.postgres
async def test_a_failing_statement_on_postgresql_never_shows_its_bound_secret(
    postgres_url: str,
) -> None:
    csrf_secret = f"csrf-{secrets.token_urlsafe(24)}"
    database = Database(postgres_url)
    try:
        error = await orphan_session_error(database, csrf_secret)
    finally:
        await database.dispose()
    assert_bound_value_hidden(error, csrf_secret)


async def test_a_lock_held_past_the_busy_timeout_is_a_busy_error(tmp_path: Path) -> None:
    path = tmp_path / "bff.db"
    database = Database(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with database.engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        async with database.engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA busy_timeout=0")  # no 15 s wait here
            with pytest.raises(DatabaseBusyError):
                await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        holder.close()
        await database.dispose()


def pool_settings(url: str) -> Settings:
    return Settings(
        (random_key(),),
        (random_key(),),
        database_url=url,
        database_pool_size=3,
        database_max_overflow=2,
    )


@pytest.mark.postgres
async def test_the_postgresql_pool_is_sized_by_the_settings(postgres_url: str) -> None:
    database = Database.for_settings(pool_settings(postgres_url))
    try:
        pool = database.engine.pool
        assert isinstance(pool, AsyncAdaptedQueuePool)
        assert (pool.size(), pool._max_overflow) == (3, 2)
        assert await database.ping()
    finally:
        await database.dispose()


async def test_sqlite_ignores_the_pool_settings(tmp_path: Path) -> None:
    database = Database.for_settings(pool_settings(f"sqlite:///{tmp_path / 'bff.db'}"))
    try:
        assert await database.ping()
    finally:
        await database.dispose()
