from __future__ import annotations

from bff.broker.circuit import CircuitBreaker, CircuitState
from bff.clock import ManualClock


def state(breaker: CircuitBreaker) -> CircuitState:
    # A call, so mypy does not keep a narrowed property type across method calls.
    return breaker.state


def test_opens_after_threshold_and_half_opens_for_one_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(clock, threshold=3, open_for=10)
    for _ in range(2):
        assert breaker.acquire()
        breaker.failure()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.acquire()
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.acquire()
    assert breaker.retry_after() == 10
    clock.advance(10)
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.acquire()  # the probe
    assert not breaker.acquire()  # everyone else waits for its verdict
    assert breaker.retry_after() == 1.0
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN  # one failed probe re-opens
    clock.advance(10)
    assert breaker.acquire()
    breaker.success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.retry_after() == 0


def test_success_resets_the_count_and_neutral_frees_the_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(clock, threshold=2, open_for=5)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert state(breaker) is CircuitState.CLOSED
    breaker.failure()
    clock.advance(5)
    assert breaker.acquire()
    breaker.neutral()  # e.g. a 429: says nothing about health
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.acquire()
