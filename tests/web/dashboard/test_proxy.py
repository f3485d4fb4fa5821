"""The proxy on its own: a tiny app with the proxy mounted, in front of a recording fake
vendor served for real on 127.0.0.1, reached by the production client (aiohttp).

Bounds, deadlines and the vendor-401 retry are in ``test_proxy_bounds.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.testclient import TestClient

from bff.demo.server import serve_in_thread
from bff.resources import static_dir
from bff.web.dashboard.proxy import Authorize, Grant, VendorProxy
from bff.web.dashboard.proxy_limits import ProxyLimits
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.upstream_client import UpstreamClient, open_upstream
from bff.web.dashboard.vendor_target import VendorTarget
from bff.web.errors import EXCEPTION_HANDLERS
from bff.web.template_helpers import create_templates
from tests.test_serve import free_port

TOKEN = "vendor-token-for-acme-north"
PAIR = ("acme", "north")


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request as it reached the vendor."""

    method: str
    raw_path: bytes  # with the query
    headers: Headers
    body: bytes


@dataclasses.dataclass
class FakeVendor:
    """Records every request that reached it; answers by path."""

    seen: list[Seen] = dataclasses.field(default_factory=list)

    @property
    def bodies(self) -> list[bytes]:
        return [request.body for request in self.seen]

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self._answer, methods=methods)])

    async def _answer(self, request: Request) -> Response:
        raw_path = request.scope["raw_path"]
        if request.scope["query_string"]:
            raw_path += b"?" + request.scope["query_string"]
        self.seen.append(Seen(request.method, raw_path, request.headers, await request.body()))
        path = request.url.path
        if path == "/dashboard/redirect-inside":
            return Response(status_code=302, headers={"Location": "/dashboard/landing?x=1"})
        if path.endswith("/redirect-up"):
            # Relative, but above the dashboard's directory.
            return Response(status_code=302, headers={"Location": "../api/x"})
        if path == "/dashboard/redirect-outside":
            return Response(status_code=302, headers={"Location": "https://evil.example/steal"})
        if path == "/dashboard/stream":
            return StreamingResponse(
                _chunks(b"chunk0;", b"chunk1;", b"chunk2;"), media_type="text/plain"
            )
        response = Response(b"<h1>vendor page</h1>", media_type="text/html")
        for name, value in (
            ("Set-Cookie", "vendor_session=abc; Path=/"),
            ("Clear-Site-Data", '"cookies"'),
            ("Strict-Transport-Security", "max-age=1"),
            (
                "Content-Security-Policy",
                "frame-ancestors https://vendor.example; script-src 'self'",
            ),
            ("X-Frame-Options", "DENY"),
            ("ETag", '"v1"'),
        ):
            response.headers.append(name, value)
        return response


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def grant(authorization: str = f"Bearer {TOKEN}", **fields: object) -> Grant:
    async def renew() -> None:
        pass

    values: dict[str, object] = {
        "session_id": "session-1",
        "user_id": 1,
        "pair": PAIR,
        "authorization": authorization,
        "renew": renew,
    }
    values.update(fields)
    return Grant(**values)  # type: ignore[arg-type]


async def allow(request: Request) -> Grant | Response:
    return grant()


async def deny(request: Request) -> Grant | Response:
    return PlainTextResponse("sign in first", status_code=401)


@dataclasses.dataclass
class ProxyServices:
    """The part of :class:`~bff.web.services.Services` the proxy uses."""

    http: UpstreamClient
    templates: Jinja2Templates


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor()


@pytest.fixture
def vendor_url(vendor: FakeVendor) -> Iterator[str]:
    with serve_in_thread(vendor.app()) as url:
        yield url


@pytest.fixture
def target(vendor_url: str) -> VendorTarget:
    return VendorTarget.from_dashboard_url(f"{vendor_url}/dashboard/")


