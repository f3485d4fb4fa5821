from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.settings import Settings
from bff.store.database import Database, create_engine
from bff.store.migrate import upgrade


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def random_key() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def base_settings(tmp_path: Path) -> Settings:
    """Settings with fresh random keys and a SQLite file in tmp_path."""
    return Settings(
        secret_keys=(random_key(),),
        encryption_keys=(random_key(),),
        database_url=f"sqlite:///{tmp_path / 'bff.db'}",
    )


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    server = os.environ.get("BFF_TEST_DATABASE_URL")
    if not server:
        pytest.skip("BFF_TEST_DATABASE_URL is not set; no PostgreSQL server to test against")
    name = f"bff_test_{secrets.token_hex(6)}"
    admin = create_engine(server)
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No BFF_* variables from the developer's shell, and a working directory without .env."""
    for name in list(os.environ):
        if name.startswith("BFF_") and not name.startswith("BFF_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def clock() -> ManualClock:
    """Time that moves only when a test says so."""
    return ManualClock()


@pytest.fixture
def vendor(clock: ManualClock) -> VendorConfig:
    """The demo vendor's configuration on the test's clock (modules may override it)."""
    return VendorConfig(clock=clock)


@pytest.fixture
def migrated_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated, for a synchronous (TestClient) test."""
    server = os.environ.get("BFF_TEST_DATABASE_URL")
    if not server:
        pytest.skip("BFF_TEST_DATABASE_URL is not set; no PostgreSQL server to test against")
    name = f"bff_test_{secrets.token_hex(6)}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)

    async def on_server(sql: str) -> None:
        admin = create_engine(server).execution_options(isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(sql))
        finally:
            await admin.dispose()

    async def migrate() -> None:
        database = Database(url)
        try:
            await upgrade(database.engine)
        finally:
            await database.dispose()

    asyncio.run(on_server(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate())
        yield url
    finally:
        asyncio.run(on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
