"""Schema migrations (Alembic), applied by ``bff migrate`` and by ``bff serve`` on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` over an open engine."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_sync, revision)
        return
    async with engine.connect() as connection:
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
