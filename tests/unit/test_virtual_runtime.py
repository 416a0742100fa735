"""The test runtime on virtual time: waits end by a set or by the test moving the clock."""

from __future__ import annotations

import threading

from tests.conftest import wait_until
from tests.fakes.runtime import VirtualTimeRuntime


def test_a_timed_wait_ends_when_the_clock_reaches_its_deadline_not_before() -> None:
    runtime = VirtualTimeRuntime()
    event = runtime.event()
    started = runtime.monotonic()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(event.wait(2.0)))
    waiter.start()
    wait_until(lambda: runtime.waiting() == [2.0])

    runtime.advance(1.5)
    assert runtime.waiting() == [2.0]  # still blocked: its deadline is not reached
    assert runtime.skip()  # to the deadline, and no further
    waiter.join(timeout=10)

    assert results == [False]
    assert runtime.monotonic() - started == 2.0
    assert not runtime.skip()  # nothing waits any more


def test_a_set_ends_a_wait_with_no_time_passing() -> None:
    runtime = VirtualTimeRuntime()
    event = runtime.event()
    started = runtime.monotonic()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(event.wait(60.0)))
    waiter.start()
    wait_until(lambda: runtime.waiting() == [60.0])

    event.set()
    waiter.join(timeout=10)

    assert results == [True]
    assert runtime.monotonic() == started


def test_a_spawned_task_joins_on_the_virtual_clock() -> None:
    runtime = VirtualTimeRuntime()
    release = threading.Event()
    task = runtime.spawn("held", lambda: release.wait(10))
    started = runtime.monotonic()
    joined = threading.Thread(target=lambda: task.join(timeout=5.0))
    joined.start()
    wait_until(lambda: runtime.waiting() == [5.0])

    assert runtime.skip()  # the join gives up after 5 virtual seconds
    joined.join(timeout=10)
    assert task.is_alive()
    assert runtime.monotonic() - started == 5.0
    release.set()
    wait_until(lambda: not task.is_alive())
