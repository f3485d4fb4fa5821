"""Refresh-ahead: renewed before expiry, failures re-armed, a valid token always served."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from prometheus_client import CollectorRegistry

from bff.broker.scope import TokenScope, VendorToken
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.errors import UpstreamRateLimited, UpstreamRejected
from tests.broker.conftest import MakeBroker, sample

A = TokenScope("default", "acme", "emea")
LIFE = 1000  # seconds; skew is 30, so a token is usable for 970 s


@pytest.fixture(autouse=True)
def short_tokens(vendor: VendorConfig) -> None:
    vendor.token_lifetime = LIFE


@pytest.mark.anyio
async def test_renewed_in_the_background_at_about_80_percent(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry
) -> None:
    broker = make_broker()
    first = await broker.get(A)
    clock.advance(0.7 * 970)
    assert await broker.refresh_due() == 0
    clock.advance(0.16 * 970)  # past the latest jittered refresh point (85 %)
    assert await broker.refresh_due() == 1
    second = await broker.get(A)
    assert second != first
    assert second.obtained_at == clock.now()
    assert vendor.calls["token"] == 2
    assert sample(registry, "bff_token_refreshes_total", outcome="ok") == 1
    assert sample(registry, "bff_token_cache_misses_total") == 1  # only the cold start


@pytest.mark.anyio
async def test_failed_refresh_keeps_serving_and_re_arms_with_backoff(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry
) -> None:
    broker = make_broker()
    first = await broker.get(A)
    vendor.fault = Fault("server_error")
    clock.advance(0.86 * 970)
    assert await broker.refresh_due() == 1
    assert vendor.statuses[500] == 1

    # Many concurrent users during the failure all get the still-valid token, at once.
    served: list[VendorToken] = []

    async def get() -> None:
        served.append(await broker.get(A))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(get)
    assert served == [first] * 20
    assert vendor.calls["token"] == 2

    assert await broker.refresh_due() == 0  # re-armed for later, not retried in a loop
    clock.advance(1.0)  # the first backoff step is at most 1 s
    assert await broker.refresh_due() == 1
    assert vendor.statuses[500] == 2
    vendor.fault = None
    clock.advance(2.0)
    assert await broker.refresh_due() == 1
    assert await broker.get(A) != first
    assert sample(registry, "bff_token_refreshes_total", outcome="failed") == 2


@pytest.mark.anyio
async def test_a_refresh_told_to_wait_is_re_armed_no_earlier_than_the_vendor_asked(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    # Contract change (issue 7): the retry used to be re-armed at half the token's
    # remaining life even when the vendor asked for longer; now its wait is honoured
    # even if the token runs out first, and users then wait too, without a call.
    broker = make_broker()
    first = await broker.get(A)
    vendor.faults.append(Fault.rate_limit("300"))
    clock.advance(0.86 * 970)  # ~136 s left
    assert await broker.refresh_due() == 1
    remaining = (first.expires_at - clock.now()).total_seconds()
    clock.advance(remaining / 2)
    assert await broker.refresh_due() == 0
    assert await broker.get(A) == first  # still valid: still served
    clock.advance(299 - remaining / 2)  # the token ran out meanwhile
    assert await broker.refresh_due() == 0
    with pytest.raises(UpstreamRateLimited) as caught:
        await broker.get(A)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert vendor.calls["token"] == 2
    clock.advance(1)
    assert await broker.get(A) != first
    assert vendor.calls["token"] == 3


@pytest.mark.anyio
async def test_cold_get_on_an_expired_key_joins_the_refresh_in_flight(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    await broker.get(A)
    clock.advance(0.86 * 970)
    vendor.latency = 0.05
    async with anyio.create_task_group() as group:
        group.start_soon(broker.refresh_due)
        await anyio.sleep(0.01)
        clock.advance(200)  # the old token expires while the refresh is out
        token = await broker.get(A)
    assert token.obtained_at < clock.now()
    assert vendor.calls["token"] == 2


@pytest.mark.anyio
async def test_idle_tokens_lapse_instead_of_renewing_forever(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    await broker.get(A)
    clock.advance(0.86 * 970)
    assert await broker.refresh_due() == 1  # one spare renewal for the user who asked
    clock.advance(0.86 * 970)
    assert await broker.refresh_due() == 0  # nobody asked since
    clock.advance(970)
    assert await broker.refresh_due() == 0
    assert broker.cached() == []
    assert vendor.calls["token"] == 2


@pytest.mark.anyio
async def test_refresh_refused_keeps_serving_then_reports_the_rejection(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    first = await broker.get(A)
    vendor.fault = Fault("forbidden")
    clock.advance(0.86 * 970)
    await broker.refresh_due()
    assert await broker.get(A) == first
    clock.advance(0.14 * 970)
    with pytest.raises(UpstreamRejected):
        await broker.get(A)


class Ticks:
    """A scheduler sleep that lets the test wait for the scheduler's next pass."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    async def __call__(self, seconds: float) -> None:
        self._event.set()
        self._event = anyio.Event()
        await anyio.lowlevel.checkpoint()

    async def passes(self, count: int) -> None:
        for _ in range(count):
            await self._event.wait()


@pytest.mark.anyio
async def test_background_task_renews_without_anyone_waiting(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    ticks = Ticks()
    broker = make_broker(background=True, sleep=ticks)
    first = await broker.get(A)
    clock.advance(0.86 * 970)
    # A user request past the refresh point is answered from the cache at once,
    # and the renewal happens behind it.
    assert await broker.get(A) == first
    await broker.wait_idle()
    assert vendor.calls["token"] == 2
    assert await broker.get(A) != first
    # The scheduler alone (no user request) renews the next one.
    clock.advance(0.86 * 970)
    with anyio.fail_after(5):
        await ticks.passes(2)  # one whole pass after the clock moved
    await broker.wait_idle()
    assert vendor.calls["token"] == 3
    await broker.aclose()


@pytest.mark.anyio
async def test_a_refresh_answered_429_with_no_wait_is_re_armed_after_the_minimum_cool_down(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    first = await broker.get(A)
    vendor.faults.append(Fault.rate_limit("0"))
    clock.advance(0.86 * 970)
    assert await broker.refresh_due() == 1
    assert await broker.refresh_due() == 0  # not again at once (it used to loop)
    clock.advance(4.9)
    assert await broker.refresh_due() == 0
    clock.advance(0.1)  # BrokerPolicy.min_cooldown (5 s) after the 429
    assert await broker.refresh_due() == 1
    assert await broker.get(A) != first
    assert vendor.statuses == {200: 2, 429: 1}
