"""Bringing the schema up to date at start-up."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from bff.errors import ConfigurationError
from bff.store.database import Database, is_sqlite
from bff.store.migrate import alembic_config, current_revision, upgrade


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def prepare_schema(database: Database) -> None:
    """Migrate an embedded SQLite database (under the migration lock, so the processes of
    one machine starting together migrate it once); require a PostgreSQL database to be at
    head already: it is migrated once per release by ``bff migrate``, not by every
    instance that starts."""
    if is_sqlite(database.url):
        await upgrade(database.engine)
        return
    if await current_revision(database.engine) != head_revision():
        raise ConfigurationError(
            "BFF_DATABASE_URL", "the database schema is not up to date; run `bff migrate` first"
        )
