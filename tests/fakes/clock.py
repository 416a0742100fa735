"""Virtual time: a clock and a stop event whose waits pass at once (tenacity-style tests)."""

from __future__ import annotations

import threading


class VirtualClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start_s: float = 1_714_557_600.0) -> None:
        self._lock = threading.Lock()
        self._now = start_s

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        with self._lock:
            self._now += seconds


class VirtualStop(threading.Event):
    """Stands in for the reader's stop event: `wait(t)` advances the clock by t instead
    of sleeping, and records t in `waits`.

    After `budget_s` of virtual waiting the event sets itself, so a reader run in the
    test's own thread always returns (an open shard is read "for N virtual seconds").
    """

    def __init__(self, clock: VirtualClock, budget_s: float = 60.0) -> None:
        super().__init__()
        self.clock = clock
        self.budget_s = budget_s
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if self.is_set():
            return True
        assert timeout is not None, "a virtual wait needs a timeout"
        self.waits.append(timeout)
        self.clock.advance(timeout)
        if sum(self.waits) >= self.budget_s:
            self.set()
        return self.is_set()
