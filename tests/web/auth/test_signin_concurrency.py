"""Sign-in under real concurrency: bff as a real server, clients at several loopback
addresses (127.0.0.2 the attacker, 127.0.0.3 the owner), password checks held open by
a gate so every attempt is in flight at once."""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bff import passwords
from bff.app import create_app
from bff.demo.server import serve_in_thread
from bff.settings import Settings
from bff.store.database import Database
from bff.store.schema import prepare_schema
from bff.store.users import add_user
from bff.web.auth.password_checks import (
    BUSY_RETRY_AFTER,
    MAX_CONCURRENT_CHECKS,
    MAX_WAITING_CHECKS,
)
from bff.web.auth.ratelimit import PER_ACCOUNT_AT_ADDRESS, WINDOW_SECONDS
from tests.web.helpers import PASSWORD, form_token

pytestmark = pytest.mark.anyio

OWNER = "owner@example.com"
ATTACKER_ADDRESS, OWNER_ADDRESS = "127.0.0.2", "127.0.0.3"
WRONG = "not the owner's password"
# Generous: only a broken server waits this long; a working one answers at once.
DEADLINE = 30.0


class Gate:
    """Stands in for :func:`bff.passwords.verify_password`: counts the checks and holds
    each one (in its worker thread) until opened."""

    def __init__(self, verify: Callable[[str | None, str], bool]) -> None:
        self._verify = verify
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.most_running = 0

    def __call__(self, password_hash: str | None, password: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            assert self._open.wait(DEADLINE), "the test never opened the gate"
            return self._verify(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate(passwords.verify_password)
    monkeypatch.setattr(passwords, "verify_password", gate)
    yield gate
    gate.open()  # never leave a server thread waiting


@pytest.fixture
async def bff_url(base_settings: Settings) -> AsyncIterator[str]:
    """bff on 127.0.0.1 (reachable from every loopback address), with the owner's account
    and a probe answering the client address the server sees."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = dataclasses.replace(base_settings, public_url=url)
    database = Database(settings.database_url)
    try:
        await prepare_schema(database)
        async with database.session() as db:
            await add_user(db, OWNER, passwords.hash_password(PASSWORD))
    finally:
        await database.dispose()
    app = create_app(settings)
    app.router.routes.append(Route("/_probe/address", _client_address))
    with serve_in_thread(app, host="127.0.0.1", port=port):
        yield url


@dataclasses.dataclass
class Browser:
    http: httpx2.AsyncClient
    token: str = ""

    async def open_sign_in(self) -> None:
        page = await self.http.get("/login")
        assert page.status_code == 200
        self.token = form_token(page.text)

    async def sign_in(self, email: str, password: str) -> httpx2.Response:
        data = {"email": email, "password": password, "csrf_token": self.token}
        return await self.http.post("/login", data=data)


@asynccontextmanager
async def browser(url: str, address: str) -> AsyncIterator[Browser]:
    """A browser whose connections leave from ``address``, on the sign-in page."""
    transport = httpx2.AsyncHTTPTransport(
        local_address=address, limits=httpx2.Limits(max_connections=200)
    )
    async with httpx2.AsyncClient(
        base_url=url, transport=transport, timeout=DEADLINE, follow_redirects=False
    ) as http:
        seen = await http.get("/_probe/address")
        assert seen.text == address  # what the limits key on: the source, not 127.0.0.1
        opened = Browser(http)
        await opened.open_sign_in()
        yield opened


async def wait_until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` (state another thread changes) until it holds."""
    with anyio.fail_after(DEADLINE):
        while not await condition():  # noqa: ASYNC110 - the state is in the server's thread
            await anyio.sleep(0.01)


async def test_forty_concurrent_guesses_get_exactly_the_limit_checked(
    bff_url: str, gate: Gate
) -> None:
    answers: list[httpx2.Response] = []
    async with browser(bff_url, ATTACKER_ADDRESS) as attacker:

        async def guess() -> None:
            answers.append(await attacker.sign_in(OWNER, WRONG))

        async def all_in_flight() -> bool:
            # The refused ones answered; the counted ones held in (or queued for) checks.
            refused = len(answers) == 40 - PER_ACCOUNT_AT_ADDRESS
            return refused and gate.running == MAX_CONCURRENT_CHECKS

        async with anyio.create_task_group() as group:
            for _ in range(40):
                group.start_soon(guess)
            await wait_until(all_in_flight)
            gate.open()
    assert gate.calls == PER_ACCOUNT_AT_ADDRESS
    assert gate.most_running == MAX_CONCURRENT_CHECKS
    assert Counter(answer.status_code for answer in answers) == {
        429: 40 - PER_ACCOUNT_AT_ADDRESS,
        400: PER_ACCOUNT_AT_ADDRESS,
    }
    for refused in (answer for answer in answers if answer.status_code == 429):
        assert refused.headers["Retry-After"] == str(WINDOW_SECONDS)
        assert "Too many failed sign-in attempts" in refused.text


async def test_an_attacker_at_one_address_cannot_lock_the_owner_out_at_another(
    bff_url: str,
) -> None:
    codes: list[int] = []
    signed_in: list[httpx2.Response] = []
    async with (
        browser(bff_url, ATTACKER_ADDRESS) as attacker,
        browser(bff_url, OWNER_ADDRESS) as owner,
    ):

        async def guess() -> None:
            codes.append((await attacker.sign_in(OWNER, WRONG)).status_code)

        async def sign_in() -> None:
            owner.http.cookies.clear()
            await owner.open_sign_in()
            signed_in.append(await owner.sign_in(OWNER, PASSWORD))

        # Real checks, all at once, the owner signing in in the middle of the attack.
        async with anyio.create_task_group() as group:
            for number in range(40):
                group.start_soon(guess)
                if number == 20:
                    group.start_soon(sign_in)
        assert Counter(codes) == {400: PER_ACCOUNT_AT_ADDRESS, 429: 40 - PER_ACCOUNT_AT_ADDRESS}
        assert (await attacker.sign_in(OWNER, PASSWORD)).status_code == 429  # itself locked
        await sign_in()
    assert [response.status_code for response in signed_in] == [303, 303]
    assert all(response.headers["location"] == "/" for response in signed_in)


async def test_beyond_the_queue_sign_in_is_refused_at_once_with_retry_after(
    bff_url: str, gate: Gate
) -> None:
    capacity = MAX_CONCURRENT_CHECKS + MAX_WAITING_CHECKS
    codes: list[int] = []
    async with (
        browser(bff_url, ATTACKER_ADDRESS) as attacker,
        browser(bff_url, OWNER_ADDRESS) as owner,
    ):

        async def guess(number: int) -> None:
            answer = await attacker.sign_in(f"guess{number}@example.com", WRONG)
            codes.append(answer.status_code)

        async def queue_full() -> bool:
            metrics = (await owner.http.get("/metrics")).text
            checks = _gauge(metrics, "bff_password_checks")
            return checks == capacity and gate.running == MAX_CONCURRENT_CHECKS

        async with anyio.create_task_group() as group:
            for number in range(capacity):
                group.start_soon(guess, number)
            await wait_until(queue_full)
            with anyio.fail_after(DEADLINE):
                busy = await owner.sign_in(OWNER, PASSWORD)
            assert codes == []  # answered while every admitted attempt was still held
            gate.open()
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == str(BUSY_RETRY_AFTER)
        message = "Too many people are signing in right now. Please try again in 2 seconds."
        assert message in busy.text
        assert 'name="email"' in busy.text  # the sign-in page, ready to try again
        assert codes == [400] * capacity
        assert gate.calls == capacity
        assert (await owner.sign_in(OWNER, PASSWORD)).status_code == 303  # once it drained
        metrics = (await owner.http.get("/metrics")).text
    assert 'bff_login_attempts_total{method="password",outcome="busy"} 1.0' in metrics
    assert _gauge(metrics, "bff_password_checks") == 0


def _gauge(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found, metrics
    return float(found.group(1))


async def _client_address(request: Request) -> Response:
    return PlainTextResponse(request.client.host if request.client else "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
