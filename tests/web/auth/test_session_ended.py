"""A session that ends while its request runs (signed out in another tab, revoked) gets
the sign-in page, never a 500. Each test holds the request on an event at the point
where the race bites, signs out in a second tab meanwhile, then lets it finish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.settings import Settings
from bff.web.auth.access import Pair
from bff.web.auth.guard import require_session
from bff.web.services import services
from tests.web.dashboard.fixtures import RecordingVendor, dashboard_app, sign_in_analyst
from tests.web.helpers import (
    add_probe_routes,
    call,
    form_token,
    other_browser,
    services_of,
    session_cookie,
)

EXPIRED = "/login?reason=expired"
CLEARED = "__Host-bff_session=; Path=/; Max-Age=0"


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    app = dashboard_app(settings, clock, vendor, "post")
    add_probe_routes(app)

    async def switch_after_revoke(request: Request) -> Response:
        session = require_session(request)
        sessions = services(request).sessions
        await sessions.revoke(session.id)
        await sessions.set_scope(session.id, ("acme", "north"))
        return PlainTextResponse("switched")

    app.router.routes.append(Route("/api/_probe/scope", switch_after_revoke, methods=["POST"]))
    return app


class Hold:
    """Holds one call of an async method of an app service on events, on the app's loop."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

        async def events() -> tuple[anyio.Event, anyio.Event]:
            return anyio.Event(), anyio.Event()

        self.reached, self.release = call(client, events)
        self._armed = True

    def wrap(
        self, method: Callable[[int, Pair], Awaitable[bool]]
    ) -> Callable[[int, Pair], Awaitable[bool]]:
        async def held(user_id: int, pair: Pair) -> bool:
            answer = await method(user_id, pair)
            if self._armed:
                self._armed = False
                self.reached.set()
                await self.release.wait()
            return answer

        return held

    def wrap_pairs(
        self, method: Callable[[int], Awaitable[tuple[Pair, ...]]]
    ) -> Callable[[int], Awaitable[tuple[Pair, ...]]]:
        async def held(user_id: int) -> tuple[Pair, ...]:
            answer = await method(user_id)
            if self._armed:
                self._armed = False
                self.reached.set()
                await self.release.wait()
            return answer

        return held

    def wait_reached(self) -> None:
        call(self.client, self.reached.wait)

    def let_go(self) -> None:
        async def release() -> None:
            self.release.set()

        call(self.client, release)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def sign_out_in_another_tab(client: TestClient, token: str) -> None:
    tab = other_browser(client)
    tab.cookies = client.cookies  # same browser, same cookie; a copy of the jar
    response = tab.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?reason=signed-out"


def while_held(
    client: TestClient, hold: Hold, pool: ThreadPoolExecutor, request: Callable[[], httpx2.Response]
) -> httpx2.Response:
    """Run ``request`` in its own thread until it reaches the hold, sign out in another
    tab, then let the request finish; its response."""
    token = client.get("/_probe/token").text
    running: Future[httpx2.Response] = pool.submit(request)
    try:
        hold.wait_reached()
        sign_out_in_another_tab(client, token)
    finally:
        hold.let_go()
    return running.result()


def test_signing_out_during_a_scope_switch_gives_the_sign_in_page(
    client: TestClient, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held after the mapping check allowed the pair, just before the switch is stored."""
    sign_in_analyst(client)
    token = form_token(client.get("/").text)
    mappings = services_of(client).mappings
    hold = Hold(client)
    monkeypatch.setattr(mappings, "allows", hold.wrap(mappings.allows))

    response = while_held(
        client,
        hold,
        pool,
        lambda: client.post("/scope", data={"scope": "globex/emea", "csrf_token": token}),
    )
    assert response.status_code == 303
    assert response.headers["location"] == EXPIRED
    assert CLEARED in response.headers["set-cookie"]
    assert session_cookie(client) is None
    assert "Your session has ended. Please sign in again." in client.get(EXPIRED).text


@pytest.mark.parametrize(
    ("path", "location"),
    [("/", EXPIRED), ("/?view=weekly", "/login?next=%2F%3Fview%3Dweekly&reason=expired")],
)
def test_signing_out_during_the_first_dashboard_view_gives_the_sign_in_page(
    client: TestClient,
    vendor: RecordingVendor,
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    location: str,
) -> None:
    """The first view after sign-in stores the first mapped pair as the active one; held
    after the mappings were read, just before that."""
    sign_in_analyst(client)
    mappings = services_of(client).mappings
    hold = Hold(client)
    monkeypatch.setattr(mappings, "pairs", hold.wrap_pairs(mappings.pairs))

    response = while_held(client, hold, pool, lambda: client.get(path))
    assert response.status_code == 303
    assert response.headers["location"] == location
    assert CLEARED in response.headers["set-cookie"]
    assert session_cookie(client) is None
    assert vendor.requests == []  # no vendor token for a session that has ended


def test_an_api_client_whose_session_ends_gets_a_401_problem(client: TestClient) -> None:
    sign_in_analyst(client)
    response = client.post("/api/_probe/scope")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Your session has ended. Sign in again."
    assert CLEARED in response.headers["set-cookie"]
    assert session_cookie(client) is None
