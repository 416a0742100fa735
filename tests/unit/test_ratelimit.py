"""The token bucket on a virtual clock: its sleep advances the clock instead of waiting."""

from __future__ import annotations

import pytest

from tests.fakes.clock import VirtualClock
from worker.delivery.ratelimit import TokenBucket, Unlimited, limiter


class Sleeper:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.slept = 0.0

    def __call__(self, seconds: float) -> None:
        self.slept += seconds
        self.clock.advance(seconds)


@pytest.mark.parametrize(("rate", "calls"), [(5.0, 50), (1.0, 10), (0.5, 4), (20.0, 21)])
def test_n_calls_take_n_minus_burst_over_rate(rate: float, calls: int) -> None:
    clock = VirtualClock()
    sleep = Sleeper(clock)
    bucket = TokenBucket(rate=rate, clock=clock, sleep=sleep)
    start = clock()
    for _ in range(calls):
        bucket.acquire()
    burst = max(1.0, rate)
    assert clock() - start == pytest.approx((calls - burst) / rate)
    assert sleep.slept == pytest.approx((calls - burst) / rate)


def test_a_full_bucket_answers_at_once() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(rate=10, clock=clock, sleep=Sleeper(clock))
    assert [bucket.acquire() for _ in range(10)] == [0.0] * 10
    assert bucket.acquire() == pytest.approx(0.1)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = VirtualClock()
    sleep = Sleeper(clock)
    bucket = TokenBucket(rate=2, clock=clock, sleep=sleep)
    clock.advance(3600)
    for _ in range(4):
        bucket.acquire()
    assert sleep.slept == pytest.approx(1.0)  # 2 from the burst, then 2 at 2/s


def test_waiters_reserve_tokens_in_turn() -> None:
    """Without sleeping in between (threads arriving together) each waits one step more."""
    clock = VirtualClock()
    waits: list[float] = []
    bucket = TokenBucket(rate=4, clock=clock, sleep=waits.append)
    for _ in range(8):
        bucket.acquire()
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_rate_zero_is_no_limit() -> None:
    assert isinstance(limiter(0), Unlimited)
    assert limiter(0).acquire() == 0.0
    assert isinstance(limiter(3), TokenBucket)
