"""The circuit breaker on a virtual clock: no sleeps, no wall-clock bounds."""

from __future__ import annotations

import pytest

from tests.fakes.clock import VirtualClock
from worker.delivery.breaker import BreakerPolicy, BreakerState, CircuitBreaker

POLICY = BreakerPolicy(failures=5, ratio=0.5, window=20, open_s=30.0)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def breaker(clock: VirtualClock, changes: list[tuple[str, str]]) -> CircuitBreaker:
    return CircuitBreaker(
        policy=POLICY, clock=clock, on_change=lambda old, new: changes.append((old, new))
    )


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_it_opens_after_the_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 4)
    breaker.record_success()
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED


def test_it_opens_on_the_failure_ratio_once_the_window_is_full(breaker: CircuitBreaker) -> None:
    # Alternating outcomes: never 5 in a row, but half of the window failed.
    for i in range(19):
        assert breaker.allow()
        if i % 2:
            breaker.record_success()
        else:
            breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # 10 of 19: the window is not full yet
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED  # 10 of 20 outcomes, the last a success
    breaker.record_failure()  # the window slides: 10 of 20 failed, with this one
    assert breaker.state is BreakerState.OPEN


def test_below_the_ratio_it_stays_closed(breaker: CircuitBreaker) -> None:
    for i in range(100):
        if i % 3 == 0:
            breaker.record_failure()
        else:
            breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_after_the_open_period_exactly_one_probe_goes(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    fail(breaker, 5)
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # others are still refused while it is out
    assert not breaker.allow()


def test_the_probe_s_success_closes_it(
    breaker: CircuitBreaker, clock: VirtualClock, changes: list[tuple[str, str]]
) -> None:
    fail(breaker, 5)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_the_probe_s_failure_opens_it_again_for_a_full_period(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    fail(breaker, 5)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_the_open_period(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    fail(breaker, 5)
    clock.advance(30)
    assert breaker.allow()
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_retry_after_pauses_it_for_at_least_that_long(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    assert breaker.allow()
    breaker.record_failure(retry_after_s=120)  # one failure, far below the threshold
    assert breaker.state is BreakerState.OPEN
    clock.advance(119)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_a_retry_after_pauses_it_ten_minutes_at_most(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    """Found by the second review: `Retry-After: 86400` paused the sink, and every
    retry of its parked changes, for a day."""
    assert breaker.allow()
    breaker.record_failure(retry_after_s=86400)
    clock.advance(600)
    assert breaker.allow()


def test_retry_after_longer_than_the_open_period_wins_when_it_trips(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    fail(breaker, 4)
    breaker.record_failure(retry_after_s=90)
    clock.advance(60)
    assert not breaker.allow()
    clock.advance(30)
    assert breaker.allow()


def test_a_short_retry_after_does_not_cut_an_open_period(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    fail(breaker, 5)
    breaker.record_failure(retry_after_s=1)
    clock.advance(2)
    assert not breaker.allow()


def test_reset_closes_it_with_a_clean_history(breaker: CircuitBreaker) -> None:
    fail(breaker, 5)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED
