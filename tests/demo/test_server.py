"""The demo vendor and the broker over real sockets, as in production."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx2
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bff.broker.broker import TokenBroker
from bff.broker.connectors import HeaderExchangeConnector
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.broker.retry import Backoff
from bff.broker.scope import TokenScope
from bff.clock import SystemClock
from bff.demo.faults import Fault
from bff.demo.server import serve_in_thread
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.errors import UpstreamTimeout

A = TokenScope("default", "acme", "emea")


@pytest.fixture
def real_vendor() -> Iterator[tuple[VendorConfig, str]]:
    vendor = VendorConfig()
    with serve_in_thread(create_vendor_app(vendor)) as base_url:
        yield vendor, base_url


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as client:
        yield client


def broker_for(
    vendor: VendorConfig, base_url: str, http: httpx2.AsyncClient, **options: float
) -> TokenBroker:
    connector = HeaderExchangeConnector(base_url, vendor.api_key, vendor.api_secret)
    return TokenBroker(
        {"default": connector},
        http,
        BrokerMetrics(CollectorRegistry()),
        SystemClock(),
        policy=BrokerPolicy(retry_backoff=Backoff(0.01, 0.02, random.Random(1))),
        background=False,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.anyio
async def test_single_flight_and_dashboard_over_real_http(
    real_vendor: tuple[VendorConfig, str], http: httpx2.AsyncClient
) -> None:
    vendor, base_url = real_vendor
    vendor.latency = 0.1
    broker = broker_for(vendor, base_url, http)
    values: set[str] = set()

    async def get() -> None:
        values.add((await broker.get(A)).value)

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(get)
    await broker.aclose()
    assert len(values) == 1
    assert vendor.calls["token"] == 1
    page = await http.post(f"{base_url}/dashboard/", data={"token": values.pop()})
    assert "Insights for tenant acme / sub-tenant emea" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.anyio
async def test_read_timeout_over_real_http(
    real_vendor: tuple[VendorConfig, str], http: httpx2.AsyncClient
) -> None:
    vendor, base_url = real_vendor
    vendor.hang = 0.4  # longer than the timeout, short enough not to delay shutdown
    vendor.fault = Fault("timeout")
    broker = broker_for(vendor, base_url, http, timeout=0.2)
    with pytest.raises(UpstreamTimeout):
        await broker.get(A)
    vendor.fault = None
    await broker.aclose()
    assert vendor.calls["token"] == 3


def test_serve_in_thread_runs_any_asgi_app_with_its_lifespan() -> None:
    from contextlib import asynccontextmanager

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("up")
        yield
        events.append("down")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    with serve_in_thread(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx2.get(base_url).text == "hello"
    assert events == ["up", "down"]


def test_serve_in_thread_reports_a_failed_start() -> None:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    with (
        pytest.raises(RuntimeError, match="start-up"),
        serve_in_thread(Starlette(lifespan=broken), lifespan="on"),
    ):
        pass
