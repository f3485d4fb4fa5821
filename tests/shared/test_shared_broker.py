"""Brokers of several instances sharing one Redis: one vendor call per key for all.

Each broker is a simulated instance with its own RedisLink and cache; they share the
in-process demo vendor, which counts every call.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import anyio
import httpx2
import pytest
from prometheus_client import CollectorRegistry

from bff.broker.broker import ConnectionLoader, TokenBroker
from bff.broker.connectors import AnyConnector, HeaderExchangeConnector
from bff.broker.connectors.oauth2 import OAuth2ClientCredentialsConnector
from bff.broker.metrics import BrokerMetrics
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import ManualClock
from bff.crypto import SecretBox
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.errors import UpstreamRejected
from bff.shared.redis_link import RedisLink
from bff.shared.token_cache import RedisTokenCache
from tests.broker.conftest import VENDOR, FakeSleep, Gate
from tests.conftest import random_key
from tests.shared.conftest import BROADCAST_DEADLINE, OpenLink
from tests.shared.test_token_cache import Heard

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

A = TokenScope("default", "acme", "emea")
LIFE = 24 * 60 * 60.0

MakeInstance = Callable[..., TokenBroker]


class Grants(httpx2.AsyncBaseTransport):
    """Passes requests on; remembers the ``grant_type`` of every OAuth2 token request."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token":
            form = parse_qs((await request.aread()).decode())
            self.seen.extend(form.get("grant_type", []))
        return await self._inner.handle_async_request(request)


@pytest.fixture
def gate(vendor: VendorConfig) -> Gate:
    return Gate(httpx2.ASGITransport(create_vendor_app(vendor)))


@pytest.fixture
def grants(gate: Gate) -> Grants:
    return Grants(gate)


@pytest.fixture
async def instances(grants: Grants, clock: ManualClock) -> AsyncIterator[MakeInstance]:
    box = SecretBox([random_key()])
    made: list[TokenBroker] = []
    async with httpx2.AsyncClient(transport=grants) as client:

        def make(
            link: RedisLink, connector: AnyConnector, loader: ConnectionLoader | None = None
        ) -> TokenBroker:
            broker = TokenBroker(
                {"default": connector},
                client,
                BrokerMetrics(CollectorRegistry()),
                clock,
                cache=RedisTokenCache(link, box, clock),
                sleep=FakeSleep(clock),
                rng=random.Random(len(made)),
                background=False,
                loader=loader,
            )
            made.append(broker)
            return broker

        yield make
        for broker in made:
            await broker.aclose()


def header_exchange(vendor: VendorConfig) -> HeaderExchangeConnector:
    return HeaderExchangeConnector(VENDOR, vendor.api_key, vendor.api_secret)


def cache_of(broker: TokenBroker) -> RedisTokenCache:
    cache = broker._cache
    assert isinstance(cache, RedisTokenCache)
    return cache


async def test_concurrent_gets_on_two_instances_make_one_vendor_call(
    open_link: OpenLink, instances: MakeInstance, vendor: VendorConfig, gate: Gate
) -> None:
    first = instances(await open_link(), header_exchange(vendor))
    second = instances(await open_link(), header_exchange(vendor))
    got: list[VendorToken] = []

    async def get(broker: TokenBroker) -> None:
        got.append(await broker.get(A))

    async with anyio.create_task_group() as group:
        gate.hold_next()
        for _ in range(5):
            group.start_soon(get, first)
        await gate.arrived.wait()  # the first instance holds the lock, its call is out
        contended = cache_of(second).locks.contended
        for _ in range(5):
            group.start_soon(get, second)
        await contended.wait()  # the second instance waits on the lock, not the vendor
        gate.release()
    assert vendor.statuses == {200: 1}
    assert len(got) == 10 and len({token.value for token in got}) == 1


async def test_refresh_ahead_happens_once_across_the_fleet(
    open_link: OpenLink, instances: MakeInstance, vendor: VendorConfig, clock: ManualClock
) -> None:
    first = instances(await open_link(), header_exchange(vendor))
    second = instances(await open_link(), header_exchange(vendor))
    old = await first.get(A)
    assert await second.get(A) == old  # read back from Redis, equal field by field
    clock.advance(0.9 * LIFE)  # past both instances' refresh times, still valid
    assert await first.get(A) == old and await second.get(A) == old
    assert await first.refresh_due() == 1
    assert await second.refresh_due() == 1  # re-reads under the lock and adopts
    assert vendor.statuses == {200: 2}
    new = await first.get(A)
    assert new != old and await second.get(A) == new
    assert second.cached() == [(A, new.expires_at)]


async def test_renewals_use_the_latest_refresh_token_whoever_obtained_it(
    open_link: OpenLink,
    instances: MakeInstance,
    vendor: VendorConfig,
    clock: ManualClock,
    grants: Grants,
) -> None:
    # The demo vendor's refresh tokens are single-use: a stale one is answered 400.
    def oauth2() -> OAuth2ClientCredentialsConnector:
        return OAuth2ClientCredentialsConnector(VENDOR, vendor.api_key, vendor.api_secret, clock)

    first = instances(await open_link(), oauth2())
    second = instances(await open_link(), oauth2())
    await first.get(A)  # client credentials; the first instance holds refresh token R1
    await second.get(A)
    for refresher, other in ((first, second), (second, first), (first, second)):
        clock.advance(0.9 * LIFE)
        await refresher.get(A)  # wanted again: due for renewal
        await other.get(A)
        assert await refresher.refresh_due() == 1
        assert await other.refresh_due() == 1  # adopts the renewed token
    # One grant, then three renewals, each with the latest refresh token, read from Redis
    # after taking the lock: R1 by the first, R2 (the first's) by the second, R3 (the
    # second's) by the first, whose own R2 was used up meanwhile.
    assert grants.seen == ["client_credentials"] + 3 * ["refresh_token"]
    assert vendor.statuses == {200: 4}


