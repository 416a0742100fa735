"""The rate limit of a sink: a token bucket (ORDERSTREAM_WEBHOOK_RATE calls per second).

The bucket holds up to `burst` tokens (max(1, rate)) and refills at `rate` per second.
Each call takes one; when none is left the caller reserves the next one and sleeps until
it is due, so N calls from a full bucket take (N - burst) / rate seconds, however many
threads make them. Reserving under the lock and sleeping outside it keeps the waits fair
(first come, first served) without holding the lock through a sleep.

Written here (about thirty lines) rather than taken from a library: the ones on PyPI read
the system clock or sleep themselves, and the simulation needs both injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from worker.core.runtime import Signal


class Limiter(Protocol):
    """What a guarded sink asks of its rate limit: one token per call."""

    def acquire(self, stop: Signal | None = None) -> float | None:
        """Wait for a token; returns the seconds waited, or None if the wait was cut
        short (`stop` set, or the default sleep reporting an interruption)."""
        ...


class Unlimited:
    """Rate 0: no limit, no lock, no clock read."""

    def acquire(self, stop: Signal | None = None) -> float | None:
        """At once, 0.0: no token to wait for (the caller still checks its stop)."""
        return 0.0


class TokenBucket:
    """`rate` tokens a second, up to `burst` saved; waits are reserved first come, first served."""

    def __init__(
        self,
        *,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 (use Unlimited for no limit)")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._at = clock()

    def acquire(self, stop: Signal | None = None) -> float | None:
        """Take a token, or reserve the next and wait outside the lock (a cut wait spends it)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0  # below zero: a reservation of a token not yet minted
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            interrupted = stop.wait(wait) if stop is not None else self._sleep(wait)
            if interrupted:
                return None
        return wait


def limiter(
    rate: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> Limiter:
    """A token bucket for `rate` > 0, else no limit."""
    if rate <= 0:
        return Unlimited()
    return TokenBucket(rate=rate, clock=clock, sleep=sleep)
