"""The read pacer on an injected clock: catch-up, paced and idle modes, AIMD throttling."""

from __future__ import annotations

import itertools

import pytest

from tests.fakes.clock import VirtualClock
from worker.poller.pacing import (
    MAX_THROTTLED_INTERVAL_S,
    MIN_READ_INTERVAL_S,
    RATE_INCREASE_PER_S,
    UNLIMITED_RATE_PER_S,
    ReadPacer,
)

FULL = 1000


def pacer(clock: VirtualClock, idle_wait_s: float = 0.5) -> ReadPacer:
    return ReadPacer(clock=clock, idle_wait_s=idle_wait_s, full_page=FULL)


def read(pacer: ReadPacer, clock: VirtualClock, records: int) -> float:
    """Wait out the pacer, read a page of `records`; the wait it asked for."""
    wait = pacer.wait_s()
    clock.advance(wait)
    pacer.reading()
    pacer.page(records)
    return wait


def test_full_pages_are_read_again_at_once() -> None:
    clock = VirtualClock()
    p = pacer(clock)
    read(p, clock, FULL)

    waits = [read(p, clock, FULL) for _ in range(20)]

    assert waits == [0.0] * 20
    assert p.catching_up


def test_a_partial_page_returns_to_five_reads_a_second() -> None:
    clock = VirtualClock()
    p = pacer(clock)
    read(p, clock, FULL)
    read(p, clock, FULL)

    assert read(p, clock, 999) == 0.0  # the read after the last full page: at once
    assert p.wait_s() == pytest.approx(MIN_READ_INTERVAL_S)
    clock.advance(0.05)  # settling the page took a while: it counts toward the interval
    assert p.wait_s() == pytest.approx(MIN_READ_INTERVAL_S - 0.05)
    assert not p.catching_up


def test_idle_waits_double_up_to_the_idle_wait_as_before() -> None:
    clock = VirtualClock()
    p = pacer(clock, idle_wait_s=1.0)
    read(p, clock, 5)

    waits = [read(p, clock, 0) for _ in range(5)]

    assert waits[0] == pytest.approx(MIN_READ_INTERVAL_S)  # after the page with records
    assert waits[1:] == pytest.approx([0.4, 0.8, 1.0, 1.0])
    read(p, clock, 1)  # records again: the idle wait starts over
    assert p.wait_s() == pytest.approx(MIN_READ_INTERVAL_S)
    read(p, clock, 0)
    assert p.wait_s() == pytest.approx(0.4)


def test_an_idle_wait_shorter_than_the_interval_still_keeps_reads_200_ms_apart() -> None:
    clock = VirtualClock()
    p = pacer(clock, idle_wait_s=0.1)
    read(p, clock, 0)
    read(p, clock, 0)

    assert p.wait_s() == pytest.approx(MIN_READ_INTERVAL_S)


def test_throttling_halves_the_allowed_rate_down_to_the_floor() -> None:
    clock = VirtualClock()
    p = pacer(clock)
    read(p, clock, FULL)
    assert p.rate_per_s is None  # catching up, no limit

    waits = []
    for _ in range(10):
        p.reading()
        waits.append(p.throttled())
        clock.advance(waits[-1])

    # the first throttle falls back to the paced 5/s, each next one halves it
    assert waits[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert max(waits) == pytest.approx(MAX_THROTTLED_INTERVAL_S)  # bounded: the floor
    assert waits[-1] == pytest.approx(MAX_THROTTLED_INTERVAL_S)
    assert p.throttles == 10


def test_success_raises_the_allowed_rate_additively_until_no_wait() -> None:
    clock = VirtualClock()
    p = pacer(clock)
    read(p, clock, FULL)
    p.reading()
    p.throttled()
    assert p.rate_per_s == pytest.approx(5.0)

    rates = [5.0]
    while True:
        read(p, clock, FULL)
        if p.rate_per_s is None:
            break
        rates.append(p.rate_per_s)

    steps = [b - a for a, b in itertools.pairwise(rates)]
    assert steps == pytest.approx([RATE_INCREASE_PER_S] * len(steps))  # additive
    assert rates[-1] + RATE_INCREASE_PER_S >= UNLIMITED_RATE_PER_S  # then no limit
    assert len(rates) == 30  # 5/s to 20/s by 0.5/s: a few seconds of catch-up reads
    assert p.throttles == 0
    assert read(p, clock, FULL) == 0.0  # unlimited again: catch-up reads do not wait


def test_the_allowed_rate_bounds_catch_up_reads() -> None:
    clock = VirtualClock()
    p = pacer(clock)
    read(p, clock, FULL)
    p.reading()
    p.throttled()
    p.reading()
    p.throttled()  # 2.5/s
    clock.advance(p.wait_s())
    p.reading()
    p.page(FULL)  # one success: 3.0/s

    assert p.catching_up
    assert p.wait_s() == pytest.approx(1 / (2.5 + RATE_INCREASE_PER_S))
