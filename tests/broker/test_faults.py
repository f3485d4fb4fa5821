"""Every vendor fault ends in the documented behaviour (DESIGN §3), never a stray exception."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.utils import format_datetime

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from tests.broker.conftest import FakeSleep, MakeBroker, sample

A = TokenScope("default", "acme", "emea")
B = TokenScope("default", "acme", "apac")


def assert_clean(exc: UpstreamError, vendor: VendorConfig) -> None:
    for secret in (vendor.api_key, vendor.api_secret, vendor.signing_key):
        assert secret not in str(exc)
        assert secret not in repr(exc)


# -- 429 ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("retry_after", ["0", "past-date"])
async def test_429_asking_for_no_wait_still_cools_the_key_down_for_the_minimum(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    clock: ManualClock,
    sleep: FakeSleep,
    retry_after: str,
) -> None:
    # Contract change (issue 7): such a 429 used to be retried at once in the same
    # call; now every 429 pauses the key for at least BrokerPolicy.min_cooldown.
    if retry_after == "past-date":
        retry_after = format_datetime(clock.now() - timedelta(minutes=5), usegmt=True)
    vendor.faults.append(Fault.rate_limit(retry_after))
    broker = make_broker()
    with pytest.raises(UpstreamRateLimited) as caught:
        await broker.get(A)
    assert caught.value.retry_after == 5.0
    assert vendor.statuses == {429: 1}
    assert sleep.waits == []
    clock.advance(4.9)
    with pytest.raises(UpstreamRateLimited):
        await broker.get(A)
    assert vendor.statuses == {429: 1}
    clock.advance(0.1)
    assert (await broker.get(A)).value
    assert vendor.statuses == {429: 1, 200: 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "calls"),
    [
        ("Retry-After: 0", 2),
        ("Retry-After: a past date", 2),
        ("vendor clock behind, no Date header", 2),
        ("vendor clock behind, with its Date header", 1),  # its 60 s, measured by its clock
    ],
)
async def test_ten_page_views_in_ten_seconds_of_429s_cost_what_the_minimum_cool_down_allows(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    clock: ManualClock,
    registry: CollectorRegistry,
    answer: str,
    calls: int,
) -> None:
    vendor_now = clock.now() - timedelta(minutes=2)
    asked = format_datetime(vendor_now + timedelta(seconds=60), usegmt=True)  # past for us
    vendor.fault = {
        "Retry-After: 0": Fault.rate_limit("0"),
        "Retry-After: a past date": Fault.rate_limit(
            format_datetime(clock.now() - timedelta(minutes=5), usegmt=True)
        ),
        "vendor clock behind, no Date header": Fault.rate_limit(asked),
        "vendor clock behind, with its Date header": Fault.rate_limit(
            asked, date=format_datetime(vendor_now, usegmt=True)
        ),
    }[answer]
    broker = make_broker()
    for _ in range(10):
        with pytest.raises(UpstreamRateLimited) as caught:
            await broker.get(A)
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        clock.advance(1)
    # 5 s minimum cool-down: one call at 0 s and one at 5 s (it used to be 30 calls).
    assert vendor.calls["token"] == calls
    assert sample(registry, "bff_upstream_calls_total", outcome="rate_limited") == calls


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["²", "٣٠", "9" * 5000, "-1", "Mon, 99 Feb 2026 25:61:00 GMT"])
async def test_a_429_with_an_unreadable_retry_after_stays_a_429_and_never_opens_the_circuit(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    clock: ManualClock,
    registry: CollectorRegistry,
    header: str,
) -> None:
    vendor.fault = Fault.rate_limit(header)
    broker = make_broker(policy=BrokerPolicy(circuit_threshold=2))
    for _ in range(4):  # twice the circuit threshold
        with pytest.raises(UpstreamRateLimited) as caught:
            await broker.get(A)
        assert caught.value.status == 429
        assert caught.value.retry_after is not None
        assert 5.0 <= caught.value.retry_after <= 300.0
        clock.advance(caught.value.retry_after)
    assert vendor.statuses == {429: 4}
    assert sample(registry, "bff_upstream_calls_total", outcome="rate_limited") == 4
    assert sample(registry, "bff_upstream_calls_total", outcome="bad_response") == 0
    assert sample(registry, "bff_upstream_circuit_state") == 0
    vendor.fault = None
    assert (await broker.get(A)).value


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "message", "expected"),
    [
        ("120", "Rate limit exceeded.", 120),
        ("future-date", "Rate limit exceeded.", 90),
        ("999999999", "Rate limit exceeded.", 300),  # huge: capped
        ("soon!", "Rate limit exceeded.", 30),  # garbage: the default
        ("soon!", "Rate limit exceeded. Try again in 45 seconds.", 45),  # garbage: the text
        (None, "Rate limit exceeded. Try again in 60 seconds.", 60),  # the contract's body
    ],
)
async def test_429_cools_the_key_down_for_the_requested_time(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    clock: ManualClock,
    registry: CollectorRegistry,
    header: str | None,
    message: str,
    expected: float,
) -> None:
    if header == "future-date":
        header = format_datetime(clock.now() + timedelta(seconds=90), usegmt=True)
    vendor.faults.append(Fault.rate_limit(header, message))
    broker = make_broker()
    with pytest.raises(UpstreamRateLimited) as caught:
        await broker.get(A)
    assert caught.value.retry_after == expected
    assert_clean(caught.value, vendor)
    # Still cooling down: answered without calling the vendor.
    clock.advance(expected - 10)
    with pytest.raises(UpstreamRateLimited) as again:
        await broker.get(A)
    assert again.value.retry_after == 10
    assert vendor.calls["token"] == 1
    # Other pairs are not affected by a per-key cool-down.
    await broker.get(B)
    clock.advance(10)
    assert (await broker.get(A)).value
    assert sample(registry, "bff_upstream_cooldowns_total", extent="key") == 1
    assert sample(registry, "bff_upstream_calls_total", outcome="rate_limited") == 1


@pytest.mark.anyio
async def test_429_for_the_whole_connection_cools_every_key(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry
) -> None:
    vendor.faults.append(Fault.rate_limit("20", connection_wide=True))
    broker = make_broker()
    with pytest.raises(UpstreamRateLimited):
        await broker.get(A)
    with pytest.raises(UpstreamRateLimited) as caught:
        await broker.get(B)
    assert caught.value.retry_after == 20
    assert caught.value.connection_wide
    assert vendor.calls["token"] == 1
    clock.advance(20)
    assert (await broker.get(B)).value
    assert sample(registry, "bff_upstream_cooldowns_total", extent="connection") == 1


# -- 5xx, timeouts, refused connections -----------------------------------------------


@pytest.mark.anyio
async def test_500_is_retried_with_capped_backoff_and_jitter(
    make_broker: MakeBroker, vendor: VendorConfig, sleep: FakeSleep
) -> None:
    vendor.faults.extend([Fault("server_error"), Fault("server_error")])
    token = await make_broker().get(A)
    assert token.value
    assert vendor.statuses == {500: 2, 200: 1}
    assert len(sleep.waits) == 2
    assert 0.1 <= sleep.waits[0] <= 0.2
    assert 0.2 <= sleep.waits[1] <= 0.4


@pytest.mark.anyio
async def test_500_storm_opens_the_circuit_then_a_probe_closes_it(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry
) -> None:
    vendor.fault = Fault("server_error")
    broker = make_broker()
    with pytest.raises(UpstreamBadResponse) as first:
        await broker.get(A)
    assert first.value.status == 500
    assert first.value.vendor_message == "Internal server error"
    assert first.value.retry_after is not None and first.value.retry_after >= 0.5
    # Two more attempts reach the threshold (5): the circuit opens mid-call.
    with pytest.raises(CircuitOpen):
        await broker.get(B)
    assert vendor.calls["token"] == 5
    assert sample(registry, "bff_upstream_circuit_state") == 1
    with pytest.raises(CircuitOpen) as paused:
        await broker.get(TokenScope("default", "globex", "x"))
    assert paused.value.retry_after is not None and 0 < paused.value.retry_after <= 15
    assert vendor.calls["token"] == 5
    clock.advance(15)
    vendor.fault = None
    assert (await broker.get(TokenScope("default", "globex", "x"))).value
    assert sample(registry, "bff_upstream_circuit_state") == 0


@pytest.mark.anyio
async def test_failed_key_backs_off_instead_of_hammering(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    vendor.fault = Fault("server_error")
    broker = make_broker(policy=BrokerPolicy(circuit_threshold=100))
    with pytest.raises(UpstreamBadResponse) as first:
        await broker.get(A)
    assert first.value.retry_after is not None
    with pytest.raises(UpstreamBadResponse):
        await broker.get(A)
    assert vendor.calls["token"] == 3
    clock.advance(first.value.retry_after)
    with pytest.raises(UpstreamBadResponse) as second:
        await broker.get(A)
    assert vendor.calls["token"] == 6
    assert second.value.retry_after is not None
    assert second.value.retry_after >= 1.0  # the next backoff step


@pytest.mark.anyio
async def test_read_timeout_from_vendor_latency(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    vendor.latency = 2.0
    broker = make_broker(timeout=0.05, policy=BrokerPolicy(attempts=2))
    with pytest.raises(UpstreamTimeout) as caught:
        await broker.get(A)
    assert "0.05 s" in str(caught.value)
    assert caught.value.retry_after is not None


@pytest.mark.anyio
async def test_a_stalled_call_is_retried(make_broker: MakeBroker, vendor: VendorConfig) -> None:
    vendor.hang = 5.0
    vendor.faults.append(Fault("timeout"))
    token = await make_broker(timeout=0.05).get(A)
    assert token.value
    assert vendor.calls["token"] == 2


@pytest.mark.anyio
async def test_connect_timeout(
    vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry, sleep: FakeSleep
) -> None:
    from bff.broker.broker import TokenBroker
    from bff.broker.metrics import BrokerMetrics
    from tests.broker.conftest import header_exchange

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectTimeout("connect timed out", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)) as client:
        broker = TokenBroker(
            {"default": header_exchange(vendor)},
            client,
            BrokerMetrics(registry),
            clock,
            sleep=sleep,
            background=False,
        )
        with pytest.raises(UpstreamTimeout, match="ConnectTimeout"):
            await broker.get(A)
        await broker.aclose()
    assert sample(registry, "bff_upstream_calls_total", outcome="timeout") == 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.anyio
async def test_connection_refused(
    vendor: VendorConfig, clock: ManualClock, registry: CollectorRegistry, sleep: FakeSleep
) -> None:
    from bff.broker.broker import TokenBroker
    from bff.broker.connectors import HeaderExchangeConnector
    from bff.broker.metrics import BrokerMetrics

    connector = HeaderExchangeConnector(
        f"http://127.0.0.1:{closed_port()}", vendor.api_key, vendor.api_secret
    )
    async with httpx2.AsyncClient() as client:
        broker = TokenBroker(
            {"default": connector},
            client,
            BrokerMetrics(registry),
            clock,
            sleep=sleep,
            background=False,
        )
        with pytest.raises(UpstreamUnreachable, match="ConnectError") as caught:
            await broker.get(A)
        await broker.aclose()
    assert caught.value.retry_after is not None
    assert sample(registry, "bff_upstream_calls_total", outcome="unreachable") == 3


# -- 200 with something other than a usable token -------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("html", r"not JSON \(text/html\)"),
        ("malformed", r"not JSON \(application/json\)"),
        ("null_token", "without data.token"),
        ("opaque_token", "not a JWT"),
        ("expired", "already expired"),
    ],
)
async def test_200_without_a_usable_token_is_a_bad_response_not_retried_in_a_loop(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock, kind: str, message: str
) -> None:
    vendor.fault = Fault(kind)  # type: ignore[arg-type]
    broker = make_broker()
    with pytest.raises(UpstreamBadResponse, match=message) as caught:
        await broker.get(A)
    assert_clean(caught.value, vendor)
    assert vendor.calls["token"] == 1
    assert caught.value.retry_after is not None
    with pytest.raises(UpstreamBadResponse):
        await broker.get(A)  # backing off: no second call yet
    assert vendor.calls["token"] == 1
    vendor.fault = None
    clock.advance(caught.value.retry_after)
    assert (await broker.get(A)).value


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["no_exp", "far_future"])
async def test_missing_or_absurd_exp_falls_back_to_the_connector_lifetime(
    make_broker: MakeBroker, vendor: VendorConfig, kind: str
) -> None:
    vendor.fault = Fault(kind)  # type: ignore[arg-type]
    token = await make_broker().get(A)
    assert token.expires_at - token.obtained_at == timedelta(hours=24, seconds=-30)


# -- 400/401/403: configuration errors ------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "status"), [("unauthorized", 401), ("forbidden", 403)])
async def test_rejection_is_negatively_cached_not_retried(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    clock: ManualClock,
    registry: CollectorRegistry,
    kind: str,
    status: int,
) -> None:
    vendor.fault = Fault(kind)  # type: ignore[arg-type]
    broker = make_broker()
    for _ in range(5):
        with pytest.raises(UpstreamRejected) as caught:
            await broker.get(A)
        assert caught.value.status == status
        assert_clean(caught.value, vendor)
    assert vendor.calls["token"] == 1
    assert sample(registry, "bff_upstream_circuit_state") == 0  # the vendor is up
    vendor.fault = None
    clock.advance(60)
    assert (await broker.get(A)).value
    assert vendor.calls["token"] == 2
