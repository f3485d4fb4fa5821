from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings
from bff.store.database import Database, create_engine
from bff.store.migrate import upgrade
from tests.web.admin.helpers import ADMIN
from tests.web.helpers import add_probe_routes, make_user, other_browser, sign_in


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Starlette:
    """The whole app, plus the probe routes (``/_probe/token`` gives a session's CSRF token)."""
    app = create_app(settings, clock=clock)
    add_probe_routes(app)
    return app


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    """A second browser on the same app, signed in as an administrator."""
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    return browser


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
