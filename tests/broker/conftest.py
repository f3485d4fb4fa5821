from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from prometheus_client import CollectorRegistry

from bff.broker.broker import TokenBroker
from bff.broker.connectors import (
    ApiKeyJwtConnector,
    Connector,
    HeaderExchangeConnector,
)
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig, create_vendor_app

VENDOR = "http://vendor.test"


class FakeSleep:
    """Records every wait and moves the clock instead of sleeping."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


class Gate(httpx2.AsyncBaseTransport):
    """Passes requests through, except one held after :meth:`hold_next` until :meth:`release`.

    The held request reaches the vendor only once released, so a test can change
    the world (purge a key, replace credentials) while a call is in flight.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner
        self._armed = False
        self.arrived = anyio.Event()
        self._released = anyio.Event()

    def hold_next(self) -> None:
        self._armed = True
        self.arrived = anyio.Event()
        self._released = anyio.Event()

    def release(self) -> None:
        self._released.set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._armed:
            self._armed = False
            self.arrived.set()
            await self._released.wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
def gate(vendor: VendorConfig) -> Gate:
    return Gate(httpx2.ASGITransport(create_vendor_app(vendor)))


@pytest.fixture
async def client(gate: Gate) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=gate) as client:
        yield client


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sleep(clock: ManualClock) -> FakeSleep:
    return FakeSleep(clock)


def header_exchange(vendor: VendorConfig) -> HeaderExchangeConnector:
    return HeaderExchangeConnector(VENDOR, vendor.api_key, vendor.api_secret)


def apikey_jwt(vendor: VendorConfig, *, single_use: bool = False) -> ApiKeyJwtConnector:
    return ApiKeyJwtConnector(VENDOR, vendor.api_key, single_use=single_use)


MakeBroker = Callable[..., TokenBroker]


@pytest.fixture
async def make_broker(
    vendor: VendorConfig,
    client: httpx2.AsyncClient,
    clock: ManualClock,
    registry: CollectorRegistry,
    sleep: FakeSleep,
) -> AsyncIterator[MakeBroker]:
    """Brokers on the in-process vendor, driven step by step (no background task)."""
    made: list[TokenBroker] = []

    def make(connector: Connector | None = None, **overrides: Any) -> TokenBroker:
        options: dict[str, Any] = {
            "policy": BrokerPolicy(),
            "timeout": 5.0,
            "sleep": sleep,
            "rng": random.Random(7),
            "background": False,
        }
        options.update(overrides)
        # Metrics names are unique per registry: a second broker in a test gets its own.
        metrics = BrokerMetrics(registry if not made else CollectorRegistry())
        broker = TokenBroker(
            {"default": connector or header_exchange(vendor)},
            client,
            metrics,
            clock,
            **options,
        )
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.aclose()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"connection": "default", **labels})
    return value or 0.0
