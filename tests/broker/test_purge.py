"""A purge discards the calls in flight for what it purged: they leave nothing behind.

Each race is forced with the :class:`Gate` transport: the old call is held before
it reaches the vendor until the purge (or the credential swap) has happened, then
answers as the vendor now does for its old credentials.
"""

from __future__ import annotations

import anyio
import pytest
from prometheus_client import CollectorRegistry

from bff.broker.broker import TokenBroker
from bff.broker.connectors import HeaderExchangeConnector
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope, VendorToken
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.errors import UpstreamBadResponse, UpstreamError, UpstreamRateLimited, UpstreamRejected
from tests.broker.conftest import VENDOR, Gate, MakeBroker, apikey_jwt, sample

A = TokenScope("default", "acme", "emea")


async def record(broker: TokenBroker, outcomes: list[VendorToken | UpstreamError]) -> None:
    try:
        outcomes.append(await broker.get(A))
    except UpstreamError as exc:
        outcomes.append(exc)


@pytest.mark.anyio
async def test_replacing_a_wrong_key_mid_call_lets_the_new_key_be_tried_at_once(
    make_broker: MakeBroker, vendor: VendorConfig, gate: Gate, registry: CollectorRegistry
) -> None:
    # The reproduction: an admin replaces a wrong API secret while a call with it is out.
    broker = make_broker(HeaderExchangeConnector(VENDOR, vendor.api_key, "wrong-secret"))
    old: list[VendorToken | UpstreamError] = []
    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(record, broker, old)
        await gate.arrived.wait()
        await broker.remove_connection("default")
        broker.add_connection(
            "default", HeaderExchangeConnector(VENDOR, vendor.api_key, vendor.api_secret)
        )
        gate.release()
    [refused] = old
    assert isinstance(refused, UpstreamRejected) and refused.status == 403
    token = await broker.get(A)  # no 60 s "rejected" state left by the old call
    assert token.value
    assert vendor.statuses == {403: 1, 200: 1}
    assert [scope for scope, _ in broker.cached()] == [A]
    assert sample(registry, "bff_upstream_circuit_state") == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (Fault("forbidden"), UpstreamRejected),  # would leave rejected_until
        (Fault.rate_limit("120", connection_wide=True), UpstreamRateLimited),  # a cool-down
        (Fault("server_error"), UpstreamBadResponse),  # a circuit failure and a backoff
        (None, None),  # a token for the old credentials
    ],
)
async def test_a_purged_keys_call_leaves_no_state_whatever_it_answers(
    make_broker: MakeBroker,
    vendor: VendorConfig,
    gate: Gate,
    registry: CollectorRegistry,
    answer: Fault | None,
    raised: type[UpstreamError] | None,
) -> None:
    # Threshold 1: a single counted failure would open the circuit.
    broker = make_broker(policy=BrokerPolicy(circuit_threshold=1))
    old: list[VendorToken | UpstreamError] = []
    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(record, broker, old)
        await gate.arrived.wait()
        await broker.purge(connection_id="default")
        if answer is not None:
            vendor.faults.append(answer)
        gate.release()
    [outcome] = old
    if raised is None:
        assert isinstance(outcome, VendorToken)
    else:
        assert isinstance(outcome, raised)
    assert vendor.calls["token"] == 1  # a discarded call is not retried either
    assert broker.cached() == []
    token = await broker.get(A)
    assert token != outcome  # fetched anew, at once
    assert vendor.calls["token"] == 2
    assert sample(registry, "bff_upstream_circuit_state") == 0
    assert sample(registry, "bff_upstream_cooldowns_total", extent="connection") == 0


@pytest.mark.anyio
async def test_a_purged_single_use_fetch_leaves_no_refusal_behind(
    make_broker: MakeBroker, vendor: VendorConfig, gate: Gate
) -> None:
    broker = make_broker(apikey_jwt(vendor, single_use=True))
    old: list[VendorToken | UpstreamError] = []
    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(record, broker, old)
        await gate.arrived.wait()
        await broker.purge(connection_id="default")
        vendor.faults.append(Fault("unauthorized"))
        gate.release()
    [refused] = old
    assert isinstance(refused, UpstreamRejected) and refused.status == 401
    assert (await broker.get(A)).value
    assert vendor.statuses == {401: 1, 200: 1}


@pytest.mark.anyio
async def test_a_purge_of_another_pair_keeps_the_calls_own_outcome(
    make_broker: MakeBroker, vendor: VendorConfig, gate: Gate
) -> None:
    # Only what was purged is discarded: a refusal for A stays remembered.
    broker = make_broker()
    old: list[VendorToken | UpstreamError] = []
    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(record, broker, old)
        await gate.arrived.wait()
        await broker.purge(connection_id="default", tenant_id="acme", sub_tenant_id="apac")
        vendor.faults.append(Fault("forbidden"))
        gate.release()
    with pytest.raises(UpstreamRejected):
        await broker.get(A)
    assert vendor.calls["token"] == 1


@pytest.mark.anyio
async def test_a_request_after_the_purge_does_not_wait_for_the_discarded_call(
    make_broker: MakeBroker, vendor: VendorConfig, gate: Gate
) -> None:
    broker = make_broker(HeaderExchangeConnector(VENDOR, vendor.api_key, "wrong-secret"))
    old: list[VendorToken | UpstreamError] = []
    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(record, broker, old)
        await gate.arrived.wait()
        await broker.remove_connection("default")
        broker.add_connection(
            "default", HeaderExchangeConnector(VENDOR, vendor.api_key, vendor.api_secret)
        )
        # The old call is still held: the new key is tried without waiting for it.
        with anyio.fail_after(5):  # a safety net against a hang, not a timing assertion
            token = await broker.get(A)
        assert old == []
        assert vendor.statuses == {200: 1}
        gate.release()
    [refused] = old
    assert isinstance(refused, UpstreamRejected)
    assert await broker.get(A) == token  # the discarded call replaced nothing
