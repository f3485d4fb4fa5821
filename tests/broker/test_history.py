"""The broker's hourly history of upstream calls and errors, and its latest errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bff.broker.history import UpstreamHistory
from bff.broker.scope import TokenScope
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.errors import UpstreamError
from tests.broker.conftest import MakeBroker

A = TokenScope("default", "acme", "emea")
B = TokenScope("default", "acme", "north")


def busy(history: UpstreamHistory) -> dict[str, tuple[int, int]]:
    return {
        f"{hour.start:%d %H}": (hour.calls, hour.errors) for hour in history.hours() if hour.calls
    }


def test_hours_roll_over_on_the_clock(clock: ManualClock) -> None:
    history = UpstreamHistory(clock)
    history.record(A, "ok")
    clock.advance(59 * 60)
    history.record(A, "timeout", "the vendor did not answer within 5 s")
    clock.advance(60)
    history.record(B, "ok")
    hours = history.hours()
    assert len(hours) == 24
    assert hours[-1].start == datetime(2026, 1, 1, 1, tzinfo=UTC)
    assert hours[0].start == datetime(2025, 12, 31, 2, tzinfo=UTC)
    assert busy(history) == {"01 00": (2, 1), "01 01": (1, 0)}
    clock.advance(23 * 3600)
    assert busy(history) == {"01 01": (1, 0)}
    clock.advance(3600)
    assert busy(history) == {}
    history.record(A, "ok")
    assert busy(history) == {"02 01": (1, 0)}


def test_recent_errors_newest_first_and_bounded(clock: ManualClock) -> None:
    history = UpstreamHistory(clock, keep=2)
    for outcome in ("rejected", "ok", "timeout", "rate_limited"):
        history.record(A, outcome, f"{outcome} message")
        clock.advance(1)
    assert [(e.outcome, e.message) for e in history.recent_errors()] == [
        ("rate_limited", "rate_limited message"),
        ("timeout", "timeout message"),
    ]


@pytest.mark.anyio
async def test_the_broker_records_every_upstream_outcome(
    make_broker: MakeBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    broker = make_broker()
    await broker.get(A)
    await broker.get(A)  # cached: no call
    vendor.faults.append(Fault("forbidden"))
    with pytest.raises(UpstreamError):
        await broker.get(B)
    clock.advance(3600)
    vendor.faults.extend([Fault("server_error"), Fault("server_error")])
    await broker.get(TokenScope("default", "globex", "emea"))  # two retries, then ok
    assert busy(broker.history) == {"01 00": (2, 1), "01 01": (3, 2)}
    [newest, _, oldest] = broker.history.recent_errors()
    assert (oldest.scope, oldest.outcome) == (B, "rejected")
    assert oldest.message == "the vendor refused the request (403): Forbidden"
    assert newest.outcome == "bad_response"
    assert newest.message == "the vendor answered 500: Internal server error"