async def test_a_connection_saved_on_one_instance_is_reloaded_on_the_others(
    open_link: OpenLink, instances: MakeInstance, vendor: VendorConfig
) -> None:
    loaded: list[str] = []

    async def loader(connection_id: str) -> AnyConnector | None:
        loaded.append(connection_id)
        return HeaderExchangeConnector(VENDOR, vendor.api_key, "the-new-wrong-secret")

    first = instances(await open_link(), header_exchange(vendor))
    other_link = await open_link()
    second = instances(other_link, header_exchange(vendor), loader)
    heard = Heard(other_link)  # after the cache's handler: runs once the reload is done
    await other_link.listening()
    await second.get(A)
    await first.replace_connection(
        "default", HeaderExchangeConnector(VENDOR, vendor.api_key, "the-new-wrong-secret")
    )
    await first.announce_connection("default")
    while not loaded:  # the purge's message may come first
        await heard.wait()
    assert loaded == ["default"]
    with pytest.raises(UpstreamRejected):
        await second.get(A)  # its token went with the old connector
    assert vendor.statuses == {200: 1, 403: 1}


async def test_an_instance_starting_up_keeps_the_fleets_tokens(
    open_link: OpenLink, instances: MakeInstance, vendor: VendorConfig
) -> None:
    first = instances(await open_link(), header_exchange(vendor))
    token = await first.get(A)
    # As the lifespan does with each stored connection, before serving anything.
    starting = instances(await open_link(), header_exchange(vendor))
    await starting.replace_connection("default", header_exchange(vendor))
    assert await starting.get(A) == token
    assert vendor.statuses == {200: 1}
    # Once serving, a replacement means new credentials: gone for every instance.
    await starting.replace_connection("default", header_exchange(vendor))
    shared = cache_of(first)
    assert await shared._link.client.exists(shared._key(A, "token")) == 0


async def test_a_connection_saved_before_serving_still_drops_the_fleets_tokens(
    open_link: OpenLink, instances: MakeInstance, vendor: VendorConfig
) -> None:
    first = instances(await open_link(), header_exchange(vendor))
    await first.get(A)
    admin = instances(await open_link(), header_exchange(vendor))  # has served nothing
    # What saving a connection does (bff.operations.connections.save_connection).
    await admin.replace_connection("default", header_exchange(vendor))
    await admin.announce_connection("default")
    shared = cache_of(first)
    assert await shared._link.client.exists(shared._key(A, "token")) == 0


async def test_a_renewal_read_after_a_reconnect_emptied_memory_is_adopted_not_renewed(
    open_link: OpenLink, instances: MakeInstance, vendor: VendorConfig, clock: ManualClock
) -> None:
    # bench/scale.py's duplicate renewal: the second instance scheduled its refresh for
    # the old token, then lost its memory (a Redis timeout under load, a reconnect) after
    # the first renewed; its refresh then read the new token back as the one to replace.
    first = instances(await open_link(), header_exchange(vendor))
    second_link = await open_link()
    second = instances(second_link, header_exchange(vendor))
    old = await first.get(A)
    assert await second.get(A) == old
    clock.advance(0.9 * LIFE)  # past both instances' refresh times, still valid
    await first.get(A)
    await second.get(A)
    assert await first.refresh_due() == 1
    new = await first.get(A)
    assert new != old
    second_link.lost(ConnectionError("timed out"))  # reconnects at once: memory is dropped
    await second_link.wait_until("connected")
    assert await second.refresh_due() == 1
    assert vendor.statuses == {200: 2}
    assert await second.get(A) == new
    assert second.cached() == [(A, new.expires_at)]


async def test_requests_during_a_renewal_get_the_valid_token_without_waiting(
    open_link: OpenLink,
    instances: MakeInstance,
    vendor: VendorConfig,
    clock: ManualClock,
    gate: Gate,
) -> None:
    # "No request waits on the vendor": while one instance's renewal holds the key's
    # lock and its call is out, both instances keep serving the still-valid token.
    first = instances(await open_link(), header_exchange(vendor))
    second = instances(await open_link(), header_exchange(vendor))
    old = await first.get(A)
    assert await second.get(A) == old
    clock.advance(0.9 * LIFE)
    await first.get(A)  # wanted again: due for renewal
    gate.hold_next()
    assert await first.refresh_due(wait=False) == 1
    await gate.arrived.wait()  # the renewal holds the lock; its vendor call is held
    with anyio.fail_after(BROADCAST_DEADLINE):  # a request waiting would hang here
        assert await first.get(A) == old
        assert await second.get(A) == old
    assert vendor.statuses == {200: 1}  # the renewal's call is not answered yet
    gate.release()
    await first.wait_idle()
    new = await first.get(A)
    assert new != old
    assert await second.refresh_due() == 1  # adopts it
    assert await second.get(A) == new
    assert vendor.statuses == {200: 2}
