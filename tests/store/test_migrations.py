from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bff.errors import ConfigurationError
from bff.store.database import Database
from bff.store.migrate import current_revision, upgrade
from bff.store.models import Base
from bff.store.schema import head_revision, prepare_schema

pytestmark = pytest.mark.anyio

TABLES = {
    "users",
    "tenants",
    "sub_tenants",
    "user_scopes",
    "sessions",
    "vendor_connections",
    "partner_apps",
    "partner_app_scopes",
    "partner_credentials",
    "api_keys",
    "audit_log",
}


def _columns_by_table(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }


async def assert_schema_matches_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        columns = await connection.run_sync(_columns_by_table)
    assert set(columns) >= TABLES
    for table in TABLES:
        assert columns[table] == set(Base.metadata.tables[table].columns.keys()), table


async def test_sqlite_migrates_to_head(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nested' / 'bff.db'}")
    try:
        await upgrade(database.engine)
        assert await current_revision(database.engine) == head_revision()
        await assert_schema_matches_models(database)
        await upgrade(database.engine)  # idempotent
    finally:
        await database.dispose()
    assert (tmp_path / "nested" / "bff.db").is_file()


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    from sqlalchemy import text

    database = Database(f"sqlite:///{tmp_path / 'bff.db'}")
    try:
        async with database.engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar()
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    finally:
        await database.dispose()
    assert (journal, foreign_keys) == ("wal", 1)
    assert busy is not None and int(busy) > 0


@pytest.mark.postgres
async def test_postgresql_migrates_to_head(postgres_url: str) -> None:
    database = Database(postgres_url)
    try:
        with pytest.raises(ConfigurationError, match="bff migrate"):
            await prepare_schema(database)
        await upgrade(database.engine)
        assert await current_revision(database.engine) == head_revision()
        await assert_schema_matches_models(database)
        await prepare_schema(database)  # now accepted
    finally:
        await database.dispose()
