"""bff's per-request layers: the request context and the pipeline of bff's origin share
one ``send`` wrapper when nothing sits between them, and answer the same either way."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings
from bff.web.middleware import RequestContextMiddleware
from bff.web.request_pipeline import RequestPipeline
from tests.web.conftest import PUBLIC_URL


class PassThrough:
    """Stands where the proxy origin's dispatch goes (just inside the request context)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def own_request_id(request: Request) -> Response:
    return PlainTextResponse("own", headers={"X-Request-ID": "route-chosen-id"})


def _with_routes(app: Starlette) -> Starlette:
    app.router.routes.insert(0, Route("/_own_id", own_request_id))
    return app


@pytest.fixture
def apart(settings: Settings, clock: ManualClock) -> Iterator[TestClient]:
    """bff with a layer between the request context and the pipeline."""
    app = _with_routes(create_app(settings, clock=clock))
    app.user_middleware.insert(1, Middleware(PassThrough))
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        yield client


@pytest.fixture
def fused(app: Starlette, client: TestClient) -> TestClient:
    _with_routes(app)
    return client


def _layers(client: TestClient) -> list[type]:
    layer = client.app.middleware_stack  # type: ignore[attr-defined]
    found = []
    while layer is not None and not isinstance(layer, Starlette):
        found.append(type(layer))
        layer = getattr(layer, "app", None)
    return found


def _shape(response: httpx2.Response) -> tuple[int, list[str]]:
    names = sorted(name for name, _ in response.headers.multi_items())
    return response.status_code, names


def test_the_layers_are_adjacent_by_default_and_apart_with_a_dispatch(
    fused: TestClient, apart: TestClient
) -> None:
    fused.get("/healthz")
    apart.get("/healthz")
    pipeline = _layers(fused).index(RequestPipeline)
    assert _layers(fused)[pipeline - 1] is RequestContextMiddleware
    assert _layers(apart)[pipeline : pipeline + 2] == [PassThrough, RequestPipeline]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/healthz", {}),
        ("GET", "/login", {}),  # mints a pre-session cookie
        ("GET", "/nowhere", {}),
        ("GET", "/_own_id", {"X-Request-ID": "client-chosen-id"}),
        ("POST", "/login", {"Origin": "https://evil.example"}),  # refused as cross-site
        ("GET", "/", {"Cookie": "__Host-bff_session=forged.signature"}),
    ],
)
def test_both_arrangements_answer_alike(
    fused: TestClient, apart: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    answers = [client.request(method, path, headers=headers) for client in (fused, apart)]
    assert _shape(answers[0]) == _shape(answers[1])
    for response in answers:
        assert len(response.headers.get_list("x-request-id")) == 1
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in response.headers


def test_the_route_cannot_choose_the_request_id(fused: TestClient) -> None:
    kept = fused.get("/_own_id", headers={"X-Request-ID": "client-chosen-id"})
    fresh = fused.get("/_own_id")
    assert kept.headers.get_list("x-request-id") == ["client-chosen-id"]
    (generated,) = fresh.headers.get_list("x-request-id")
    assert generated != "route-chosen-id" and len(generated) == 16
