"""What the admin console asks of the broker: a snapshot of every key (never a token),
renewing one key now, and replacing a connection's connector."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bff.broker.broker import SHARED
from bff.broker.connectors import HeaderExchangeConnector
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.errors import UpstreamRejected
from tests.broker.conftest import VENDOR, Gate, MakeBroker, apikey_jwt

pytestmark = pytest.mark.anyio

A = TokenScope("default", "acme", "emea")
B = TokenScope("default", "acme", "north")


async def test_the_snapshot_lists_tokens_and_failures(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    assert broker.snapshot() == []
    token = await broker.get(A)
    vendor.faults.append(Fault("forbidden"))
    with pytest.raises(UpstreamRejected):
        await broker.get(B)
    first, second = broker.snapshot()
    assert (first.scope, first.expires_at, first.obtained_at) == (A, token.expires_at, clock.now())
    assert first.error is None and first.blocked_until is None
    assert second.scope == B and second.expires_at is None and second.obtained_at is None
    assert second.error == "the vendor refused the request (403): Forbidden"
    assert second.error_at == clock.now()
    assert second.blocked_until is not None and second.blocked_until > clock.now()
    assert token.value not in repr(broker.snapshot())
    # A later success keeps the last error on show, no longer blocking.
    clock.advance(61)
    await broker.get(B)
    [_, renewed] = broker.snapshot()
    assert renewed.expires_at is not None and renewed.error is not None
    assert renewed.blocked_until is None


async def test_connection_wide_keys_are_marked(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker(apikey_jwt(vendor))
    await broker.get(A)
    [key] = broker.snapshot()
    assert key.scope == TokenScope("default", SHARED, SHARED) and key.connection_wide


async def test_refresh_renews_a_valid_token(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    old = await broker.get(A)
    clock.advance(60)
    new = await broker.refresh(A)
    assert new != old and new.obtained_at == clock.now()
    assert vendor.calls["token"] == 2
    assert await broker.get(A) == new


async def test_refresh_joins_the_call_in_flight(
    make_broker: MakeBroker, vendor: VendorConfig, gate: Gate
) -> None:
    broker = make_broker()
    got: list[VendorToken] = []

    async def fetch() -> None:
        got.append(await broker.get(A))

    async def renew() -> None:
        got.append(await broker.refresh(A))

    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(fetch)
        await gate.arrived.wait()
        group.start_soon(renew)
        await anyio.lowlevel.checkpoint()
        gate.release()
    assert len(got) == 2 and got[0] == got[1]
    assert vendor.calls["token"] == 1


async def test_refresh_honours_a_remembered_refusal(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker()
    vendor.faults.append(Fault("forbidden"))
    with pytest.raises(UpstreamRejected):
        await broker.get(A)
    with pytest.raises(UpstreamRejected):
        await broker.refresh(A)
    assert vendor.calls["token"] == 1


async def test_replace_connection_purges_its_tokens_and_discards_calls(
    make_broker: MakeBroker, vendor: VendorConfig, gate: Gate
) -> None:
    broker = make_broker(HeaderExchangeConnector(VENDOR, vendor.api_key, "wrong-secret"))
    await broker.replace_connection(
        "default", HeaderExchangeConnector(VENDOR, vendor.api_key, vendor.api_secret)
    )
    await broker.get(A)
    assert [scope for scope, _ in broker.cached()] == [A]
    outcomes: list[object] = []

    async def fetch() -> None:
        try:
            outcomes.append(await broker.get(B))
        except UpstreamRejected as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        gate.hold_next()
        group.start_soon(fetch)
        await gate.arrived.wait()
        # New (wrong) credentials while B's call with the old ones is out.
        dropped = await broker.replace_connection(
            "default", HeaderExchangeConnector(VENDOR, vendor.api_key, "wrong-again")
        )
        gate.release()
    assert dropped == 1
    assert broker.cached() == []  # B's old-credential token was discarded
    with pytest.raises(UpstreamRejected):
        await broker.get(A)


async def test_add_connection_refuses_to_replace_silently(
    make_broker: MakeBroker, vendor: VendorConfig
) -> None:
    broker = make_broker()
    with pytest.raises(ValueError, match="replace_connection"):
        broker.add_connection("default", HeaderExchangeConnector(VENDOR, "k", "s"))
    assert broker.has_connection("default") and not broker.has_connection("other")
