"""``GET /`` goes from bff's pipeline straight to the dashboard's endpoint, past
Starlette's exception layer and the router's walk; it answers exactly as the usual way
does, errors included, and only when the router would have picked that endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.settings import Settings
from bff.web.dashboard.page import DashboardPage
from bff.web.request_pipeline import RequestPipeline, _Direct
from tests.web.conftest import PUBLIC_URL
from tests.web.dashboard.fixtures import RecordingVendor, dashboard_app, sign_in_analyst
from tests.web.helpers import services_of, session_cookie

# What differs between two answers to the same request: the nonce, the request id, and
# the CSRF token (the pre-session cookie's, fresh per answer).
_VARIES = re.compile(r"[0-9a-f]{32}|[0-9a-f]{16}|[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_.\-]+")


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return dashboard_app(settings, clock, vendor, "post")


def pipeline(client: TestClient) -> RequestPipeline:
    layer = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, RequestPipeline):
        layer = layer.app
    return layer


class RouterCalls:
    """Counts the requests that reach the router."""

    def __init__(self, router: Router) -> None:
        self.paths: list[str] = []
        self._inner = router.middleware_stack
        router.middleware_stack = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await self._inner(scope, receive, send)


def answer(response: httpx2.Response) -> tuple[int, list[tuple[str, str]], str]:
    headers = sorted(
        (name, _VARIES.sub("…", value))
        for name, value in response.headers.multi_items()
        if name != "date"
    )
    return response.status_code, headers, _VARIES.sub("…", response.text)


def both_ways(
    client: TestClient, method: str = "GET", headers: dict[str, str] | None = None
) -> list[tuple[int, list[tuple[str, str]], str]]:
    """The same request answered the direct way, then through the router."""
    layer = pipeline(client)
    direct = layer.direct
    assert direct is not None
    answers = [answer(client.request(method, "/", headers=headers))]
    layer.direct = None
    try:
        answers.append(answer(client.request(method, "/", headers=headers)))
    finally:
        layer.direct = direct
    return answers


def test_get_slash_skips_the_router_and_other_requests_do_not(client: TestClient) -> None:
    client.get("/healthz")  # builds the middleware stack
    calls = RouterCalls(client.app.router)  # type: ignore[attr-defined]
    direct = pipeline(client).direct
    assert direct is not None and direct.route.name == "dashboard:index"
    signed_out = client.get("/")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
    client.head("/")
    client.get("/healthz")
    assert calls.paths == ["/", "/healthz"]  # the HEAD and the health check


def test_signed_out_and_forged_cookies_are_answered_alike(client: TestClient) -> None:
    client.get("/healthz")
    first, second = both_ways(client)
    assert first == second and first[0] == 303
    client.cookies.set("__Host-bff_session", "forged.signature")
    first, second = both_ways(client)
    assert first == second and first[0] == 303


def test_the_signed_in_page_is_answered_alike(client: TestClient) -> None:
    sign_in_analyst(client)
    client.get("/")
    first, second = both_ways(client)
    assert first == second and first[0] == 200
    head, head_routed = both_ways(client, "HEAD")
    assert head == head_routed and head[0] == 200


def test_the_vendors_errors_reach_the_same_handlers(
    client: TestClient, vendor: RecordingVendor
) -> None:
    sign_in_analyst(client)
    vendor.config.fault = Fault.rate_limit("7")
    first, second = both_ways(client)
    assert first == second and first[0] == 503
    services_of(client).broker._keys.clear()
    vendor.config.fault = Fault("forbidden")
    first, second = both_ways(client)
    assert first == second and first[0] == 502
    vendor.config.fault = None


def test_a_user_without_mappings_is_answered_alike(client: TestClient) -> None:
    sign_in_analyst(client, pairs=())
    first, second = both_ways(client)
    assert first == second and first[0] == 403


def test_an_ended_session_is_answered_alike(
    client: TestClient, clock: ManualClock, settings: Settings
) -> None:
    sign_in_analyst(client)
    client.get("/")
    cookie = session_cookie(client)
    clock.advance(settings.session_idle_seconds + 1)
    # Sent again as it was: the first answer deletes it.
    client.cookies.clear()
    first, second = both_ways(client, headers={"cookie": f"__Host-bff_session={cookie}"})
    assert first == second and first[0] == 303
    assert dict(first[1])["location"] == "/login?reason=expired"


# The route the router would pick, and only a plain ASGI endpoint's, goes direct.


async def page(request: Request) -> Response:
    return PlainTextResponse("page")


class Endpoint:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("endpoint")(scope, receive, send)


def found(*routes: Route | Mount) -> _Direct | None:
    return _Direct.find(ExceptionMiddleware(Router(list(routes))))


def test_only_the_routers_own_choice_goes_direct() -> None:
    endpoint = Endpoint()
    chosen = found(Route("/", endpoint, methods=["GET"]), Route("/", page))
    assert chosen is not None and chosen.endpoint is endpoint
    assert found(Route("/", page), Route("/", endpoint)) is None  # a route function
    assert found(Route("/other", page), Route("/", endpoint)) is not None
    # An earlier route matching "/" some other way is the router's choice, or may be.
    assert found(Route("/", page, methods=["POST"]), Route("/", endpoint)) is None
    assert found(Route("/{rest:path}", page), Route("/", endpoint)) is None
    assert found(Mount("/", routes=[Route("/", page)]), Route("/", endpoint)) is None
    assert found(Route("/{rest:path}", endpoint)) is None  # path parameters
    assert _Direct.find(Router([Route("/", endpoint)])) is None  # no exception layer


class Failing:
    """An endpoint that fails before its response starts, or after."""

    def __init__(self, error: Exception, *, after_start: bool = False) -> None:
        self.error = error
        self.after_start = after_start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise self.error


@pytest.fixture
def failing(app: Starlette) -> Iterator[tuple[TestClient, Failing]]:
    endpoint = Failing(HTTPException(418, "short and stout"))
    app.router.routes.insert(0, Route("/", endpoint, methods=["GET"]))
    with TestClient(
        app, base_url=PUBLIC_URL, follow_redirects=False, raise_server_exceptions=False
    ) as client:
        client.get("/healthz")
        assert pipeline(client).direct is not None
        assert pipeline(client).direct.endpoint is endpoint  # type: ignore[union-attr]
        yield client, endpoint


def test_a_handled_error_gets_the_apps_handler(failing: tuple[TestClient, Failing]) -> None:
    client, _endpoint = failing
    first, second = both_ways(client)
    assert first == second and first[0] == 418
    assert "short and stout" in first[2]


def test_an_unhandled_error_is_the_apps_500_page(failing: tuple[TestClient, Failing]) -> None:
    client, endpoint = failing
    endpoint.error = LookupError("nobody handles this")
    first, second = both_ways(client)
    assert first == second and first[0] == 500
    assert "content-security-policy" in dict(first[1])
    assert "nobody handles this" not in first[2]


@pytest.mark.parametrize("error", [HTTPException(418), LookupError("unhandled")])
def test_an_error_after_the_response_started_sends_nothing_more(
    failing: tuple[TestClient, Failing], error: Exception
) -> None:
    client, endpoint = failing
    endpoint.error, endpoint.after_start = error, True
    first, second = both_ways(client)
    assert first == second
    assert (first[0], first[2]) == (200, "partial")


def test_the_dashboard_endpoint_is_a_plain_asgi_app(client: TestClient) -> None:
    client.get("/healthz")
    direct = pipeline(client).direct
    assert direct is not None and isinstance(direct.endpoint, DashboardPage)
    assert direct.app is direct.endpoint
