"""Two real ``bff serve`` processes sharing one PostgreSQL database and one Redis.

Each test gets a fresh database (``postgres_url``), a Redis database of its own (a
free database number of ``BFF_TEST_REDIS_URL``'s server, claimed for the test and
emptied of bff's keys afterwards: the settings have no key prefix), and the demo
vendor in this process behind a :class:`~bff.demo.server.Gate`, so a test holds
vendor calls for exactly as long as it needs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bff.demo.seed import DemoAccount, seed, seed_partner_app
from bff.demo.server import Gate, serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.operations.partner_apps import NewSecret
from bff.store.database import Database
from tests.conftest import random_key
from tests.test_serve import free_port, serve_env, serving, vendor_env

PARTNER_ORIGIN = "https://partner.example"
# Redis databases the tests may claim (0 is left to people; CI's URL names 15).
_DATABASES = range(1, 15)
_CLAIM = "bff-test-scale:claimed"


@dataclasses.dataclass
class Fleet:
    """Two instances, ``a`` and ``b`` (base URLs), and what they share."""

    a: str
    b: str
    vendor: VendorConfig
    gate: Gate
    account: DemoAccount
    partner: NewSecret
    logs: list[Path]
    processes: list[subprocess.Popen[bytes]]

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for log in self.logs)


@pytest.fixture
def redis_server() -> str:
    url = os.environ.get("BFF_TEST_REDIS_URL")
    if not url:
        pytest.skip("BFF_TEST_REDIS_URL is not set; no Redis server to test against")
    return url


@pytest.fixture
def shared_redis(redis_server: str) -> Iterator[str]:
    """A Redis database number nobody else uses during the test, as a URL."""
    with claimed_database(redis_server) as url:
        yield url


@contextmanager
def claimed_database(server: str) -> Iterator[str]:
    token = secrets.token_hex(8)
    for number in _DATABASES:
        url = _with_db(server, number)
        candidate = redis.Redis.from_url(url)
        if candidate.set(_CLAIM, token, nx=True, ex=3600):
            break
        candidate.close()
    else:
        pytest.fail("no free Redis database to claim")
    try:
        yield url
    finally:
        keys = list(candidate.scan_iter(match="bff:*", count=1000))
        if keys:
            candidate.delete(*keys)
        if candidate.get(_CLAIM) == token.encode():
            candidate.delete(_CLAIM)
        candidate.close()


def _with_db(url: str, number: int) -> str:
    """``url`` with its database number replaced by ``number``."""
    parts = httpx2.URL(url)
    return str(parts.copy_with(path=f"/{number}"))


class PrivateRedis:
    """A ``redis-server`` of this test's own on a free port: stopped and started at will,
    never the shared one."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.ping()
                    return
                except RedisConnectionError:
                    assert self.process.poll() is None, "redis-server exited"
                    assert time.monotonic() < deadline, "redis-server did not come up"
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def scale_database(postgres_url: str) -> AsyncIterator[tuple[str, DemoAccount, NewSecret]]:
    """The fresh database migrated by `bff migrate` (as a release would), then seeded."""
    env = serve_env(BFF_DATABASE_URL=postgres_url)
    migrated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bff", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    account = DemoAccount("ann@example.com", f"pw-{random_key()}", False, (("acme", "north"),))
    database = Database(postgres_url)
    try:
        await seed(database, (account,))
        partner = await seed_partner_app(database, PARTNER_ORIGIN, now=datetime.now(UTC))
    finally:
        await database.dispose()
    yield postgres_url, account, partner


@contextmanager
def fleet_of_two(
    directory: Path,
    database_url: str,
    redis_url: str,
    account: DemoAccount,
    partner: NewSecret,
    *,
    vendor: VendorConfig | None = None,
) -> Iterator[Fleet]:
    """The vendor (gated on its API, open until a test closes it) and two instances."""
    vendor = vendor or VendorConfig()
    gate = Gate(create_vendor_app(vendor), holds=lambda scope: scope["path"].startswith("/api/"))
    gate.open()
    keys = {"BFF_SECRET_KEYS": random_key(), "BFF_ENCRYPTION_KEYS": random_key()}
    with ExitStack() as stack:
        vendor_url = stack.enter_context(serve_in_thread(gate))
        urls, logs, processes = [], [], []
        for name in ("a", "b"):
            port = free_port()
            place = directory / name
            place.mkdir()
            env = serve_env(
                **keys,
                **vendor_env(vendor, vendor_url, port),
                BFF_DATABASE_URL=database_url,
                BFF_REDIS_URL=redis_url,
            )
            url, log, process = stack.enter_context(serving(place, env=env, port=port))
            urls.append(url)
            logs.append(log)
            processes.append(process)
        yield Fleet(urls[0], urls[1], vendor, gate, account, partner, logs, processes)


@pytest.fixture
def fleet(
    tmp_path: Path, scale_database: tuple[str, DemoAccount, NewSecret], shared_redis: str
) -> Iterator[Fleet]:
    database_url, account, partner = scale_database
    with fleet_of_two(tmp_path, database_url, shared_redis, account, partner) as running:
        yield running
