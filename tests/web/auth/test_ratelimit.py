"""The sign-in limiter on its own: reserve before the check, settle after it."""

from __future__ import annotations

import pytest

from bff.clock import ManualClock
from bff.shared import counters
from bff.shared.counters import SlidingWindowLimiter
from bff.web.auth.ratelimit import LoginRateLimiter, Refusal, Reservation

ANN = "ann@example.com"
HERE, THERE = "192.0.2.1", "198.51.100.2"


@pytest.fixture
def limiter(clock: ManualClock) -> LoginRateLimiter:
    return LoginRateLimiter(clock, per_account_at_address=3, per_address=5, per_account=8)


async def reserve(limiter: LoginRateLimiter, email: str, address: str) -> Reservation:
    attempt = await limiter.reserve(email, address)
    assert isinstance(attempt, Reservation), attempt
    return attempt


async def fail(limiter: LoginRateLimiter, email: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        await limiter.settle(await reserve(limiter, email, address), "failure")


def test_the_defaults_are_the_documented_numbers(clock: ManualClock) -> None:
    limiter = LoginRateLimiter(clock)
    assert (limiter.per_account_at_address, limiter.per_address, limiter.per_account) == (
        5,
        50,
        100,
    )
    assert limiter.window == 15 * 60


@pytest.mark.anyio
async def test_an_attempt_counts_from_its_reservation_before_any_outcome(
    limiter: LoginRateLimiter,
) -> None:
    """The race that let 40 concurrent guesses through: none had failed yet."""
    pending = [await limiter.reserve(ANN, HERE) for _ in range(3)]
    assert all(isinstance(attempt, Reservation) for attempt in pending)
    assert await limiter.reserve(ANN, HERE) == Refusal(15 * 60)


@pytest.mark.anyio
async def test_a_refused_attempt_is_not_counted(
    limiter: LoginRateLimiter, clock: ManualClock
) -> None:
    await fail(limiter, ANN, HERE, 3)
    clock.advance(60)
    for _ in range(10):
        assert await limiter.reserve(ANN, HERE) == Refusal(14 * 60)
    clock.advance(14 * 60)  # the window of the first failure, not of the refusals
    await reserve(limiter, ANN, HERE)


@pytest.mark.anyio
async def test_the_account_at_one_address_locks_only_that_address(
    limiter: LoginRateLimiter,
) -> None:
    await fail(limiter, ANN, HERE, 3)
    assert isinstance(await limiter.reserve(ANN, HERE), Refusal)
    await reserve(limiter, ANN, THERE)  # the owner, elsewhere
    await reserve(limiter, "bob@example.com", HERE)  # another account, here


@pytest.mark.anyio
async def test_one_address_is_limited_across_accounts(limiter: LoginRateLimiter) -> None:
    for number in range(5):
        await fail(limiter, f"guess{number}@example.com", HERE)
    assert isinstance(await limiter.reserve("guess9@example.com", HERE), Refusal)
    await reserve(limiter, "guess9@example.com", THERE)


@pytest.mark.anyio
async def test_the_account_ceiling_holds_across_addresses(limiter: LoginRateLimiter) -> None:
    for number in range(8):
        await fail(limiter, ANN, f"203.0.113.{number}")
    refused = await limiter.reserve(ANN, "203.0.113.200")
    assert refused == Refusal(15 * 60)
    await reserve(limiter, "bob@example.com", "203.0.113.200")


@pytest.mark.anyio
async def test_one_address_alone_cannot_reach_the_account_ceiling(clock: ManualClock) -> None:
    limiter = LoginRateLimiter(clock)
    for _ in range(limiter.per_account):
        await limiter.reserve(ANN, HERE)  # refused after the per-(account, address) share
    owner = await limiter.reserve(ANN, THERE)
    assert isinstance(owner, Reservation)


@pytest.mark.anyio
async def test_a_success_clears_the_account_at_the_address_but_not_the_address(
    limiter: LoginRateLimiter,
) -> None:
    await fail(limiter, ANN, HERE, 2)
    await limiter.settle(await reserve(limiter, ANN, HERE), "success")
    await fail(limiter, ANN, HERE, 3)  # three more: the pair starts again
    assert isinstance(await limiter.reserve(ANN, HERE), Refusal)
    # The address still holds all five failures, the success not among them.
    assert isinstance(await limiter.reserve("bob@example.com", HERE), Refusal)


@pytest.mark.anyio
async def test_a_success_does_not_reset_the_account_ceiling(limiter: LoginRateLimiter) -> None:
    for number in range(7):
        await fail(limiter, ANN, f"203.0.113.{number}")
    await limiter.settle(await reserve(limiter, ANN, THERE), "success")  # the owner signs in
    await fail(limiter, ANN, "203.0.113.100")
    assert isinstance(await limiter.reserve(ANN, "203.0.113.101"), Refusal)


@pytest.mark.anyio
async def test_a_success_is_not_counted_as_a_failure(limiter: LoginRateLimiter) -> None:
    for _ in range(10):
        await limiter.settle(await reserve(limiter, ANN, HERE), "success")
    await fail(limiter, "bob@example.com", HERE, 3)
    await fail(limiter, "carol@example.com", HERE, 2)
    assert isinstance(await limiter.reserve("dave@example.com", HERE), Refusal)  # 5, not 15


@pytest.mark.anyio
async def test_an_attempt_never_checked_costs_nothing(limiter: LoginRateLimiter) -> None:
    for _ in range(10):
        await limiter.settle(await reserve(limiter, ANN, HERE), "not_checked")
    await fail(limiter, ANN, HERE, 3)
    assert isinstance(await limiter.reserve(ANN, HERE), Refusal)


@pytest.mark.anyio
async def test_a_late_settlement_does_not_erase_a_newer_failure(
    limiter: LoginRateLimiter, clock: ManualClock
) -> None:
    stale = await reserve(limiter, ANN, HERE)
    clock.advance(15 * 60)  # the reservation has expired by itself
    await fail(limiter, ANN, HERE, 3)
    await limiter.settle(stale, "not_checked")
    assert isinstance(await limiter.reserve(ANN, HERE), Refusal)


@pytest.mark.anyio
async def test_retry_after_counts_down_and_the_window_slides(
    limiter: LoginRateLimiter, clock: ManualClock
) -> None:
    await fail(limiter, ANN, HERE)
    clock.advance(100)
    await fail(limiter, ANN, HERE, 2)
    assert await limiter.reserve(ANN, HERE) == Refusal(15 * 60 - 100)
    clock.advance(15 * 60 - 101)
    assert await limiter.reserve(ANN, HERE) == Refusal(1)
    clock.advance(1)
    await reserve(limiter, ANN, HERE)  # the oldest failure left the window...
    assert await limiter.reserve(ANN, HERE) == Refusal(100)  # ...the next leaves in 100 s


@pytest.mark.anyio
async def test_setting_the_wall_clock_neither_lifts_nor_extends_a_limit(
    limiter: LoginRateLimiter, clock: ManualClock
) -> None:
    await fail(limiter, ANN, HERE, 3)
    clock.set_wall(3600)
    assert await limiter.reserve(ANN, HERE) == Refusal(15 * 60)
    clock.set_wall(-7200)
    assert await limiter.reserve(ANN, HERE) == Refusal(15 * 60)


def test_the_window_holds_a_bounded_number_of_keys(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counters, "MAX_KEYS", 3)
    window = SlidingWindowLimiter(clock, limit=1, window=60)
    for key in "abcde":
        window.record(key)
    assert len(window) == 3
    assert window.retry_after("a") is None  # the least recently used went first
    assert window.retry_after("e") == 60
