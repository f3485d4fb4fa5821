"""Fixtures for state shared across processes and instances (Redis, the database).

Redis is the server of ``BFF_TEST_REDIS_URL`` (the tests are skipped with a reason
without one), or a private ``redis-server`` a test starts and stops itself. Every
test gets its own key prefix (the app's links use it too), so tests can share one
database in parallel; its keys are deleted afterwards.

An :class:`Instance` is a whole app behind a ``TestClient``; two of them built from
the same settings share the database (and Redis, with ``shared_settings``), as two
servers of one deployment do. ``Instance.listener`` records the revocation messages
an instance heard, for tests to wait on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import pytest
import redis
from argon2 import PasswordHasher
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from bff import passwords
from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings
from bff.shared import redis_link
from bff.shared.redis_link import UNREACHABLE, RedisLink
from bff.shared.revocations import MappingsRevoked, SessionsRevoked
from tests.web.helpers import add_probe_routes, call, services_of

PUBLIC_URL = "https://testserver"
REDIS_SERVER = "/usr/bin/redis-server"
# How long a test waits for another instance to hear a message; it comes within a
# second in production, so this only bounds a failing test.
BROADCAST_DEADLINE = 1.0

Heard = SessionsRevoked | MappingsRevoked
OpenLink = Callable[..., Awaitable[RedisLink]]


# -- Redis ---------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("BFF_TEST_REDIS_URL")
    if not url:
        pytest.skip("BFF_TEST_REDIS_URL is not set; no Redis server to test against")
    return url


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This test's key namespace, for its own links and the apps' (then deleted)."""
    name = f"bfftest-{secrets.token_hex(6)}"
    monkeypatch.setattr(redis_link, "PREFIX", name)
    yield name
    url = os.environ.get("BFF_TEST_REDIS_URL")
    if url:
        with contextlib.suppress(redis.exceptions.ConnectionError):
            client = redis.Redis.from_url(url)
            try:
                keys = list(client.scan_iter(match=f"{name}:*"))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()


@contextlib.asynccontextmanager
async def started_link(url: str, prefix: str) -> AsyncIterator[RedisLink]:
    """A link of its own (one simulated process), started and closed around the block."""
    link = RedisLink(url, CollectorRegistry(), prefix=prefix)
    try:
        async with anyio.create_task_group() as background:
            await link.start(background)
            yield link
            background.cancel_scope.cancel()
    finally:
        await link.aclose()


@pytest.fixture
async def link(redis_url: str, prefix: str) -> AsyncIterator[RedisLink]:
    async with started_link(redis_url, prefix) as started:
        yield started


@pytest.fixture
async def open_link(redis_url: str, prefix: str) -> AsyncIterator[OpenLink]:
    """Opens started links, one per simulated instance, sharing the test's prefix."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(url: str = redis_url) -> RedisLink:
            return await stack.enter_async_context(started_link(url, prefix))

        yield open_one


class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, that it may stop and start."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1"]
        self._process = subprocess.Popen(
            [REDIS_SERVER, *options, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(500):  # it needs a moment before it listens
                with contextlib.suppress(*UNREACHABLE):
                    if client.ping():
                        return
                # Waits 20 ms, unless the server exited (a port taken meanwhile).
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=0.02)
                    break
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed; cannot start a private Redis")
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


# -- whole instances -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id still, with the cheapest parameters: tests hash many passwords."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("no account has this password"))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bff.db'}"


@pytest.fixture
def settings(base_settings: Settings, database_url: str) -> Settings:
    return dataclasses.replace(base_settings, public_url=PUBLIC_URL, database_url=database_url)


@pytest.fixture
def shared_settings(settings: Settings, redis_url: str, prefix: str) -> Settings:
    return dataclasses.replace(settings, redis_url=redis_url)


class Listener:
    """The revocation messages one instance heard from the others."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self.heard: list[Heard] = []
        self._changed = anyio.Event()
        revocations = services_of(client).auth.revocations
        assert revocations is not None, "the instance has no Redis"
        revocations.on_sessions(self._record, lambda: None)
        revocations.on_mappings(self._record, lambda: None)

    def _record(self, message: Heard) -> None:
        self.heard.append(message)
        self._changed.set()
        self._changed = anyio.Event()

    def wait_for(self, matches: Callable[[Heard], bool]) -> Heard:
        """The first message ``matches`` accepts, waiting up to :data:`BROADCAST_DEADLINE`."""

        async def wait() -> Heard:
            with anyio.fail_after(BROADCAST_DEADLINE):
                while True:
                    for message in self.heard:
                        if matches(message):
                            return message
                    await self._changed.wait()

        return call(self._client, wait)


@dataclasses.dataclass
class Instance:
    client: TestClient
    listener: Listener | None


@contextlib.contextmanager
def client_of(settings: Settings, clock: ManualClock) -> Iterator[TestClient]:
    app = create_app(settings, clock=clock)
    add_probe_routes(app)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        shared = services_of(client).shared
        if shared is not None and shared.healthy:
            call(client, shared.listening)  # messages sent from now on reach it
        yield client


@contextlib.contextmanager
def two_instances(settings: Settings, clock: ManualClock) -> Iterator[tuple[Instance, Instance]]:
    """Two apps on the same settings: one database (and Redis, if configured)."""
    with client_of(settings, clock) as a_client, client_of(settings, clock) as b_client:
        listen = settings.redis_url is not None
        yield (
            Instance(a_client, Listener(a_client) if listen else None),
            Instance(b_client, Listener(b_client) if listen else None),
        )


@pytest.fixture
def shared_pair(
    shared_settings: Settings, clock: ManualClock
) -> Iterator[tuple[Instance, Instance]]:
    with two_instances(shared_settings, clock) as pair:
        yield pair
