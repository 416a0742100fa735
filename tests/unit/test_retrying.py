"""The retry policy: bounded attempts, full-jitter waits, Retry-After, stop-aware sleeps."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from tests.conftest import wait_until
from tests.fakes.runtime import VirtualTimeRuntime
from worker.core.errors import DeliveryError
from worker.delivery.retrying import RetryPolicy, call_with_retry

CONTEXT = {"sink": "webhook", "notification_id": "evt-1", "order_id": "ORD1"}


def flaky(errors: list[DeliveryError]) -> tuple[Callable[[], None], list[int]]:
    """An action that raises `errors` in turn, then succeeds; counts its calls."""
    calls: list[int] = []

    def action() -> None:
        calls.append(len(calls) + 1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]

    return action, calls


def transient(
    message: str = "webhook: HTTP 503", retry_after_s: float | None = None
) -> DeliveryError:
    return DeliveryError(message, transient=True, retry_after_s=retry_after_s)


def test_success_on_the_first_attempt_neither_sleeps_nor_logs_a_retry() -> None:
    action, calls = flaky([])
    sleeps: list[float] = []
    with capture_logs() as logs:
        result = call_with_retry(action, RetryPolicy(), threading.Event(), CONTEXT, sleeps.append)
    assert (result.count, result.error) == (1, None)
    assert calls == [1]
    assert sleeps == []
    assert logs == []


def test_transient_errors_are_retried_until_success_and_each_retry_is_logged() -> None:
    errors = [transient("webhook: HTTP 503"), transient("webhook: ReadTimeoutError: x")]
    action, calls = flaky(errors)
    sleeps: list[float] = []
    with capture_logs() as logs:
        result = call_with_retry(
            action, RetryPolicy(5, 0.1, 10.0), threading.Event(), CONTEXT, sleeps.append
        )
    assert (result.count, result.error) == (3, None)
    assert len(calls) == 3
    assert len(sleeps) == 2
    retries = [e for e in logs if e["event"] == "notification.retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert [r["error"] for r in retries] == [str(e) for e in errors]
    assert [r["delay_ms"] for r in retries] == [round(s * 1000) for s in sleeps]
    assert all(r["log_level"] == "warning" for r in retries)
    assert all(r[key] == value for r in retries for key, value in CONTEXT.items())


def test_a_permanent_error_is_not_retried() -> None:
    error = DeliveryError("webhook: HTTP 400", transient=False)
    action, calls = flaky([error, error])
    sleeps: list[float] = []
    result = call_with_retry(action, RetryPolicy(8), threading.Event(), CONTEXT, sleeps.append)
    assert result.count == 1
    assert result.error is error
    assert calls == [1]
    assert sleeps == []


def test_attempts_are_bounded_and_the_last_error_is_reported() -> None:
    errors = [transient(f"webhook: HTTP 50{i}") for i in range(10)]
    action, calls = flaky(errors)
    sleeps: list[float] = []
    result = call_with_retry(
        action, RetryPolicy(4, 0.01, 1.0), threading.Event(), CONTEXT, sleeps.append
    )
    assert result.count == 4
    assert len(calls) == 4
    assert result.error is errors[3]
    assert len(sleeps) == 3


def test_an_unexpected_exception_is_not_swallowed() -> None:
    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        call_with_retry(broken, RetryPolicy(3), threading.Event(), CONTEXT, lambda _: None)


def test_waits_grow_exponentially_from_base_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """With jitter pinned to its upper bound, the window doubles from base and stops at cap."""
    windows: list[tuple[float, float]] = []

    def upper(low: float, high: float) -> float:
        windows.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", upper)
    action, _ = flaky([transient() for _ in range(7)])
    sleeps: list[float] = []
    result = call_with_retry(
        action, RetryPolicy(8, 0.2, 3.0), threading.Event(), CONTEXT, sleeps.append
    )
    assert result.error is None
    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0])
    assert all(low == 0 for low, _ in windows), "full jitter draws from 0"


def test_waits_are_fully_jittered_within_the_window() -> None:
    policy = RetryPolicy(6, 0.1, 1.0)
    by_attempt: dict[int, list[float]] = {n: [] for n in range(1, 6)}
    for _ in range(200):
        action, _ = flaky([transient() for _ in range(5)])
        sleeps: list[float] = []
        call_with_retry(action, policy, threading.Event(), CONTEXT, sleeps.append)
        for attempt, wait in enumerate(sleeps, start=1):
            by_attempt[attempt].append(wait)
    for attempt, waits in by_attempt.items():
        window = min(1.0, 0.1 * 2 ** (attempt - 1))
        assert all(0 <= w <= window for w in waits)
        # spread over the whole window, not a fixed or equal-jitter wait
        assert min(waits) < window * 0.25
        assert max(waits) > window * 0.75


def test_retry_after_is_honoured() -> None:
    action, _ = flaky([transient("webhook: HTTP 429", retry_after_s=2.0)])
    sleeps: list[float] = []
    with capture_logs() as logs:
        result = call_with_retry(
            action, RetryPolicy(3, 0.01, 30.0), threading.Event(), CONTEXT, sleeps.append
        )
    assert result.error is None
    assert sleeps == [2.0]
    assert [e["delay_ms"] for e in logs if e["event"] == "notification.retry"] == [2000]


def test_retry_after_is_capped() -> None:
    action, _ = flaky([transient("webhook: HTTP 503", retry_after_s=3600.0)])
    sleeps: list[float] = []
    call_with_retry(action, RetryPolicy(3, 0.01, 5.0), threading.Event(), CONTEXT, sleeps.append)
    assert sleeps == [5.0]


def test_a_stop_event_ends_retrying_after_the_current_attempt() -> None:
    stop = threading.Event()

    def fails_then_stops() -> None:
        stop.set()  # SIGTERM arrives while this attempt is in flight
        raise transient()

    sleeps: list[float] = []
    result = call_with_retry(fails_then_stops, RetryPolicy(8), stop, CONTEXT, sleeps.append)
    assert result.count == 1
    assert result.error is not None
    assert result.error.transient
    assert sleeps == []


def test_a_stop_during_the_wait_starts_no_new_attempt() -> None:
    stop = threading.Event()
    action, calls = flaky([transient() for _ in range(5)])
    result = call_with_retry(action, RetryPolicy(8, 0.01, 0.1), stop, CONTEXT, lambda _: stop.set())
    assert len(calls) == 1
    assert result.count == 1
    assert result.error is not None
    assert result.error.transient


def test_the_default_sleep_is_cut_short_by_the_stop_event() -> None:
    """No injected sleep: a 60 s backoff ends as soon as the stop event is set. The stop
    waits on a virtual clock that never moves, so only the stop can end the wait."""
    stop = VirtualTimeRuntime().event()
    action, calls = flaky([transient(retry_after_s=60.0) for _ in range(3)])
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            call_with_retry(action, RetryPolicy(3, 60.0, 60.0), stop, CONTEXT)
        )
    )
    thread.start()
    wait_until(lambda: calls)  # the first attempt failed; now it is waiting 60 s
    stop.set()
    thread.join(timeout=10)  # a safety net: without the stop the wait would never end
    assert not thread.is_alive()
    assert results[0].count == 1
    assert results[0].error is not None
