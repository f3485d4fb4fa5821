"""The database: one async engine per app, SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from bff.settings import Settings

# SQLAlchemy's own defaults, kept for engines made without settings (migrations, tests).
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10


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


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_engine(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_MAX_OVERFLOW
) -> AsyncEngine:
    """The one place engines are made. Bound values stay out of every error and log:
    they are session ids, CSRF secrets, hashes and encrypted credentials.

    ``pool_size`` and ``max_overflow`` size a PostgreSQL pool (per process). SQLite
    ignores them: its file needs no server connections, and SQLAlchemy picks its own
    pool for it."""
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            async_url(url), connect_args={"timeout": 15}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", _busy_means_retry)
        return engine
    return create_async_engine(
        async_url(url),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        hide_parameters=True,
    )


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

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_settings(cls, settings: Settings) -> Database:
        """The database of ``BFF_DATABASE_URL``, its pool sized by ``BFF_DATABASE_POOL_SIZE``
        and ``BFF_DATABASE_MAX_OVERFLOW`` (PostgreSQL only)."""
        return cls(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )

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
