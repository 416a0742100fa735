"""The concurrency and time seam: threads, events and clocks come from one object.

Production runs on OS threads and the system clocks (`THREADS`). The deterministic
simulation (tests/sim) passes its own runtime, which runs the very same reader, runner
and dispatcher code on a virtual clock, one task at a time, in an order drawn from a
seed: that is how a run becomes reproducible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Signal(Protocol):
    """The part of `threading.Event` the worker uses (stop and wake signals)."""

    def set(self) -> None:
        """Wake every waiter, now and until cleared."""
        ...

    def clear(self) -> None:
        """Back to unset: later waits block again."""
        ...

    def is_set(self) -> bool:
        """Whether it is set, without waiting."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or `timeout` passes; True if set (a stop cuts a wait short)."""
        ...


class Task(Protocol):
    """Something running on its own: a thread here, a simulated task in tests/sim."""

    def is_alive(self) -> bool:
        """Whether it is still running its target."""
        ...

    def join(self, timeout: float | None = None) -> None:
        """Wait for it to end, at most `timeout` seconds; `is_alive` tells whether it did."""
        ...


class Runtime(Protocol):
    """Where the worker gets time, signals and concurrency."""

    def time(self) -> float:
        """Wall-clock epoch seconds (lease expiry, timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds for intervals and deadlines."""
        ...

    def event(self) -> Signal:
        """A new signal, unset; the simulation's waits run on its virtual clock."""
        ...

    def spawn(self, name: str, target: Callable[[], None]) -> Task:
        """Run `target` concurrently; the task is a daemon (it never holds up exit)."""
        ...


class ThreadRuntime:
    """The production runtime: daemon threads, `threading.Event`, the system clocks."""

    def time(self) -> float:
        """The system wall clock, `time.time()`."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`: never goes back, whatever NTP does to the wall clock."""
        return time.monotonic()

    def event(self) -> Signal:
        """A plain `threading.Event`."""
        return threading.Event()

    def spawn(self, name: str, target: Callable[[], None]) -> Task:
        """A daemon thread, started at once; the thread is the task."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread


THREADS = ThreadRuntime()
