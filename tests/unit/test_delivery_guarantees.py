"""Regression tests for the delivery defects of issue 11, at the dispatcher's scale.

Each test names the defect it pins down; each failed on the code before its fix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.fakes.notify import MemoryDeadLetters, RecordingSink, notification
from worker.core.errors import DeliveryError
from worker.core.models import Notification, Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import BLOCKED, Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks import Sink

ONCE = RetryPolicy(max_attempts=1, base_s=0.0, cap_s=0.0)
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/Users/stream/2024-05-01T00:00:00.000"


class BufferedLocalSink:
    """Stands in for the log sink on its fast path: `send` buffers a line, `flush`
    writes the buffer out. Only flushed lines survive a kill -9."""

    name = "log"
    local = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.buffered: list[str] = []
        self.durable: list[str] = []

    def send(self, notification: Notification) -> None:
        with self._lock:
            self.buffered.append(notification.id)

    def flush(self) -> None:
        with self._lock:
            self.durable.extend(self.buffered)
            self.buffered.clear()

    def close(self) -> None:
        self.flush()


class GatedSink(RecordingSink):
    """A remote sink whose deliveries of one order wait for the test to open a gate."""

    def __init__(self, gated_order: str) -> None:
        super().__init__("webhook")
        self.gate = threading.Event()
        self._gated_order = gated_order

    def send(self, notification: Notification) -> None:
        if notification.order_id == self._gated_order:
            self.gate.wait(30)
        super().send(notification)


@pytest.fixture
def made() -> Iterator[list[Dispatcher]]:
    dispatchers: list[Dispatcher] = []
    yield dispatchers
    for dispatcher in dispatchers:
        dispatcher.close()


def dispatcher(
    made: list[Dispatcher],
    sinks: dict[str, Sink],
    dlq: MemoryDeadLetters | None = None,
    **options: float,
) -> Dispatcher:
    built = Dispatcher(
        sinks=sinks,
        rules=parse_rules(None, None, tuple(sinks)),
        policy=ONCE,
        dlq=dlq,
        stats=Stats(),
        concurrency=4,
        sleep=lambda _: None,
        **options,  # type: ignore[arg-type]  # float options, each checked against every parameter
    )
    made.append(built)
    return built


def test_a_progress_checkpoint_comes_only_after_the_sinks_flushed(
    made: list[Dispatcher],
) -> None:
    """Defect 2: progress (which checkpoints) ran while the log sink's lines were still
    buffered, so a kill -9 lost notifications that sat below the checkpoint."""
    log_sink, webhook = BufferedLocalSink(), GatedSink(gated_order="SLOW")
    batch = [notification("FAST", 1), notification("SLOW", 2)]
    unflushed_at_progress: list[list[str]] = []

    def progress(outcomes: list[Outcome | None]) -> None:
        done = [n.id for n, o in zip(batch, outcomes, strict=True) if o is Outcome.DELIVERED]
        unflushed_at_progress.append([i for i in done if i not in log_sink.durable])
        webhook.gate.set()  # the slow order may finish now

    sinks: dict[str, Sink] = {"log": log_sink, "webhook": webhook}
    outcomes = dispatcher(made, sinks, progress_every_s=0.01).dispatch(batch, progress)

    assert outcomes == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert unflushed_at_progress  # a progress checkpoint was offered mid-batch
    assert unflushed_at_progress[0] == []  # ... and everything it covers was flushed


def test_after_a_stop_no_delivery_attempt_starts(made: list[Dispatcher]) -> None:
    """Defect 3: delivery threads kept taking new orders after SIGTERM."""
    stop = threading.Event()
    attempts_after_stop: list[str] = []

    def fail(n: Notification, _attempt: int) -> DeliveryError | None:
        if stop.is_set():
            attempts_after_stop.append(n.id)
        stop.set()  # SIGTERM arrives during the first attempt
        return DeliveryError("webhook: HTTP 503", transient=True)

    sink = RecordingSink("webhook", fail)
    batch = [notification(f"ORD{i}", i) for i in range(40)]

    outcomes = dispatcher(made, {"webhook": sink}, MemoryDeadLetters()).dispatch(batch, stop=stop)

    assert Outcome.DELIVERED not in outcomes
    assert Outcome.DEAD_LETTERED not in outcomes  # nothing given up on after a stop
    # Only attempts already under way when the stop came (at most one per puller).
    assert len(sink.calls) <= 4
    assert len(attempts_after_stop) <= 3


def test_in_flight_deliveries_are_abandoned_after_the_grace(made: list[Dispatcher]) -> None:
    """Defect 3: the drain waited for a batch that never ended; now a stop gives what
    is in flight a grace, then leaves it unresolved for the next owner."""
    stop = threading.Event()
    hanging = GatedSink(gated_order="HANG")
    batch = [notification("HANG", 1), notification("OK", 2)]
    built = dispatcher(made, {"webhook": hanging}, stop_grace_s=0.05)
    threading.Timer(0.05, stop.set).start()

    outcomes = built.dispatch(batch, stop=stop)

    assert outcomes[0] is Outcome.FAILED  # abandoned in flight: re-sent by the next owner
    hanging.gate.set()


def test_a_dead_letter_holds_the_order_across_batches(made: list[Dispatcher]) -> None:
    """Defect 6: the hold lived for one dispatch call, so the next batch delivered the
    order's later change before the dead-lettered earlier one."""

    def refuse(n: Notification, _attempt: int) -> DeliveryError | None:
        return (
            DeliveryError("webhook: HTTP 400", transient=False)
            if n.sequence_number == "1001"
            else None
        )

    sink, dlq = RecordingSink("webhook", refuse), MemoryDeadLetters()
    built = dispatcher(made, {"webhook": sink}, dlq)

    first = built.dispatch([notification("ORD1", 1, "Pending", "Processing")])
    second = built.dispatch([notification("ORD1", 2, "Processing", "Shipped")])

    assert first == [Outcome.DEAD_LETTERED]
    assert second == [Outcome.DEAD_LETTERED]
    assert sink.delivered == []
    assert [(x.sequence_number, x.error) for x in dlq.by_sink("webhook")] == [
        ("1001", "webhook: HTTP 400"),
        ("1002", BLOCKED),
    ]


