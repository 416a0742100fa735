"""The dispatcher: concurrency with order per order id, retries, multi-sink, DLQ, dedup."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator, Mapping

import pytest
from structlog.testing import capture_logs

from tests.fakes.notify import MemoryDeadLetters, MemoryDedup, RecordingSink, notification
from tests.fakes.receiver import Receiver, Reply, Request
from tests.fakes.runtime import ClockRuntime
from worker.core.errors import DeliveryError
from worker.core.models import Notification, Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import BLOCKED, Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks import Sink
from worker.delivery.sinks.webhook import WebhookSink

FAST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)


class Clock:
    """Stands in for the wall clock: each call is one second later."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> float:
        return 1_714_557_600.0 + next(self._ticks)  # 2024-05-01T10:00:00Z, then a second a call


def make_dispatcher(
    sinks: Mapping[str, Sink],
    dlq: MemoryDeadLetters | None = None,
    *,
    routes: str | None = None,
    notify_on: str | None = None,
    concurrency: int = 8,
    dedup: MemoryDedup | None = None,
    sleeps: list[float] | None = None,
    stats: Stats | None = None,
) -> Dispatcher:
    sleeps = sleeps if sleeps is not None else []
    return Dispatcher(
        sinks=sinks,
        rules=parse_rules(notify_on, routes, tuple(sinks)),
        policy=FAST,
        dlq=dlq,
        stats=stats or Stats(),
        concurrency=concurrency,
        dedup=dedup,
        sleep=sleeps.append,
        runtime=ClockRuntime(Clock(), monotonic=lambda: 0.0),
    )