def _app(target: VendorTarget, authorize: Authorize = allow) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, ProxyServices]]:
        async with open_upstream(ProxyLimits()) as http:
            yield {"services": ProxyServices(http, create_templates())}

    return Starlette(
        routes=[
            Mount("/vendor", app=VendorProxy(target, authorize, ProxyMetrics(CollectorRegistry()))),
            Mount("/static", StaticFiles(directory=static_dir()), name="static"),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


@pytest.fixture
def client(target: VendorTarget) -> Iterator[TestClient]:
    with TestClient(_app(target)) as client:
        yield client


def raw_get(client: TestClient, raw_path: bytes, **kwargs: object) -> httpx2.Response:
    """A request whose path is sent exactly as given, without client-side normalisation."""
    url = httpx2.URL("http://testserver").copy_with(raw_path=raw_path)
    return client.get(url, **kwargs)  # type: ignore[arg-type]


def test_forwards_to_the_vendor_directory_with_the_token(
    client: TestClient, vendor: FakeVendor
) -> None:
    response = client.get("/vendor/page?tab=2")
    assert response.status_code == 200
    assert response.text == "<h1>vendor page</h1>"
    (sent,) = vendor.seen
    assert sent.raw_path == b"/dashboard/page?tab=2"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"


def test_browser_credentials_and_tenant_headers_are_not_forwarded(
    client: TestClient, vendor: FakeVendor, vendor_url: str
) -> None:
    client.cookies.set("__Host-bff_session", "browser-session")
    client.get(
        "/vendor/page",
        headers={
            "Authorization": "Bearer browser-supplied",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "X-Api-Key": "k",
            "X-Api-Secret": "s",
            "X-Tenant-Id": "globex",
            "X-Sub-Tenant-Id": "apac",
            "X-Forwarded-For": "10.0.0.1",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "host=evil.example",
            "Origin": "http://testserver",
            "Referer": "http://testserver/?secret=1",
            "Connection": "keep-alive, Accept-Language",
            "Accept-Language": "fr",
            "TE": "trailers",
            "Upgrade": "websocket",
            "Accept": "text/html",
            "Accept-Encoding": "identity",
        },
    )
    (sent,) = vendor.seen
    names = {name.lower() for name in sent.headers}
    for forbidden in (
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "x-api-secret",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
        "origin",
        "referer",
        "te",
        "upgrade",
        "accept-language",  # named in Connection: hop-by-hop
    ):
        assert forbidden not in names
    assert sent.headers.getlist("authorization") == [f"Bearer {TOKEN}"]
    # The browser's tenant headers are gone; the grant's pair took their place.
    assert sent.headers.getlist("x-tenant-id") == ["acme"]
    assert sent.headers.getlist("x-sub-tenant-id") == ["north"]
    assert sent.headers["host"] == vendor_url.removeprefix("http://")
    assert sent.headers["accept"] == "text/html"
    # The browser's, not the client library's own.
    assert sent.headers.getlist("accept-encoding") == ["identity"]
    assert sent.headers.getlist("user-agent") == ["testclient"]


def test_the_pair_is_pinned_whatever_the_browser_sends(
    client: TestClient, vendor: FakeVendor
) -> None:
    client.get(
        "/vendor/page",
        headers=[
            ("X-Tenant-Id", "globex"),
            ("X-Tenant-Id", "initech"),
            ("X-Sub-Tenant-Id", "apac"),
            ("Connection", "x-tenant-id"),
        ],
    )
    (sent,) = vendor.seen
    assert sent.headers.getlist("x-tenant-id") == ["acme"]
    assert sent.headers.getlist("x-sub-tenant-id") == ["north"]


def test_the_grants_authorization_goes_out_verbatim(
    vendor: FakeVendor, target: VendorTarget
) -> None:
    """A static key presented as HTTP Basic (seed 002) goes out as the broker spelled it."""
    basic = "Basic ZGVtby11c2VyOmRlbW8ta2V5"

    async def basic_grant(request: Request) -> Grant | Response:
        return grant(basic)

    with TestClient(_app(target, authorize=basic_grant)) as client:
        client.get("/vendor/page", headers={"Authorization": "Bearer browser-supplied"})
    (sent,) = vendor.seen
    assert sent.headers.getlist("authorization") == [basic]


def test_vendor_cookies_and_site_wide_headers_do_not_reach_the_browser(
    client: TestClient,
) -> None:
    response = client.get("/vendor/page")
    for dropped in ("set-cookie", "clear-site-data", "strict-transport-security"):
        assert dropped not in response.headers
    assert response.headers["etag"] == '"v1"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("content-security-policy") == [
        "script-src 'self'",
        "frame-ancestors 'self'",
    ]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert not client.cookies


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/vendor/..",
        b"/vendor/../api/v1/partner/dashboard/auth/token",
        b"/vendor/%2e%2e/api/",
        b"/vendor/%2E%2E%2Fapi",
        b"/vendor/%252e%252e/api/",
        b"/vendor/..;/api/",
        b"/vendor/a%2f..%2f..%2fapi",
        b"/vendor/%5c%5cevil.example/",
        b"/vendor/\\\\evil.example/",
        b"/vendor//evil.example/",
        b"/vendor/http://evil.example/",
        b"/vendor/https:%2f%2fevil.example/",
        b"/%76endor/page",
    ],
)
def test_ssrf_variants_reach_no_host(
    client: TestClient, vendor: FakeVendor, raw_path: bytes
) -> None:
    response = raw_get(client, raw_path)
    assert response.status_code in (400, 404)
    assert vendor.seen == []
    assert "evil.example" not in response.headers.get("location", "")


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/vendor/@evil.example/x",
        b"/vendor/x@evil.example",
        b"/vendor/page?url=http://evil.example/",
    ],
)
def test_host_like_paths_still_go_to_the_vendor(
    client: TestClient, vendor: FakeVendor, vendor_url: str, raw_path: bytes
) -> None:
    raw_get(client, raw_path)
    (sent,) = vendor.seen
    assert sent.headers["host"] == vendor_url.removeprefix("http://")
    assert sent.raw_path == b"/dashboard/" + raw_path.removeprefix(b"/vendor/")


