from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bff.broker.retry import Backoff, retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def parse(header: str | None, message: str | None = None) -> float:
    return retry_after(header, message, now=NOW, default=30.0, cap=300.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Thu, 01 Jan 2026 12:01:30 GMT", 90.0),  # a future HTTP date
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # a past HTTP date: now
        ("999999999", 300.0),  # huge: capped
        ("soon", 30.0),  # garbage: the default
        ("-5", 30.0),
        ("1.5", 30.0),  # delta-seconds are integers
        ("", 30.0),
    ],
)
def test_retry_after_header(header: str, expected: float) -> None:
    assert parse(header) == expected


def test_try_again_text_when_no_header() -> None:
    assert parse(None, "Rate limit exceeded. Try again in 60 seconds.") == 60.0
    assert parse(None, "try again in 2 minutes") == 120.0
    assert parse(None, "Try again in 99999 seconds.") == 300.0


def test_header_wins_over_text_and_garbage_text_falls_back() -> None:
    assert parse("5", "Try again in 60 seconds.") == 5.0
    assert parse("garbage", "Try again in 60 seconds.") == 60.0
    assert parse(None, "Slow down!") == 30.0
    assert parse(None, None) == 30.0


def test_backoff_grows_capped_with_jitter() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0), (10_000, 8.0)]:
        delays = {backoff.delay(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
