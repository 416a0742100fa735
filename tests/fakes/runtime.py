"""Thread runtimes with a test's clock: real threads, injected or virtual time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.clock import VirtualClock
from worker.core.runtime import Signal, Task, ThreadRuntime


class ClockRuntime(ThreadRuntime):
    """Stands in for `worker.core.runtime.THREADS` where a test fixes the clock: wall time and
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


class VirtualTimeRuntime:
    """Real threads on a virtual clock: a timed wait ends when its event is set or when
    the test moves the clock past its deadline, never by itself.

    A test drives time with `skip()` (to the earliest deadline a thread is blocked on)
    or `advance()`; while it does neither, time stands still, so "the stop ended it"
    can be told apart from "the wait ran out" without a wall-clock bound.
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock()
        self._cond = threading.Condition()
        self._blocked: list[_TimedWait] = []

    def time(self) -> float:
        return self.clock()

    def monotonic(self) -> float:
        return self.clock()

    def event(self) -> Signal:
        return VirtualEvent(self)

    def spawn(self, name: str, target: Callable[[], None]) -> Task:
        task = _VirtualTask(self)

        def run() -> None:
            try:
                target()
            finally:
                task.done.set()

        threading.Thread(target=run, name=name, daemon=True).start()
        return task

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.clock.advance(seconds)
            self._cond.notify_all()

    def skip(self) -> bool:
        """Move the clock to the earliest deadline a thread waits for; False if none,
        or while a wait already over (set, or due) has not yet resumed its thread: time
        does not run ahead of a thread that has yet to act on the present."""
        with self._cond:
            now = self.clock()
            if not self._blocked or any(w.over(now) for w in self._blocked):
                return False
            self.clock.advance(min(w.deadline for w in self._blocked) - now)
            self._cond.notify_all()
            return True

    def waiting(self) -> list[float]:
        """The timeouts (as asked) of the timed waits blocked now."""
        with self._cond:
            return [w.timeout for w in self._blocked]

    def block(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until `done()` or, with a timeout, until the clock passes it."""
        with self._cond:
            if timeout is None:
                self._cond.wait_for(done)
                return True
            wait = _TimedWait(self.clock() + timeout, timeout, done)
            self._blocked.append(wait)
            try:
                self._cond.wait_for(lambda: wait.over(self.clock()))
            finally:
                self._blocked.remove(wait)
            return done()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()


@dataclass(frozen=True, eq=False)
class _TimedWait:
    deadline: float
    timeout: float
    done: Callable[[], bool]

    def over(self, now: float) -> bool:
        return now >= self.deadline or self.done()


class VirtualEvent:
    """A `threading.Event` whose timed waits run on the runtime's virtual clock."""

    def __init__(self, runtime: VirtualTimeRuntime) -> None:
        self._runtime = runtime
        self._flag = False

    def set(self) -> None:
        self._flag = True
        self._runtime.notify()

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        return self._runtime.block(self.is_set, timeout)


class _VirtualTask:
    """A thread whose `join(timeout)` runs on the virtual clock."""

    def __init__(self, runtime: VirtualTimeRuntime) -> None:
        self._runtime = runtime
        self.done = VirtualEvent(runtime)

    def is_alive(self) -> bool:
        return not self.done.is_set()

    def join(self, timeout: float | None = None) -> None:
        self.done.wait(timeout)
