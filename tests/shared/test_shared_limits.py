"""Rate limits counted in Redis: one limit for every instance, checked and counted in one
atomic step; per process while Redis is unreachable."""

from __future__ import annotations

import anyio
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bff.clock import ManualClock
from bff.shared.counters import Counters, Taken, Window
from bff.shared.redis_link import RedisLink
from bff.web.auth.ratelimit import LoginRateLimiter, Refusal, Reservation
from bff.web.partner.limits import PartnerLimits
from tests.shared.conftest import Instance, started_link
from tests.web.helpers import PASSWORD, make_user, sign_in
from tests.web.partner.test_token import TOKEN, form, make_partner, seed_pairs

pytestmark = pytest.mark.redis

ANN = "ann@example.com"
HERE, THERE = "192.0.2.1", "198.51.100.2"
WINDOW = Window("test", limit=3, seconds=60)


# Two instances of the app.


def test_sign_in_failures_on_a_count_on_b(shared_pair: tuple[Instance, Instance]) -> None:
    a, b = shared_pair
    make_user(a.client, ANN)
    # Five failures per (account, address): three on A, two on B.
    for instance in (a, a, a, b, b):
        assert sign_in(instance.client, ANN, "wrong password").status_code == 400
    for instance in (b, a):
        refused = sign_in(instance.client, ANN, PASSWORD)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(15 * 60)


def test_partner_token_failures_on_a_count_on_b(shared_pair: tuple[Instance, Instance]) -> None:
    a, b = shared_pair
    seed_pairs(a.client)
    partner = make_partner(a.client)
    wrong = form(partner, client_secret="bffs_wrong")
    for instance in (a, b) * 5:
        assert instance.client.post(TOKEN, data=wrong).status_code == 401
    refused = a.client.post(TOKEN, data=form(partner))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.json()["error"] == "slow_down"


# The counters on their own.


@pytest.mark.anyio
async def test_concurrent_takes_from_two_processes_never_pass_the_limit(
    redis_url: str, prefix: str, clock: ManualClock
) -> None:
    async with started_link(redis_url, prefix) as one, started_link(redis_url, prefix) as two:
        counters = [Counters(clock, one), Counters(clock, two)]
        window = Window("race", limit=7, seconds=60)
        answers: list[Taken | int] = []
        start = anyio.Event()

        async def take(counter: Counters) -> None:
            await start.wait()
            answers.append(await counter.take([(window, "key")]))

        async with anyio.create_task_group() as tasks:
            for number in range(40):
                tasks.start_soon(take, counters[number % 2])
            start.set()
        taken = [answer for answer in answers if isinstance(answer, Taken)]
        assert len(taken) == 7
        assert all(answer.member is not None for answer in taken)  # counted in Redis
        assert sorted(answer for answer in answers if isinstance(answer, int)) == [60] * 33


@pytest.mark.anyio
async def test_a_take_is_all_or_nothing_across_its_windows(
    link: RedisLink, clock: ManualClock
) -> None:
    counters = Counters(clock, link)
    narrow = Window("narrow", limit=1, seconds=30)
    for _ in range(3):
        assert isinstance(await counters.take([(WINDOW, "shared")]), Taken)
    # The wide window is full: the narrow one is not counted either.
    assert await counters.take([(narrow, "k"), (WINDOW, "shared")]) == 60
    assert isinstance(await counters.take([(narrow, "k")]), Taken)
    assert await counters.take([(narrow, "k")]) == 30


@pytest.mark.anyio
async def test_the_window_slides_on_the_clock(link: RedisLink, clock: ManualClock) -> None:
    counters = Counters(clock, link)
    await counters.take([(WINDOW, "k")])
    clock.advance(20)
    await counters.take([(WINDOW, "k")])
    await counters.take([(WINDOW, "k")])
    assert await counters.take([(WINDOW, "k")]) == 40
    clock.advance(39.5)
    assert await counters.take([(WINDOW, "k")]) == 1
    clock.advance(0.5)
    assert isinstance(await counters.take([(WINDOW, "k")]), Taken)  # the first one left
    assert await counters.take([(WINDOW, "k")]) == 20


@pytest.mark.anyio
async def test_the_sign_in_limiter_in_redis(
    redis_url: str, prefix: str, clock: ManualClock
) -> None:
    """The in-process rules, held by two processes together."""
    async with started_link(redis_url, prefix) as one, started_link(redis_url, prefix) as two:
        a, b = (
            LoginRateLimiter(clock, per_account_at_address=3, per_address=5, shared=link)
            for link in (one, two)
        )

        async def reserve(limiter: LoginRateLimiter, email: str = ANN) -> Reservation:
            attempt = await limiter.reserve(email, HERE)
            assert isinstance(attempt, Reservation), attempt
            return attempt

        # Counted from the reservation, before any outcome.
        pending = [await reserve(a), await reserve(b)]
        await a.settle(await reserve(a), "failure")
        assert await b.reserve(ANN, HERE) == Refusal(15 * 60)
        # Never checked: costs nothing.
        await b.settle(pending[0], "not_checked")
        await a.settle(pending[1], "not_checked")
        await reserve(b)
        # A success clears the (account, address) window, not the address's.
        await b.settle(await reserve(b), "success")
        for _ in range(3):
            await a.settle(await reserve(a), "failure")
        assert await b.reserve(ANN, HERE) == Refusal(15 * 60)
        assert await a.reserve("bob@example.com", HERE) == Refusal(15 * 60)  # 5 at HERE
        assert isinstance(await b.reserve(ANN, THERE), Reservation)


@pytest.mark.anyio
async def test_partner_api_calls_share_one_limit(
    redis_url: str, prefix: str, clock: ManualClock
) -> None:
    async with started_link(redis_url, prefix) as one, started_link(redis_url, prefix) as two:
        a, b = (PartnerLimits(clock, requests_per_app=3, shared=link) for link in (one, two))
        assert [await a.api_call(7), await b.api_call(7), await a.api_call(7)] == [None] * 3
        assert await b.api_call(7) == 60
        assert await a.api_call(8) is None


# Degraded.


@pytest.mark.anyio
async def test_while_redis_is_unreachable_the_limits_hold_per_process(
    prefix: str, clock: ManualClock
) -> None:
    async with started_link("redis://127.0.0.1:1/0", prefix) as unreachable:
        assert not unreachable.healthy
        limiter = LoginRateLimiter(clock, per_account_at_address=2, shared=unreachable)
        for _ in range(2):
            attempt = await limiter.reserve(ANN, HERE)
            assert isinstance(attempt, Reservation)
            assert attempt.taken.member is None  # in process
        assert await limiter.reserve(ANN, HERE) == Refusal(15 * 60)


@pytest.mark.anyio
async def test_a_take_that_loses_redis_counts_in_process_and_degrades_the_link(
    link: RedisLink, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = Counters(clock, link)
    lost: list[BaseException] = []
    monkeypatch.setattr(link, "lost", lost.append)

    async def unreachable(*args: object, **kwargs: object) -> object:
        raise RedisConnectionError("connection reset")

    monkeypatch.setattr(counters, "_take_script", unreachable)
    taken = await counters.take([(WINDOW, "k")])
    assert isinstance(taken, Taken) and taken.member is None
    assert [str(error) for error in lost] == ["connection reset"]
    # Released where it was counted.
    await counters.release(taken, [WINDOW])
    for _ in range(3):
        assert isinstance(await counters.take([(WINDOW, "k")]), Taken)