def test_browser_host_header_is_ignored(
    client: TestClient, vendor: FakeVendor, vendor_url: str
) -> None:
    raw_get(client, b"/vendor/page", headers={"Host": "evil.example"})
    (sent,) = vendor.seen
    assert sent.raw_path == b"/dashboard/page"
    assert sent.headers["host"] == vendor_url.removeprefix("http://")


def test_redirects_stay_under_the_prefix(client: TestClient, vendor: FakeVendor) -> None:
    inside = client.get("/vendor/redirect-inside", follow_redirects=False)
    assert inside.status_code == 302
    assert inside.headers["location"] == "/vendor/landing?x=1"
    outside = client.get("/vendor/redirect-outside", follow_redirects=False)
    assert outside.status_code == 502
    assert "location" not in outside.headers
    assert "evil.example" not in outside.text
    assert outside.headers["content-security-policy"].endswith("frame-ancestors 'self'")


def test_bodies_stream_both_ways(client: TestClient, vendor: FakeVendor) -> None:
    def upload() -> Iterator[bytes]:
        yield b"part1-"
        yield b"part2"

    response = client.post(
        "/vendor/stream", content=upload(), headers={"Content-Type": "text/plain"}
    )
    assert response.text == "chunk0;chunk1;chunk2;"
    assert vendor.bodies == [b"part1-part2"]
    assert vendor.seen[0].method == "POST"


def test_refused_authorization_sends_nothing(vendor: FakeVendor, target: VendorTarget) -> None:
    with TestClient(_app(target, authorize=deny)) as client:
        response = client.get("/vendor/page")
    assert response.status_code == 401
    assert vendor.seen == []


def test_unreachable_vendor_is_a_framed_page() -> None:
    nobody = VendorTarget.from_dashboard_url(f"http://127.0.0.1:{free_port()}/dashboard/")
    with TestClient(_app(nobody)) as client:
        response = client.get("/vendor/page")
    assert response.status_code == 502
    assert "could not be reached" in response.text
    assert "Traceback" not in response.text


def test_a_bodiless_request_declaring_a_length_goes_out_without_it(
    client: TestClient, vendor: FakeVendor
) -> None:
    """Else the vendor would wait for that body, or read the next request on the pooled
    connection (another user's) as its body."""
    client.request("GET", "/vendor/page", content=b"x" * 32)
    client.get("/vendor/next")
    first, following = vendor.seen
    assert "content-length" not in first.headers
    assert first.body == b""
    assert following.raw_path == b"/dashboard/next"
    assert following.headers.getlist("x-tenant-id") == ["acme"]


def test_a_small_body_goes_out_with_its_length(client: TestClient, vendor: FakeVendor) -> None:
    client.post("/vendor/page", content=b"q=1", headers={"Content-Type": "text/plain"})
    (sent,) = vendor.seen
    assert sent.body == b"q=1"
    assert sent.headers.getlist("content-length") == ["3"]
    assert "transfer-encoding" not in sent.headers


def test_the_path_and_query_reach_the_vendor_byte_for_byte(
    client: TestClient, vendor: FakeVendor
) -> None:
    """No re-encoding on the way: what the checks passed is what the vendor reads."""
    raw_get(client, b"/vendor/a%41b%7Ec%20d;v=1?x=%2F&y=%41+z")
    (sent,) = vendor.seen
    assert sent.raw_path == b"/dashboard/a%41b%7Ec%20d;v=1?x=%2F&y=%41+z"