@pytest.fixture
def closing() -> Iterator[list[Dispatcher]]:
    made: list[Dispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.close()


def interleaved(orders: int, per_order: int, seed: int = 7) -> list[Notification]:
    """Changes to a few orders, interleaved at random as a stream would carry them."""
    rng = random.Random(seed)
    queues = {f"ORD{o}": iter(range(1, per_order + 1)) for o in range(orders)}
    batch: list[Notification] = []
    while queues:
        order = rng.choice(sorted(queues))
        seq = next(queues[order], None)
        if seq is None:
            del queues[order]
            continue
        batch.append(notification(order, seq + int(order[3:]) * 1000))
    return batch


def by_order(bodies: list[dict[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for body in bodies:
        result.setdefault(body["order_id"], []).append(body["id"])
    return result


# -- order under concurrency --------------------------------------------------------------


def test_order_per_order_id_is_kept_under_concurrency(
    receiver: Receiver, closing: list[Dispatcher]
) -> None:
    """200 changes over 5 orders, a receiver that delays some: each order arrives in order."""
    batch = interleaved(orders=5, per_order=40)
    rng = random.Random(3)
    ord0_held, other_order_seen = threading.Event(), threading.Event()
    held: list[bool] = []

    def respond(request: Request) -> Reply:
        body = request.json()
        if body["order_id"] != "ORD0":
            if ord0_held.is_set():
                other_order_seen.set()
        elif not held:
            # ORD0's first change is held until another order's change arrives: only
            # possible if groups really run side by side.
            ord0_held.set()
            held.append(other_order_seen.wait(timeout=5))
        slow = body["order_id"] in ("ORD1", "ORD3")
        return Reply(200, delay_s=rng.uniform(0, 0.004) if slow else 0.0)

    receiver.respond_with(respond)
    webhook = WebhookSink(receiver.url, None, timeout_s=5.0, pool_size=4)
    dispatcher = make_dispatcher({"webhook": webhook}, MemoryDeadLetters(), concurrency=4)
    closing.append(dispatcher)

    outcomes = dispatcher.dispatch(batch)

    assert outcomes == [Outcome.DELIVERED] * 200
    assert held == [True]
    arrived = by_order(receiver.bodies())
    assert arrived == by_order([n.body() for n in batch])
    assert all(len(ids) == 40 for ids in arrived.values())
    assert 2 <= receiver.max_in_flight <= 4  # concurrent, and bounded by the setting


def test_a_slow_order_delays_only_its_own_later_changes(
    receiver: Receiver, closing: list[Dispatcher]
) -> None:
    batch = interleaved(orders=4, per_order=5)
    others = [n for n in batch if n.order_id != "ORD0"]
    slow_arrived, all_others_in = threading.Event(), threading.Event()
    arrived_others: list[str] = []
    lock = threading.Lock()

    def respond(request: Request) -> Reply | None:
        body = request.json()
        if body["order_id"] != "ORD0":
            slow_arrived.wait(timeout=5)  # line the race up: ORD0's first change is in
            with lock:
                arrived_others.append(body["id"])
                if len(arrived_others) == len(others):
                    all_others_in.set()
            return None
        slow_arrived.set()
        all_others_in.wait(timeout=5)  # ORD0 is slow: it answers only once the rest is in
        return None

    receiver.respond_with(respond)
    webhook = WebhookSink(receiver.url, None, timeout_s=10.0)
    dispatcher = make_dispatcher({"webhook": webhook}, MemoryDeadLetters(), concurrency=4)
    closing.append(dispatcher)

    outcomes = dispatcher.dispatch(batch)

    assert outcomes == [Outcome.DELIVERED] * len(batch)
    assert slow_arrived.is_set()
    assert all_others_in.is_set()
    orders = [body["order_id"] for body in receiver.bodies()]
    slow_positions = [i for i, order in enumerate(orders) if order == "ORD0"]
    last_other = max(i for i, order in enumerate(orders) if order != "ORD0")
    # every other order got through while ORD0's first change was held; ORD0's later
    # changes came only after it
    assert slow_positions[0] < last_other < slow_positions[1]
    assert by_order(receiver.bodies()) == by_order([n.body() for n in batch])


def test_a_failing_order_does_not_block_the_others(closing: list[Dispatcher]) -> None:
    def fail(n: Notification, _attempt: int) -> DeliveryError | None:
        return DeliveryError("webhook: HTTP 503", transient=True) if n.order_id == "ORD0" else None

    sink = RecordingSink("webhook", fail)
    dlq = MemoryDeadLetters()
    sleeps: list[float] = []
    batch = interleaved(orders=3, per_order=4)
    dispatcher = make_dispatcher({"webhook": sink}, dlq, sleeps=sleeps)
    closing.append(dispatcher)

    outcomes = dispatcher.dispatch(batch)

    for change, outcome in zip(batch, outcomes, strict=True):
        expected = Outcome.DEAD_LETTERED if change.order_id == "ORD0" else Outcome.DELIVERED
        assert outcome is expected
    assert sink.delivered_ids("ORD1") == [n.id for n in batch if n.order_id == "ORD1"]
    assert sink.delivered_ids("ORD2") == [n.id for n in batch if n.order_id == "ORD2"]
    ord0 = [n for n in batch if n.order_id == "ORD0"]
    # only ORD0's first change was tried (3 attempts, 2 waits); the rest were held back
    assert [n.id for n in sink.calls if n.order_id == "ORD0"] == [ord0[0].id] * 3
    assert len(sleeps) == 2
    letters = dlq.by_sink("webhook")
    assert [x.id for x in letters] == [f"{n.id}.webhook" for n in ord0]
    assert (letters[0].attempts, letters[0].error) == (3, "webhook: HTTP 503")
    assert all((x.attempts, x.error) == (0, BLOCKED) for x in letters[1:])


# -- several sinks --------------------------------------------------------------------------


def test_each_sink_has_its_own_retries_and_dlq_entry(closing: list[Dispatcher]) -> None:
    def webhook_flaky(n: Notification, attempt: int) -> DeliveryError | None:
        if n.order_id == "ORD1" and attempt < 3:
            return DeliveryError("webhook: HTTP 503", transient=True)
        return None

    def sqs_rejects(n: Notification, _attempt: int) -> DeliveryError | None:
        if n.order_id == "ORD2":
            return DeliveryError("sqs: InvalidParameterValue: bad", transient=False)
        return None

    webhook, sqs = RecordingSink("webhook", webhook_flaky), RecordingSink("sqs", sqs_rejects)
    dlq, stats = MemoryDeadLetters(), Stats()
    one, two = notification("ORD1", 1), notification("ORD2", 2)
    dispatcher = make_dispatcher({"webhook": webhook, "sqs": sqs}, dlq, stats=stats)
    closing.append(dispatcher)

    with capture_logs() as logs:
        outcomes = dispatcher.dispatch([one, two])

    assert outcomes == [Outcome.DELIVERED, Outcome.DEAD_LETTERED]
    assert webhook.delivered_ids() == [one.id, two.id]
    assert sqs.delivered_ids() == [one.id]
    assert [(x.id, x.sink, x.attempts) for x in dlq.letters] == [(f"{two.id}.sqs", "sqs", 1)]
    sent = {(e["sink"], e["order_id"]): e for e in logs if e["event"] == "notification.sent"}
    assert sent[("webhook", "ORD1")]["attempt"] == 3
    assert sent[("sqs", "ORD1")]["attempt"] == 1
    assert sent[("webhook", "ORD2")]["attempt"] == 1
    assert all(isinstance(e["latency_ms"], int) and e["latency_ms"] >= 0 for e in sent.values())
    retries = [e for e in logs if e["event"] == "notification.retry"]
    assert [(e["sink"], e["attempt"]) for e in retries] == [("webhook", 1), ("webhook", 2)]
    assert all(e["error"] == "webhook: HTTP 503" and "delay_ms" in e for e in retries)
    counts, per_sink = stats.counts(), stats.per_sink()
    assert (per_sink["webhook"].sent, per_sink["sqs"].sent, counts["retries"]) == (2, 1, 2)
    assert counts["dead_lettered"] == 1
    assert per_sink["sqs"].dead_lettered == 1


def test_a_dead_letter_blocks_later_changes_of_that_order_on_that_sink_only(
    closing: list[Dispatcher],
) -> None:
    first = notification("ORD1", 1, "Pending", "Processing")
    later = [
        notification("ORD1", 2, "Processing", "Shipped"),
        notification("ORD1", 3, "Shipped", "Delivered"),
    ]
    other = notification("ORD2", 4)

    def reject_first(n: Notification, _attempt: int) -> DeliveryError | None:
        return DeliveryError("webhook: HTTP 400", transient=False) if n.id == first.id else None

    webhook, sqs = RecordingSink("webhook", reject_first), RecordingSink("sqs")
    dlq = MemoryDeadLetters()
    dispatcher = make_dispatcher({"webhook": webhook, "sqs": sqs}, dlq)
    closing.append(dispatcher)

    outcomes = dispatcher.dispatch([first, other, *later])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.DELIVERED, *[Outcome.DEAD_LETTERED] * 2]
    # the webhook never saw ORD1's later changes (they would overtake the failed one) ...
    assert [n.id for n in webhook.calls if n.order_id == "ORD1"] == [first.id]
    # ... while the SQS sink, which had no failure, got all of them in order
    assert sqs.delivered_ids("ORD1") == [first.id, *[n.id for n in later]]
    assert webhook.delivered_ids("ORD2") == [other.id]
    letters = dlq.by_sink("webhook")
    assert [(x.id, x.error, x.attempts) for x in letters] == [
        (f"{first.id}.webhook", "webhook: HTTP 400", 1),
        *[(f"{n.id}.webhook", BLOCKED, 0) for n in later],
    ]
    assert dlq.by_sink("sqs") == []


def test_a_replayed_dead_letter_is_counted_and_logged_once(closing: list[Dispatcher]) -> None:
    """A batch replayed after a crash finds its dead letter there already: the DLQ
    holds it once, and the counters and the error log must say so too."""
    change = notification("ORD9", 42, "Processing", "Shipped")
    sink = RecordingSink("webhook", lambda n, a: DeliveryError("webhook: HTTP 400", False))
    dlq, stats = MemoryDeadLetters(), Stats()
    dispatcher = make_dispatcher({"webhook": sink}, dlq, stats=stats)
    closing.append(dispatcher)

    with capture_logs() as logs:
        assert dispatcher.dispatch([change]) == [Outcome.DEAD_LETTERED]
        assert dispatcher.dispatch([change]) == [Outcome.DEAD_LETTERED]

    assert len(dlq.letters) == 1
    assert stats.counts()["dead_lettered"] == 1
    assert [e["event"] for e in logs].count("notification.dead_lettered") == 1


def test_a_dead_letter_carries_every_field(closing: list[Dispatcher]) -> None:
    change = notification("ORD9", 42, "Processing", "Shipped")
    sink = RecordingSink("webhook", lambda n, a: DeliveryError("webhook: HTTP 503", True))
    dlq = MemoryDeadLetters()
    dispatcher = make_dispatcher({"webhook": sink}, dlq)
    closing.append(dispatcher)

    with capture_logs() as logs:
        assert dispatcher.dispatch([change]) == [Outcome.DEAD_LETTERED]

    (letter,) = dlq.letters
    assert letter.id == f"{change.id}.webhook"
    assert letter.sink == "webhook"
    assert letter.error == "webhook: HTTP 503"
    assert letter.attempts == FAST.max_attempts
    assert letter.first_attempt_at == "2024-05-01T10:00:00.000Z"
    assert letter.last_attempt_at == "2024-05-01T10:00:01.000Z"
    assert letter.first_attempt_at < letter.last_attempt_at
    assert (letter.shard_id, letter.sequence_number) == (change.shard_id, change.sequence_number)
    assert letter.order_id == "ORD9"
    assert letter.body == change.body()
    (event,) = [e for e in logs if e["event"] == "notification.dead_lettered"]
    assert (event["attempt"], event["sink"], event["log_level"]) == (3, "webhook", "error")


def test_an_unexpected_sink_exception_is_dead_lettered_not_raised(
    closing: list[Dispatcher],
) -> None:
    class Broken(RecordingSink):
        def send(self, notification: Notification) -> None:
            raise ValueError("boom")

    dlq = MemoryDeadLetters()
    dispatcher = make_dispatcher({"log": Broken("log")}, dlq)
    closing.append(dispatcher)
    assert dispatcher.dispatch([notification()]) == [Outcome.DEAD_LETTERED]
    assert (dlq.letters[0].error, dlq.letters[0].attempts) == ("ValueError: boom", 1)


# -- unresolved: stop, no DLQ ----------------------------------------------------------------


def test_a_stop_leaves_the_change_unresolved_for_a_replay(closing: list[Dispatcher]) -> None:
    stop = threading.Event()

    def fail_and_stop(_n: Notification, _attempt: int) -> DeliveryError:
        stop.set()  # SIGTERM while the receiver is down
        return DeliveryError("webhook: HTTP 503", transient=True)

    sink, dlq = RecordingSink("webhook", fail_and_stop), MemoryDeadLetters()
    batch = [notification("ORD1", 1), notification("ORD1", 2)]
    dispatcher = make_dispatcher({"webhook": sink}, dlq)
    closing.append(dispatcher)

    with capture_logs() as logs:
        outcomes = dispatcher.dispatch(batch, stop=stop)

    assert outcomes == [Outcome.FAILED, Outcome.FAILED]
    assert [n.id for n in sink.calls] == [batch[0].id]  # one attempt, the later change waits
    assert dlq.letters == []
    assert [e["event"] for e in logs if e["event"].startswith("notification.")] == [
        "notification.interrupted"
    ]


def test_without_a_dlq_a_failure_is_unresolved_and_holds_the_order(
    closing: list[Dispatcher],
) -> None:
    sink = RecordingSink("webhook", lambda n, a: DeliveryError("webhook: HTTP 400", False))
    batch = [notification("ORD1", 1), notification("ORD1", 2)]
    dispatcher = make_dispatcher({"webhook": sink}, None)
    closing.append(dispatcher)
    with capture_logs() as logs:
        assert dispatcher.dispatch(batch) == [Outcome.FAILED, Outcome.FAILED]
    assert len(sink.calls) == 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["notification.failed"]


def test_a_dlq_write_failure_is_unresolved(closing: list[Dispatcher]) -> None:
    sink = RecordingSink("webhook", lambda n, a: DeliveryError("webhook: HTTP 400", False))
    dispatcher = make_dispatcher({"webhook": sink}, MemoryDeadLetters(broken=True))
    closing.append(dispatcher)
    with capture_logs() as logs:
        assert dispatcher.dispatch([notification()]) == [Outcome.FAILED]
    assert "dlq.write_failed" in [e["event"] for e in logs]


# -- rules and routes --------------------------------------------------------------------


def test_changes_matching_no_rule_are_skipped_and_counted(closing: list[Dispatcher]) -> None:
    sink, stats = RecordingSink("webhook"), Stats()
    batch = [
        notification("ORD1", 1, "Pending", "Processing"),
        notification("ORD1", 2, "Processing", "Cancelled"),
        notification("ORD2", 3, None, "Pending"),
    ]
    dispatcher = make_dispatcher(
        {"webhook": sink}, MemoryDeadLetters(), notify_on="*>Cancelled", stats=stats
    )
    closing.append(dispatcher)
    outcomes = dispatcher.dispatch(batch)
    assert outcomes == [Outcome.SKIPPED, Outcome.DELIVERED, Outcome.SKIPPED]
    assert sink.delivered_ids() == [batch[1].id]
    assert stats.counts()["filtered"] == 2


def test_routes_send_each_change_to_its_sinks(closing: list[Dispatcher]) -> None:
    webhook, sqs, log_sink = RecordingSink("webhook"), RecordingSink("sqs"), RecordingSink("log")
    cancelled = notification("ORD1", 1, "Pending", "Cancelled")
    shipped = notification("ORD2", 2, "Processing", "Shipped")
    dispatcher = make_dispatcher(
        {"webhook": webhook, "sqs": sqs, "log": log_sink},
        MemoryDeadLetters(),
        routes="*>Cancelled:sqs,*>*:webhook+log",
    )
    closing.append(dispatcher)
    assert dispatcher.dispatch([cancelled, shipped]) == [Outcome.DELIVERED] * 2
    assert sqs.delivered_ids() == [cancelled.id]
    assert webhook.delivered_ids() == [shipped.id]
    assert log_sink.delivered_ids() == [shipped.id]


# -- dedup -------------------------------------------------------------------------------


def test_dedup_skips_known_ids_and_remembers_delivered_ones_in_one_call(
    closing: list[Dispatcher],
) -> None:
    batch = [notification(f"ORD{i % 4}", i) for i in range(60)]
    rejected = notification("ORD9", 99)
    filtered = notification("ORD8", 98, "Shipped", "Delivered")
    known = {batch[5].id, batch[17].id}
    dedup = MemoryDedup(known)

    def reject(n: Notification, _attempt: int) -> DeliveryError | None:
        return DeliveryError("webhook: HTTP 400", False) if n.id == rejected.id else None

    sink, stats = RecordingSink("webhook", reject), Stats()
    dispatcher = make_dispatcher(
        {"webhook": sink},
        MemoryDeadLetters(),
        dedup=dedup,
        notify_on="*>Processing",
        stats=stats,
    )
    closing.append(dispatcher)

    outcomes = dispatcher.dispatch([*batch, rejected, filtered])

    assert [outcomes[5], outcomes[17]] == [Outcome.DUPLICATE] * 2
    assert outcomes[-2:] == [Outcome.DEAD_LETTERED, Outcome.SKIPPED]
    assert set(sink.delivered_ids()) == {n.id for n in batch} - known
    assert stats.counts()["duplicates"] == 2
    # one bulk read and one bulk write for the whole batch, never one per notification
    assert len(dedup.seen_calls) == 1
    assert len(dedup.seen_calls[0]) == 62
    assert len(dedup.remember_calls) == 1
    assert sorted(dedup.remember_calls[0]) == sorted({n.id for n in batch} - known)


def test_a_replayed_batch_is_not_sent_twice(closing: list[Dispatcher]) -> None:
    batch = [notification("ORD1", i) for i in range(5)]
    sink, dedup = RecordingSink("webhook"), MemoryDedup()
    dispatcher = make_dispatcher({"webhook": sink}, MemoryDeadLetters(), dedup=dedup)
    closing.append(dispatcher)
    assert dispatcher.dispatch(batch) == [Outcome.DELIVERED] * 5
    assert dispatcher.dispatch(batch) == [Outcome.DUPLICATE] * 5
    assert len(sink.calls) == 5


def test_a_dedup_write_failure_is_logged_and_the_batch_still_counts(
    closing: list[Dispatcher],
) -> None:
    dedup = MemoryDedup(broken_writes=True)
    dispatcher = make_dispatcher(
        {"webhook": RecordingSink("webhook")}, MemoryDeadLetters(), dedup=dedup
    )
    closing.append(dispatcher)
    with capture_logs() as logs:
        assert dispatcher.dispatch([notification()]) == [Outcome.DELIVERED]
    (event,) = [e for e in logs if e["event"] == "dedup.write_failed"]
    assert event["ids"] == 1


def test_close_closes_every_sink() -> None:
    sinks = {"webhook": RecordingSink("webhook"), "sqs": RecordingSink("sqs")}
    make_dispatcher(sinks).close()
    assert all(s.closed for s in sinks.values())
