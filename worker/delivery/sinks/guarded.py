"""A sink behind its endpoint's health: disabled flag, circuit breaker and rate limit.

`GuardedSink` is itself a `Sink`, so the dispatcher needs no change to use it. A refused
call raises `SinkUnavailableError` without touching the endpoint (the dispatcher parks the
change at once). What counts against the endpoint's health: transient failures only
(timeouts, connection errors, 408/425/429/5xx, throttling). A permanent 4xx is the
receiver refusing one change, not an ill endpoint, so it counts as an answer (a
success for the breaker). A 410 Gone disables the sink durably, in the state table,
until `worker sink enable NAME`; the worker re-reads that flag every `refresh_s`, so an
enable takes effect without a restart.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.core.models import Notification
from worker.core.runtime import Signal
from worker.core.stats import Stats
from worker.delivery.breaker import BreakerState, CircuitBreaker
from worker.delivery.ratelimit import Limiter, Unlimited
from worker.delivery.sinks import Sink
from worker.state.sinkstate import SinkState

log = structlog.get_logger()
REFRESH_S = 10.0  # how often a running worker re-reads its sinks' disabled flags
STORE_ERRORS = (ClientError, BotoCoreError)


class SinkStates(Protocol):
    """Where the disabled flag and the published breaker live (`SinkStateStore`)."""

    def read(self, name: str) -> SinkState:
        """The sink's stored state (disabled flag, reason); raises the store's error."""
        ...

    def disable(self, name: str, reason: str) -> None:
        """Disable the sink durably (a 410 Gone), until `worker sink enable`."""
        ...

    def publish_breaker(self, name: str, state: str) -> None:
        """Record a breaker transition so that other processes (`worker status`) can show it."""
        ...


class GuardedSink:
    """A remote sink behind its circuit breaker, rate limit and disabled flag: an
    endpoint that is down is refused at once instead of tying up delivery threads."""

    def __init__(
        self,
        *,
        sink: Sink,
        breaker: CircuitBreaker,
        limiter: Limiter | None = None,
        states: SinkStates | None = None,
        stats: Stats | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = REFRESH_S,
        stop: Signal | None = None,
    ) -> None:
        """`states` None keeps the disabled flag in memory only (tests, no state table);
        `clock` paces the re-reads (monotonic seconds); `stop` (SIGTERM), which also cuts
        the limiter's wait short, means no call starts after that wait."""
        self.name = sink.name
        self.local = sink.local
        self._sink = sink
        self._breaker = breaker
        self._limiter = limiter or Unlimited()
        self._states = states
        self._stats = stats or Stats()
        self._clock = clock
        self._refresh_s = refresh_s
        self._stop = stop
        self._next_refresh = -math.inf
        self._loaded = False  # the disabled flag read once from the state table
        self._disables = 0  # 410s seen here: a read older than the last one is stale
        self._refresh_lock = threading.Lock()
        self._paced = threading.local()  # a token `pace` took for this thread's send
        self._publish_lock = threading.Lock()  # never held over a write
        self._publishing = False
        self._publish_pending = False
        self.disabled = False
        self.reason: str | None = None
        self._unsaved = False  # disabled here, but the state table write failed
        self._stats.set_breaker_open(self.name, False)
        self._stats.set_disabled(self.name, False)
        breaker.subscribe(self._on_breaker)

    @property
    def breaker(self) -> CircuitBreaker:
        """The breaker this sink answers to."""
        return self._breaker

    def _admit(self) -> None:
        """Refuse (SinkUnavailableError) a call to a disabled sink or past its breaker."""
        self._refresh()
        if self.disabled:
            self._refuse(f"{self.name}: sink disabled ({self.reason}); `worker sink enable`")
        if not self._loaded and self._states is not None:
            self._refuse(f"{self.name}: its disabled flag could not be read yet")
        if not self._breaker.allow():
            self._refuse(f"{self.name}: circuit breaker open")

    def out_of_reach(self) -> bool:
        """Disabled, or its breaker refusing: the lane retrier waits rather than read
        its parked changes only to have them refused. The flag is re-read here too, so
        an operator's enable is seen while nothing but parked changes wait for it."""
        self._refresh()
        unread = not self._loaded and self._states is not None
        return self.disabled or unread or self._breaker.refusing()

    def pace(self, stop: Signal) -> bool:
        """Everything before a call that may wait or write (the disabled flag's read,
        the breaker, whose transition is published, a rate token), under the caller's
        stop: False if it was set meanwhile, so nothing is sent. Raises
        SinkUnavailableError when the sink refuses. The next `send` of this thread then
        goes straight to the call."""
        self._admit()
        if stop.is_set() or self._limiter.acquire(stop) is None or stop.is_set():
            return False
        self._paced.cleared = True
        return True

    def send(self, notification: Notification) -> None:
        """Admitted unless `pace` did it, then sent: answers feed the breaker, a 410 disables."""
        if getattr(self._paced, "cleared", False):
            self._paced.cleared = False  # `pace` admitted this call
        else:
            self._admit()
            if self._limiter.acquire() is None or (self._stop is not None and self._stop.is_set()):
                # Stopped while waiting for a token: nothing may start after a SIGTERM.
                raise SinkUnavailableError(f"{self.name}: stopping, not sent")
        try:
            self._sink.send(notification)
        except SinkUnavailableError:
            raise  # refused unsent (the sink is stopping): nothing the endpoint did
        except DeliveryError as exc:
            self._record(exc)
            raise
        except BaseException:
            self._breaker.record_failure()  # never leave a half-open probe out
            raise
        self._breaker.record_success()

    def flush(self) -> None:
        """The inner sink's flush: the guard buffers nothing."""
        self._sink.flush()

    def close(self) -> None:
        """Closes the inner sink."""
        self._sink.close()

    def _refuse(self, message: str) -> None:
        self._stats.refused(self.name)
        raise SinkUnavailableError(message)

    def _record(self, error: DeliveryError) -> None:
        if error.gone:
            self._disable(str(error))
        elif error.transient:
            self._breaker.record_failure(error.retry_after_s)
        else:
            self._breaker.record_success()  # the endpoint answered: it is up

    def _disable(self, reason: str) -> None:
        self._disables += 1  # a read of the flag begun before this must not undo it
        self.disabled, self.reason = True, reason
        self._stats.set_disabled(self.name, True)
        log.error("sink.disabled", sink=self.name, reason=reason)
        self._save_disable()

    def _save_disable(self) -> None:
        if self._states is None:
            return
        try:
            self._states.disable(self.name, self.reason or "")
        except STORE_ERRORS as exc:
            self._unsaved = True  # kept in memory; written again at the next refresh
            log.warning("sink.state_write_failed", sink=self.name, error=str(exc))
        else:
            self._unsaved = False

    def _refresh(self) -> None:
        """Re-read the disabled flag every `refresh_s`. Until it has been read once,
        every caller reads it (a flag not yet read must never let a send out, after a
        restart least of all); later, one caller at a time, the others going on with
        what is known. No lock is ever waited for over the read."""
        if self._states is None:
            return
        if not self._loaded:  # a failed first read refuses the send (transient), not lets it out
            self._loaded = self._reread()
            self._next_refresh = self._clock() + self._refresh_s
            return
        if self._clock() < self._next_refresh or not self._refresh_lock.acquire(blocking=False):
            return
        try:
            if self._clock() >= self._next_refresh:
                self._reread()
                self._next_refresh = self._clock() + self._refresh_s
        finally:
            self._refresh_lock.release()

    def _reread(self) -> bool:
        """Read the flag; False when the read failed (what is known stays as it was)."""
        assert self._states is not None
        if self._unsaved:
            self._save_disable()
            return True  # disabled here, whatever the table says
        disables = self._disables
        try:
            state = self._states.read(self.name)
        except STORE_ERRORS as exc:
            log.warning("sink.state_read_failed", sink=self.name, error=str(exc))
            return False
        if self._disables != disables:
            return True  # a 410 came while reading: what was read is older than it
        was = self.disabled
        self.disabled, self.reason = state.disabled, state.reason
        self._stats.set_disabled(self.name, state.disabled)
        if was and not state.disabled:
            log.info("sink.enabled", sink=self.name)
            self._breaker.reset()
        return True

    def _on_breaker(self, old: BreakerState, new: BreakerState) -> None:
        """Log and publish a transition. One thread publishes at a time and publishes
        again while transitions came meanwhile, reading the state each time, so the
        table ends with the newest; no lock is held over the write (a slow state table
        never holds up a delivery thread)."""
        self._stats.set_breaker_open(self.name, new is not BreakerState.CLOSED)
        if new is BreakerState.OPEN:
            log.warning("sink.breaker", sink=self.name, state=new.value, previous=old.value)
        else:
            log.info("sink.breaker", sink=self.name, state=new.value, previous=old.value)
        if self._states is None:
            return
        with self._publish_lock:
            self._publish_pending = True
            if self._publishing:
                return  # the thread publishing now publishes this one too
            self._publishing = True
        while True:
            with self._publish_lock:
                if not self._publish_pending:
                    self._publishing = False
                    return
                self._publish_pending = False
            try:
                self._states.publish_breaker(self.name, self._breaker.state.value)
            except STORE_ERRORS as exc:
                log.warning("sink.state_write_failed", sink=self.name, error=str(exc))
            except BaseException:
                with self._publish_lock:
                    self._publishing = False  # the next transition publishes again
                raise
