"""The proxy on its own: a tiny app with the proxy mounted, a recording fake vendor.

Bounds, deadlines and the vendor-401 retry are in ``test_proxy_bounds.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.testclient import TestClient

from bff.resources import static_dir
from bff.web.dashboard.proxy import Authorize, Grant, VendorProxy
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.vendor_target import VendorTarget
from bff.web.errors import EXCEPTION_HANDLERS
from bff.web.template_helpers import create_templates

TOKEN = "vendor-token-for-acme-north"
PAIR = ("acme", "north")
VendorHandler = Callable[[httpx2.Request], Coroutine[None, None, httpx2.Response]]


@dataclasses.dataclass
class FakeVendor:
    """Records every request that reached any host; answers by path."""

    seen: list[httpx2.Request] = dataclasses.field(default_factory=list)
    bodies: list[bytes] = dataclasses.field(default_factory=list)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        self.bodies.append(await request.aread())
        path = request.url.path
        if path == "/dashboard/redirect-inside":
            return httpx2.Response(
                302, headers={"Location": "/dashboard/landing?x=1"}, content=_chunks()
            )
        if path.endswith("/redirect-up"):
            # Relative, but above the dashboard's directory.
            return httpx2.Response(302, headers={"Location": "../api/x"}, content=_chunks())
        if path == "/dashboard/redirect-outside":
            return httpx2.Response(
                302, headers={"Location": "https://evil.example/steal"}, content=_chunks()
            )
        if path == "/dashboard/stream":
            return httpx2.Response(
                200,
                content=_chunks(b"chunk0;", b"chunk1;", b"chunk2;"),
                headers={"Content-Type": "text/plain"},
            )
        return httpx2.Response(
            200,
            # A streamed body, as from the network (a bytes body counts as already read).
            content=_chunks(b"<h1>vendor page</h1>"),
            headers=[
                ("Content-Type", "text/html"),
                ("Set-Cookie", "vendor_session=abc; Path=/"),
                ("Clear-Site-Data", '"cookies"'),
                ("Strict-Transport-Security", "max-age=1"),
                (
                    "Content-Security-Policy",
                    "frame-ancestors https://vendor.example; script-src 'self'",
                ),
                ("X-Frame-Options", "DENY"),
                ("ETag", '"v1"'),
            ],
        )


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


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor()


@dataclasses.dataclass
class ProxyServices:
    """The part of :class:`~bff.web.services.Services` the proxy uses."""

    http: httpx2.AsyncClient
    templates: Jinja2Templates


TARGET = VendorTarget.from_dashboard_url("http://vendor.test:9000/dashboard/")


def _app(
    vendor: VendorHandler, authorize: Authorize = allow, target: VendorTarget = TARGET
) -> Starlette:

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, ProxyServices]]:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(vendor)) as http:
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
def client(vendor: FakeVendor) -> Iterator[TestClient]:
    with TestClient(_app(vendor)) as client:
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
    assert str(sent.url) == "http://vendor.test:9000/dashboard/page?tab=2"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"


def test_browser_credentials_and_tenant_headers_are_not_forwarded(
    client: TestClient, vendor: FakeVendor
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
    assert sent.headers.get_list("authorization") == [f"Bearer {TOKEN}"]
    # The browser's tenant headers are gone; the grant's pair took their place.
    assert sent.headers.get_list("x-tenant-id") == ["acme"]
    assert sent.headers.get_list("x-sub-tenant-id") == ["north"]
    assert sent.headers["host"] == "vendor.test:9000"
    assert sent.headers["accept"] == "text/html"


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
    assert sent.headers.get_list("x-tenant-id") == ["acme"]
    assert sent.headers.get_list("x-sub-tenant-id") == ["north"]


def test_the_grants_authorization_goes_out_verbatim(vendor: FakeVendor) -> None:
    """A static key presented as HTTP Basic (seed 002) goes out as the broker spelled it."""
    basic = "Basic ZGVtby11c2VyOmRlbW8ta2V5"

    async def basic_grant(request: Request) -> Grant | Response:
        return grant(basic)

    with TestClient(_app(vendor, authorize=basic_grant)) as client:
        client.get("/vendor/page", headers={"Authorization": "Bearer browser-supplied"})
    (sent,) = vendor.seen
    assert sent.headers.get_list("authorization") == [basic]


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
    client: TestClient, vendor: FakeVendor, raw_path: bytes
) -> None:
    raw_get(client, raw_path)
    assert [request.url.host for request in vendor.seen] == ["vendor.test"]
    assert vendor.seen[0].url.path.startswith("/dashboard/")


def test_browser_host_header_is_ignored(client: TestClient, vendor: FakeVendor) -> None:
    raw_get(client, b"/vendor/page", headers={"Host": "evil.example"})
    assert [str(request.url) for request in vendor.seen] == [
        "http://vendor.test:9000/dashboard/page"
    ]


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


def test_refused_authorization_sends_nothing(vendor: FakeVendor) -> None:
    with TestClient(_app(vendor, authorize=deny)) as client:
        response = client.get("/vendor/page")
    assert response.status_code == 401
    assert vendor.seen == []


def test_unreachable_vendor_is_a_framed_page() -> None:
    async def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with TestClient(_app(down)) as client:
        response = client.get("/vendor/page")
    assert response.status_code == 502
    assert "could not be reached" in response.text
    assert "Traceback" not in response.text
