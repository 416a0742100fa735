"""The delivery retry policy, built in one place (the only importer of tenacity).

Bounded attempts, full-jitter exponential waits between `base` and `cap`, only
transient errors retried, `Retry-After` honoured up to the cap, and every wait cut
short by the stop event so SIGTERM never waits out a backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.core.runtime import Signal

log = structlog.get_logger()
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """A burst's retries as data: attempts and full-jitter bounds, built once from the
    settings, so tests can pass a policy that never waits."""

    max_attempts: int = 8
    base_s: float = 0.2
    cap_s: float = 30.0


class _WaitHonouringRetryAfter:
    """Full jitter, unless the receiver said how long to wait (capped)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(multiplier=policy.base_s, max=policy.cap_s)
        self._cap = policy.cap_s

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, DeliveryError) and error.retry_after_s is not None:
            return min(max(error.retry_after_s, 0.0), self._cap)
        return float(self._jitter(state))


def _is_transient(error: BaseException) -> bool:
    """Worth another attempt now; a sink refused without an attempt (breaker open,
    disabled) is not: the change is parked instead."""
    return (
        isinstance(error, DeliveryError)
        and error.transient
        and not isinstance(error, SinkUnavailableError)
    )


@dataclass(frozen=True)
class Attempts:
    """How a delivery went: `error` is None on success."""

    count: int
    error: DeliveryError | None


def call_with_retry(
    action: Callable[[], None],
    policy: RetryPolicy,
    stop: Signal,
    context: dict[str, str],
    sleep: Callable[[float], None] | None = None,
) -> Attempts:
    """Run `action` under the policy; never raises DeliveryError, reports it instead.

    `sleep` is injectable for tests; by default waits end early when `stop` is set.
    Most deliveries succeed at once, so the first attempt runs without building the
    retry machinery (a quarter of a notification's CPU on the hot path).
    """
    try:
        action()
    except DeliveryError as exc:
        if not _is_transient(exc) or policy.max_attempts <= 1:
            return Attempts(1, exc)
        return _retry_after_first(action, exc, policy, stop, context=context, sleep=sleep)
    return Attempts(1, None)


def _retry_after_first(
    action: Callable[[], None],
    first_error: DeliveryError,
    policy: RetryPolicy,
    stop: Signal,
    *,
    context: dict[str, str],
    sleep: Callable[[float], None] | None,
) -> Attempts:
    """Attempts 2..max under tenacity; attempt 1 (already made) replays its error."""
    replay: list[DeliveryError] = [first_error]
    last: list[DeliveryError] = [first_error]

    def attempt_action() -> None:
        if replay:
            raise replay.pop()  # tenacity decides the first wait from this error
        action()

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if isinstance(error, DeliveryError):
            last[:] = [error]
        log.warning(
            "notification.retry",
            attempt=state.attempt_number,
            delay_ms=round(delay * 1000),
            error=str(error),
            **context,
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts) | _StopWhenSet(stop),
        wait=_WaitHonouringRetryAfter(policy),
        retry=retry_if_exception(_is_transient),
        sleep=_stop_aware(sleep or _waiter(stop), stop),
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                attempt_action()
    except DeliveryError as exc:
        return Attempts(attempts, exc)
    except _InterruptedError:
        return Attempts(attempts, last[0])
    return Attempts(attempts, None)


def _waiter(stop: Signal) -> Callable[[float], None]:
    """A backoff wait that ends early when `stop` is set (tenacity's sleep_using_event)."""

    def wait(seconds: float) -> None:
        stop.wait(seconds)

    return wait


class _StopWhenSet(stop_base):
    """tenacity's `stop_when_event_set` for any Signal (a simulated one included)."""

    def __init__(self, stop: Signal) -> None:
        self._stop = stop

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._stop.is_set()


class _InterruptedError(Exception):
    """The stop event was set during a backoff wait."""


def _stop_aware(sleep: Callable[[float], None], stop: Signal) -> Callable[[float], None]:
    """A wait that ends the retries if the stop event is set meanwhile: a stop cuts the
    wait short and starts no new attempt (tenacity alone would make one more)."""

    def wait(seconds: float) -> None:
        sleep(seconds)
        if stop.is_set():
            raise _InterruptedError

    return wait
