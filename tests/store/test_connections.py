from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from bff.crypto import SecretBox
from bff.errors import SecretDecryptionError
from bff.store.connections import connection_secrets, reencrypt_connections, save_connection
from bff.store.database import Database
from bff.store.migrate import upgrade
from bff.store.models import VendorConnection
from tests.conftest import random_key

pytestmark = pytest.mark.anyio

API_KEY = "vendor-api-key-7d1e0b42"
API_SECRET = "vendor-api-secret-93c5aa10"


async def migrated(url: str) -> Database:
    database = Database(url)
    await upgrade(database.engine)
    return database


async def store_two(database: Database, box: SecretBox) -> None:
    async with database.session() as session:
        for connection_id in ("default", "other"):
            await save_connection(
                session,
                box,
                connection_id,
                kind="header-exchange",
                base_url="https://vendor.example",
                api_key=API_KEY,
                api_secret=API_SECRET,
            )


async def test_database_file_holds_no_plaintext_secret(tmp_path: Path) -> None:
    path = tmp_path / "bff.db"
    database = await migrated(f"sqlite:///{path}")
    box = SecretBox([random_key()])
    try:
        await store_two(database, box)
        async with database.session() as session:
            row = await session.get(VendorConnection, "default")
            assert row is not None
            assert connection_secrets(box, row) == (API_KEY, API_SECRET)
    finally:
        await database.dispose()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("bff.db*"))
    assert b"vendor.example" in stored  # the file really holds the rows
    assert API_KEY.encode() not in stored
    assert API_SECRET.encode() not in stored


async def test_secret_copied_onto_another_row_is_refused(tmp_path: Path) -> None:
    database = await migrated(f"sqlite:///{tmp_path / 'bff.db'}")
    box = SecretBox([random_key()])
    try:
        await store_two(database, box)
        async with database.session() as session:
            source = await session.get(VendorConnection, "default")
            assert source is not None
            await session.execute(
                update(VendorConnection)
                .where(VendorConnection.id == "other")
                .values(api_secret_encrypted=source.api_secret_encrypted)
            )
        async with database.session() as session:
            victim = await session.get(VendorConnection, "other")
            assert victim is not None
            with pytest.raises(SecretDecryptionError, match="another row"):
                connection_secrets(box, victim)
    finally:
        await database.dispose()


async def test_reencrypt_rotates_every_row_to_the_newest_key(tmp_path: Path) -> None:
    database = await migrated(f"sqlite:///{tmp_path / 'bff.db'}")
    old_key, new_key = random_key(), random_key()
    try:
        await store_two(database, SecretBox([old_key]))
        async with database.session() as session:
            assert await reencrypt_connections(session, SecretBox([new_key, old_key])) == 4
        async with database.session() as session:
            for connection_id in ("default", "other"):
                row = await session.get(VendorConnection, connection_id)
                assert row is not None
                assert connection_secrets(SecretBox([new_key]), row) == (API_KEY, API_SECRET)
    finally:
        await database.dispose()


async def test_reencrypt_with_a_wrong_key_changes_nothing(tmp_path: Path) -> None:
    database = await migrated(f"sqlite:///{tmp_path / 'bff.db'}")
    key = random_key()
    try:
        await store_two(database, SecretBox([key]))
        with pytest.raises(SecretDecryptionError):
            async with database.session() as session:
                await reencrypt_connections(session, SecretBox([random_key()]))
        async with database.session() as session:
            row = await session.get(VendorConnection, "other")
            assert row is not None
            assert connection_secrets(SecretBox([key]), row) == (API_KEY, API_SECRET)
    finally:
        await database.dispose()


@pytest.mark.postgres
async def test_connections_on_postgresql(postgres_url: str) -> None:
    database = await migrated(postgres_url)
    box = SecretBox([random_key()])
    try:
        await store_two(database, box)
        async with database.session() as session:
            row = await session.get(VendorConnection, "other")
            assert row is not None
            assert API_SECRET not in (row.api_secret_encrypted or "")
            assert connection_secrets(box, row) == (API_KEY, API_SECRET)
    finally:
        await database.dispose()