def test_the_hold_survives_a_restart(made: list[Dispatcher]) -> None:
    """Defect 6 across processes: a new dispatcher (restart, takeover) reads the holds
    from the store, so it does not deliver past an earlier dead letter either."""
    dlq = MemoryDeadLetters()
    dead = dispatcher(
        made, {"webhook": RecordingSink("webhook", lambda n, a: DeliveryError("x", False))}, dlq
    )
    dead.dispatch([notification("ORD1", 1)])

    healthy = RecordingSink("webhook")
    after_restart = dispatcher(made, {"webhook": healthy}, dlq)
    outcomes = after_restart.dispatch([notification("ORD1", 2), notification("ORD2", 3)])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.DELIVERED]
    assert [n.order_id for n in healthy.delivered] == ["ORD2"]


def test_a_replayed_dead_letter_is_neither_sent_nor_stored_again(made: list[Dispatcher]) -> None:
    """Defect 6, replay variant: a batch replayed after an unresolved record re-sent
    changes already dead-lettered, and their entries stayed for a second redrive."""

    def refuse(n: Notification, _attempt: int) -> DeliveryError | None:
        return DeliveryError("webhook: HTTP 400", transient=False)

    sink, dlq = RecordingSink("webhook", refuse), MemoryDeadLetters()
    built = dispatcher(made, {"webhook": sink}, dlq)
    batch = [notification("ORD1", 1)]

    assert built.dispatch(batch) == [Outcome.DEAD_LETTERED]
    assert built.dispatch(batch) == [Outcome.DEAD_LETTERED]  # the replay

    assert len(sink.calls) == 1
    assert len(dlq.letters) == 1
