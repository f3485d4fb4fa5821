from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bff.broker.retry import Backoff, retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def parse(header: str | None, message: str | None = None, **options: Any) -> float:
    return retry_after(header, message, now=NOW, default=30.0, cap=300.0, **options)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Thu, 01 Jan 2026 12:01:30 GMT", 90.0),  # a future HTTP date
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # a past HTTP date: now
        ("999999999", 300.0),  # huge: capped
        ("9" * 5000, 300.0),  # longer than int() accepts: still capped
        ("soon", 30.0),  # garbage: the default
        ("-5", 30.0),
        ("1.5", 30.0),  # delta-seconds are integers
        ("", 30.0),
        ("²", 30.0),  # a digit to str.isdigit(), but not delta-seconds
        ("١٢٠", 30.0),  # Arabic-Indic 120: not ASCII either
        ("Mon, 99 Feb 2026 12:00:00 GMT", 30.0),  # a date that does not exist
        ("Thu, 01 Jan 2026 12:01:30", 30.0),  # a date without a zone
    ],
)
def test_retry_after_header(header: str, expected: float) -> None:
    assert parse(header) == expected


def test_try_again_text_when_no_header() -> None:
    assert parse(None, "Rate limit exceeded. Try again in 60 seconds.") == 60.0
    assert parse(None, "try again in 2 minutes") == 120.0
    assert parse(None, "Try again in 99999 seconds.") == 300.0
    assert parse(None, "Try again in ²⁵ seconds.") == 30.0  # superscripts are not a number


def test_header_wins_over_text_and_garbage_text_falls_back() -> None:
    assert parse("5", "Try again in 60 seconds.") == 5.0
    assert parse("garbage", "Try again in 60 seconds.") == 60.0
    assert parse(None, "Slow down!") == 30.0
    assert parse(None, None) == 30.0


def test_floor_raises_every_answer_to_the_minimum_cool_down() -> None:
    assert parse("0", floor=5.0) == 5.0
    assert parse("Thu, 01 Jan 2026 11:00:00 GMT", floor=5.0) == 5.0
    assert parse("120", floor=5.0) == 120.0


def test_an_http_date_is_measured_from_the_vendors_own_clock() -> None:
    # The vendor's clock is two minutes behind ours (11:58); it asks for 60 s by its clock.
    header = "Thu, 01 Jan 2026 11:59:00 GMT"  # already past for us
    assert parse(header) == 0.0
    assert parse(header, vendor_date="Thu, 01 Jan 2026 11:58:00 GMT") == 60.0
    # A Date header that is garbage is ignored, not trusted.
    assert parse(header, vendor_date="yesterday-ish") == 0.0


_HEADERS = st.one_of(
    st.none(),
    st.text(),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.datetimes(timezones=st.timezones()).map(
        lambda moment: moment.strftime("%a, %d %b %Y %H:%M:%S %z")
    ),
    # ASCII digits, superscripts, Arabic-Indic, Extended Arabic-Indic, Devanagari, Malayalam.
    st.text(
        alphabet="0123456789²³¹\u0660\u0661\u0662\u06f4\u096b\u0d6c ,:+-GMTUCMonJan", max_size=40
    ),
)


@given(
    header=_HEADERS,
    message=st.one_of(st.none(), st.text(), st.text().map(lambda s: f"Try again in {s} seconds")),
    vendor_date=_HEADERS,
    now=st.datetimes(timezones=st.just(UTC)),
    floor=st.floats(min_value=0, max_value=60),
    cap=st.floats(min_value=60, max_value=10**6),
    default=st.floats(min_value=0, max_value=10**7),
)
def test_retry_after_never_raises_and_stays_within_floor_and_cap(
    header: str | None,
    message: str | None,
    vendor_date: str | None,
    now: datetime,
    floor: float,
    cap: float,
    default: float,
) -> None:
    seconds = retry_after(
        header, message, now=now, default=default, cap=cap, floor=floor, vendor_date=vendor_date
    )
    assert floor <= seconds <= cap


def test_backoff_grows_capped_with_jitter() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0), (10_000, 8.0)]:
        delays = {backoff.delay(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
