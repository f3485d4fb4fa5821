"""Caching, single-flight, purge and the public surface of TokenBroker."""

from __future__ import annotations

import anyio
import httpx2
import pytest
from prometheus_client import CollectorRegistry

from bff.broker import create_broker
from bff.broker.metrics import BrokerMetrics
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.errors import UpstreamRejected
from bff.settings import Settings, UpstreamSettings
from tests.broker.conftest import MakeBroker, sample

A = TokenScope("default", "acme", "emea")
B = TokenScope("default", "acme", "apac")


@pytest.mark.anyio
async def test_cached_until_expiry_minus_skew(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry
) -> None:
    vendor.token_lifetime = 3600
    broker = make_broker()
    first = await broker.get(A)
    clock.advance(3600 - 31)
    assert await broker.get(A) == first
    clock.advance(1)  # inside the 30 s skew margin: a new token
    second = await broker.get(A)
    assert second != first
    assert vendor.pair_calls[("acme", "emea")] == 2
    assert sample(registry, "bff_token_cache_hits_total") == 1
    assert sample(registry, "bff_token_cache_misses_total") == 2
    assert sample(registry, "bff_upstream_calls_total", outcome="ok") == 2


@pytest.mark.anyio
async def test_tuple_keys_do_not_collide(make_broker: MakeBroker, vendor: VendorConfig) -> None:
    # Joined with "-" or ":" these two pairs would be the same key.
    broker = make_broker()
    one = await broker.get(TokenScope("default", "a-b", "c"))
    two = await broker.get(TokenScope("default", "a", "b-c"))
    assert one != two
    assert vendor.pair_calls == {("a-b", "c"): 1, ("a", "b-c"): 1}


@pytest.mark.anyio
async def test_single_flight_many_waiters_one_call(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    vendor.latency = 0.05
    broker = make_broker()
    results: list[VendorToken] = []

    async def get() -> None:
        results.append(await broker.get(A))

    async with anyio.create_task_group() as group:
        for _ in range(200):
            group.start_soon(get)
    assert len(results) == 200
    assert len({r.value for r in results}) == 1
    assert vendor.calls["token"] == 1


@pytest.mark.anyio
async def test_single_flight_two_pairs_racing_each_get_their_own(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    vendor.latency = 0.05
    broker = make_broker()
    results: dict[TokenScope, set[str]] = {A: set(), B: set()}

    async def get(scope: TokenScope) -> None:
        results[scope].add((await broker.get(scope)).value)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(get, A)
            group.start_soon(get, B)
    assert len(results[A]) == len(results[B]) == 1
    assert results[A] != results[B]
    assert vendor.pair_calls == {("acme", "emea"): 1, ("acme", "apac"): 1}


@pytest.mark.anyio
async def test_a_waiter_giving_up_does_not_cancel_the_call_for_the_others(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    vendor.latency = 0.1
    broker = make_broker()
    with anyio.move_on_after(0.02):
        await broker.get(A)
    token = await broker.get(A)
    assert token.value
    assert vendor.calls["token"] == 1


@pytest.mark.anyio
async def test_bounded_upstream_concurrency_across_keys(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    vendor.latency = 0.02
    vendor.max_in_flight = 3
    broker = make_broker(max_concurrency=3)
    async with anyio.create_task_group() as group:
        for i in range(40):
            group.start_soon(broker.get, TokenScope("default", f"t{i}", "s"))
    assert vendor.peak_in_flight == 3
    assert vendor.statuses == {200: 40}


@pytest.mark.anyio
async def test_purge_by_pair_tenant_and_connection(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker()
    scopes = [A, B, TokenScope("default", "globex", "emea")]
    for scope in scopes:
        await broker.get(scope)
    assert await broker.purge(connection_id="default", tenant_id="acme", sub_tenant_id="emea") == 1
    assert [s for s, _ in broker.cached()] == [B, scopes[2]]
    assert await broker.purge(connection_id="default", tenant_id="acme") == 1
    assert await broker.purge(connection_id="other") == 0
    assert await broker.purge(connection_id="default") == 1
    assert broker.cached() == []
    await broker.get(A)
    assert vendor.pair_calls[("acme", "emea")] == 2


@pytest.mark.anyio
async def test_purge_during_a_fetch_does_not_cache_its_result(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    vendor.latency = 0.05
    broker = make_broker()
    async with anyio.create_task_group() as group:
        group.start_soon(broker.get, A)
        await anyio.sleep(0.01)
        await broker.purge(connection_id="default", tenant_id="acme")
    assert broker.cached() == []
    await broker.get(A)
    assert vendor.calls["token"] == 2


@pytest.mark.anyio
async def test_unknown_connection_and_no_connection_are_rejections(
    make_broker: MakeBroker, client: httpx2.AsyncClient
) -> None:
    with pytest.raises(UpstreamRejected, match="no vendor connection 'other'"):
        await make_broker().get(TokenScope("other", "a", "b"))
    settings = Settings(secret_keys=("k" * 32,), encryption_keys=("e" * 32,))
    broker = create_broker(settings, client, BrokerMetrics(CollectorRegistry()))
    with pytest.raises(UpstreamRejected, match="no vendor connection configured"):
        await broker.get(A)
    await broker.aclose()


@pytest.mark.anyio
async def test_create_broker_builds_the_default_connection(
    client: httpx2.AsyncClient, vendor: VendorConfig, clock: ManualClock
) -> None:
    upstream = UpstreamSettings(
        base_url="http://vendor.test", api_key=vendor.api_key, api_secret=vendor.api_secret
    )
    settings = Settings(secret_keys=("k" * 32,), encryption_keys=("e" * 32,), upstream=upstream)
    registry = CollectorRegistry()
    broker = create_broker(settings, client, BrokerMetrics(registry), clock)
    try:
        token = await broker.get(A)
    finally:
        await broker.aclose()
    assert token.expires_at > clock.now()
    assert registry.get_sample_value("bff_upstream_circuit_state", {"connection": "default"}) == 0


@pytest.mark.anyio
async def test_removing_a_connection_drops_its_tokens(make_broker: MakeBroker) -> None:
    broker = make_broker()
    await broker.get(A)
    assert await broker.remove_connection("default") == 1
    with pytest.raises(UpstreamRejected):
        await broker.get(A)


def test_token_value_never_in_repr() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert "s3cr3t-token" not in repr(VendorToken("s3cr3t-token", now, now))


@pytest.mark.anyio
async def test_the_warm_path_counts_each_hit_and_gives_way_to_a_purge(
    make_broker: MakeBroker, vendor: VendorConfig, registry: CollectorRegistry
) -> None:
    broker = make_broker()
    first = await broker.get(A)
    for _ in range(5):
        assert await broker.get(A) is first
    assert sample(registry, "bff_token_cache_hits_total") == 5
    await broker.purge(connection_id="default", tenant_id="acme", sub_tenant_id="emea")
    second = await broker.get(A)
    assert second.value != first.value
    assert vendor.pair_calls[("acme", "emea")] == 2
    assert sample(registry, "bff_token_cache_misses_total") == 2
