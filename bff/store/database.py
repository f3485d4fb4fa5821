"""The database: one async engine per app, SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bff.errors import AlreadyExistsError, ConfigurationError, DatabaseBusyError


def async_url(url: str) -> str:
    """Map the documented ``sqlite:///`` / ``postgresql://`` URLs onto async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ConfigurationError("BFF_DATABASE_URL", f"unsupported database {backend!r}")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_engine(url: str) -> AsyncEngine:
    """The one place engines are made. Bound values stay out of every error and log:
    they are session ids, CSRF secrets, hashes and encrypted credentials."""
    if is_sqlite(url):
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            async_url(url), connect_args={"timeout": 15}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", _busy_means_retry)
        return engine
    return create_async_engine(async_url(url), pool_pre_ping=True, hide_parameters=True)


def _busy_means_retry(context: ExceptionContext) -> BaseException | None:
    """SQLite's lock outlived the busy timeout: a condition to retry, not a server fault."""
    if "database is locked" in str(context.original_exception):
        return DatabaseBusyError("the database is busy")
    return None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; busy_timeout waits instead of failing
    # on a lock; SQLite leaves foreign keys off unless asked.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Owns the engine and hands out sessions; one per app, opened in the lifespan."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block succeeds, rolled back otherwise."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


@contextlib.contextmanager
def conflict_means_exists(message: str) -> Iterator[None]:
    """Wrap a create's whole transaction: a constraint broken at insert or commit means
    a concurrent request created the same row first (or removed what it refers to)."""
    try:
        yield
    except IntegrityError:
        raise AlreadyExistsError(message) from None
