"""The circuit breaker: one per remote sink, so a failing endpoint is spared, not hammered.

Closed, it lets every call through and keeps the last `window` outcomes. It opens after
`failures` consecutive failures, or once the window is full and its failure ratio
reaches `ratio`. Open, every call is refused for `open_s`; then it is half-open and lets
exactly one probe through (concurrent callers are still refused): the probe's success
closes it, its failure opens it again. A `Retry-After` on a failure (429, 503) also opens
it ("pauses" it) for at least that long, whatever the counts say.

Written here rather than taken from pybreaker: pybreaker reads `datetime.now()` (the
simulation needs an injected clock), has no failure-ratio window, and lets every caller
through while half-open instead of a single probe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

MAX_PAUSE_S = 600.0  # the longest a Retry-After pauses a sink


class BreakerState(StrEnum):
    """Closed lets every call through, open refuses them all, half-open lets one probe out."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and for how long (the ORDERSTREAM_BREAKER_* settings)."""

    failures: int = 5  # consecutive failures that open it
    ratio: float = 0.5  # failure ratio over a full window that opens it
    window: int = 20  # outcomes the ratio is taken over
    open_s: float = 30.0  # how long it stays open before the half-open probe


# Called after each transition (old, new), outside the breaker's lock.
Listener = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """Thread-safe; time comes from `clock` (monotonic seconds), never the wall clock."""

    def __init__(
        self,
        *,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Listener | None = None,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._listeners: list[Listener] = [on_change] if on_change else []
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._outcomes: deque[bool] = deque(maxlen=self.policy.window)  # True = failure
        self._consecutive = 0
        self._open_until = 0.0
        # When the half-open probe was let through (None: no probe out). A probe whose
        # outcome never comes back (its caller died) is replaced after `open_s`.
        self._probe_since: float | None = None

    @property
    def state(self) -> BreakerState:
        """The state as last changed: an open breaker past its time reads open until `allow`."""
        with self._lock:
            return self._state

    @property
    def open_until(self) -> float:
        """The clock reading at which an open breaker lets its probe through."""
        with self._lock:
            return self._open_until

    def refusing(self) -> bool:
        """True while every call would be refused (open, before the probe's time): a
        caller may skip work it could not send anyway. Never takes the probe."""
        with self._lock:
            return self._state is BreakerState.OPEN and self._clock() < self._open_until

    def allow(self) -> bool:
        """May a call go now? In half-open, True for the one probe only."""
        with self._lock:
            old = self._state
            now = self._clock()
            if old is BreakerState.CLOSED:
                return True
            if old is BreakerState.OPEN:
                if now < self._open_until:
                    return False
                self._state = BreakerState.HALF_OPEN
            elif self._probe_since is not None and now - self._probe_since < self.policy.open_s:
                return False  # half-open, and the probe is out
            self._probe_since = now
        self._changed(old, BreakerState.HALF_OPEN)
        return True

    def record_success(self) -> None:
        """An answer: closes a half-open breaker; a late one never closes an open breaker."""
        with self._lock:
            old = self._state
            self._consecutive = 0
            if old is BreakerState.CLOSED:
                self._outcomes.append(False)
                return
            if old is BreakerState.OPEN:
                return  # a call let through before it opened: too old to close it
            self._close()
        self._changed(old, BreakerState.CLOSED)

    def record_failure(self, retry_after_s: float | None = None) -> None:
        """A transient failure (timeout, connection error, 408/425/429/5xx)."""
        with self._lock:
            old = self._state
            now = self._clock()
            self._consecutive += 1
            self._outcomes.append(True)
            # A receiver's Retry-After pauses it, up to MAX_PAUSE_S: a day-long one must
            # not stop every retry of the sink for a day.
            pause = min(max(retry_after_s or 0.0, 0.0), MAX_PAUSE_S)
            if old is BreakerState.HALF_OPEN or self._tripped():
                pause = max(pause, self.policy.open_s)
            if pause <= 0.0:
                return
            self._open_until = max(self._open_until, now + pause)
            self._state = BreakerState.OPEN
            self._probe_since = None
        if old is not BreakerState.OPEN:
            self._changed(old, BreakerState.OPEN)

    def subscribe(self, listener: Listener) -> None:
        """Also call `listener` after each transition (the sink's publisher)."""
        self._listeners.append(listener)

    def reset(self) -> None:
        """Closed with a clean history (an operator enabled the sink again)."""
        with self._lock:
            old = self._state
            self._close()
        if old is not BreakerState.CLOSED:
            self._changed(old, BreakerState.CLOSED)

    def _tripped(self) -> bool:
        if self._consecutive >= self.policy.failures:
            return True
        full = len(self._outcomes) == self.policy.window
        return full and sum(self._outcomes) >= self.policy.ratio * self.policy.window

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._outcomes.clear()
        self._consecutive = 0
        self._open_until = 0.0
        self._probe_since = None

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        for listener in self._listeners:
            listener(old, new)
