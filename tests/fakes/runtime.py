"""A thread runtime with a test's clock: real threads and events, injected time."""

from __future__ import annotations

from collections.abc import Callable

from worker.runtime import ThreadRuntime


class ClockRuntime(ThreadRuntime):
    """Stands in for `worker.runtime.THREADS` where a test fixes the clock: wall time and
    monotonic time both come from `clock` (a VirtualClock, or a ticking stub)."""

    def __init__(
        self, clock: Callable[[], float], monotonic: Callable[[], float] | None = None
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic or clock

    def time(self) -> float:
        return self._clock()

    def monotonic(self) -> float:
        return self._monotonic()
