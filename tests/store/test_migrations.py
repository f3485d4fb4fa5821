from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

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
    "set_password_tokens",
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


async def _keys_survive_0002(database: Database) -> None:
    await upgrade(database.engine, "0001")
    async with database.engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO users (id, email, is_admin, disabled, created_at) "
                 "VALUES (1, 'a@example.com', false, false, CURRENT_TIMESTAMP), "
                 "(2, 'b@example.com', false, false, CURRENT_TIMESTAMP)")
        )  # fmt: skip
        await connection.execute(
            text("INSERT INTO api_keys (user_id, handle, key_hash, created_at) "
                 "VALUES (1, 'ci', 'h1', CURRENT_TIMESTAMP)")
        )  # fmt: skip
    await upgrade(database.engine)
    async with database.engine.begin() as connection:
        # Handles are now unique per user, not across users.
        await connection.execute(
            text("INSERT INTO api_keys (user_id, handle, key_hash, created_at) "
                 "VALUES (2, 'ci', 'h2', CURRENT_TIMESTAMP)")
        )  # fmt: skip
        rows = await connection.execute(text("SELECT user_id, handle FROM api_keys ORDER BY 1"))
        assert rows.all() == [(1, "ci"), (2, "ci")]
    with pytest.raises(IntegrityError):
        async with database.engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO api_keys (user_id, handle, key_hash, created_at) "
                     "VALUES (1, 'ci', 'h3', CURRENT_TIMESTAMP)")
            )  # fmt: skip
    await assert_schema_matches_models(database)


async def test_0002_keeps_api_keys_and_scopes_handles_per_user_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'bff.db'}")
    try:
        await _keys_survive_0002(database)
    finally:
        await database.dispose()


@pytest.mark.postgres
async def test_0002_keeps_api_keys_and_scopes_handles_per_user_on_postgresql(
    postgres_url: str,
) -> None:
    database = Database(postgres_url)
    try:
        await _keys_survive_0002(database)
    finally:
        await database.dispose()
