"""The EventBridge sink: PutEvents with up to 10 entries a call (group commit, no timer),
each change answered by its own entry, only failed entries retried, oversize entries
dead-lettered with their size."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from tests.conftest import wait_until
from tests.fakes.aws_sinks import FakeEventBridge
from tests.fakes.notify import MemoryDeadLetters, notification
from tests.fakes.statetable import client_error
from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.core.models import Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks.eventbridge import MAX_BYTES, EventBridgeSink, entry_size


def test_a_change_is_one_event_with_the_body_as_detail() -> None:
    events = FakeEventBridge()
    change = notification()
    EventBridgeSink(client=events, bus="orders", source="shop.orders").send(change)

    ((entry,),) = events.calls
    assert entry["Source"] == "shop.orders"
    assert entry["DetailType"] == "order.status_changed"
    assert entry["EventBusName"] == "orders"
    assert json.loads(entry["Detail"]) == change.body()


def test_callers_queued_behind_a_call_go_out_together_at_most_10_a_call() -> None:
    release = threading.Event()
    events = FakeEventBridge()

    # The first call waits until the test lets it go: meanwhile 12 more changes queue.
    def hold_first_call(_request: object) -> None:
        release.wait(30)

    events.fault = hold_first_call
    sink = EventBridgeSink(client=events, bus="default")
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            sink.send(notification(order_id=f"ORD{n}", seq=n))
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=send, args=(0,))
    first.start()
    wait_until(lambda: len(events.calls) == 1)
    others = [threading.Thread(target=send, args=(n,)) for n in range(1, 13)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(sink._queue) == 12)  # all queued behind the call
    release.set()
    for thread in [first, *others]:
        thread.join(30)

    assert errors == []
    assert [len(call) for call in events.calls] == [1, 10, 2]
    assert len(events.events) == 13


def test_after_a_stop_entries_queued_behind_a_call_are_refused_unsent() -> None:
    """Found by an attack on issue 17: callers queued behind a call made their own
    PutEvents after SIGTERM, so events reached the bus after the stop."""
    release, stop = threading.Event(), threading.Event()
    events = FakeEventBridge()

    def hold_first_call(_request: object) -> None:
        release.wait(30)

    events.fault = hold_first_call
    sink = EventBridgeSink(client=events, bus="default", stop=stop)
    errors: dict[int, BaseException] = {}

    def send(n: int) -> None:
        try:
            sink.send(notification(order_id=f"ORD{n}", seq=n))
        except BaseException as exc:
            errors[n] = exc

    first = threading.Thread(target=send, args=(0,))
    first.start()
    wait_until(lambda: len(events.calls) == 1)
    others = [threading.Thread(target=send, args=(n,)) for n in range(1, 4)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(sink._queue) == 3)
    stop.set()
    release.set()
    for thread in [first, *others]:
        thread.join(30)

    assert len(events.calls) == 1  # the call on the wire finished; none started after
    assert 0 not in errors
    assert sorted(errors) == [1, 2, 3]
    assert all(isinstance(e, SinkUnavailableError) for e in errors.values())
    assert all("stopping, not sent" in str(e) for e in errors.values())


def test_only_the_failed_entries_of_a_call_fail_each_with_its_own_code() -> None:
    throttled, invalid = notification(order_id="ORD1", seq=1), notification(order_id="ORD2", seq=2)

    def entry_fault(entry: dict[str, str]) -> tuple[str, str] | None:
        order = json.loads(entry["Detail"])["order_id"]
        return {
            "ORD1": ("ThrottlingException", "slow down"),
            "ORD2": ("InvalidArgument", "bad"),
        }.get(order)

    events = FakeEventBridge(entry_fault=entry_fault)
    sink = EventBridgeSink(client=events, bus="default")
    with pytest.raises(DeliveryError) as slow:
        sink.send(throttled)
    with pytest.raises(DeliveryError) as bad:
        sink.send(invalid)
    sink.send(notification(order_id="ORD3", seq=3))

    assert slow.value.transient
    assert "ThrottlingException" in str(slow.value)
    assert not bad.value.transient
    assert "InvalidArgument" in str(bad.value)
    assert [json.loads(e["Detail"])["order_id"] for e in events.events] == ["ORD3"]


def test_through_the_dispatcher_a_partial_failure_retries_only_the_failed_change() -> None:
    failures = {"ORD1": 2}  # ORD1's entry is throttled twice, then accepted

    def entry_fault(entry: dict[str, str]) -> tuple[str, str] | None:
        order = json.loads(entry["Detail"])["order_id"]
        if failures.get(order, 0) > 0:
            failures[order] -= 1
            return ("ThrottlingException", "Rate exceeded")
        return None

    events = FakeEventBridge(entry_fault=entry_fault)
    sink = EventBridgeSink(client=events, bus="default")
    dispatcher = Dispatcher(
        sinks={"eventbridge": sink},
        rules=parse_rules(None, None, ("eventbridge",)),
        policy=RetryPolicy(5, 0.0, 0.0),
        dlq=MemoryDeadLetters(),
        stats=Stats(),
        concurrency=4,
        sleep=lambda _s: None,
    )
    changes = [notification(order_id=f"ORD{n}", seq=n) for n in range(1, 5)]
    outcomes = dispatcher.dispatch(changes)

    assert outcomes == [Outcome.DELIVERED] * 4
    orders = [json.loads(e["Detail"])["order_id"] for e in events.events]
    assert sorted(orders) == ["ORD1", "ORD2", "ORD3", "ORD4"]  # each accepted once
    sent = [json.loads(e["Detail"])["order_id"] for call in events.calls for e in call]
    assert sent.count("ORD1") == 3
    assert all(sent.count(f"ORD{n}") == 1 for n in (2, 3, 4))


def test_an_entry_over_256_kb_is_dead_lettered_with_its_size() -> None:
    events = FakeEventBridge()
    dlq = MemoryDeadLetters()
    dispatcher = Dispatcher(
        sinks={"eventbridge": EventBridgeSink(client=events, bus="default")},
        rules=parse_rules(None, None, ("eventbridge",)),
        policy=RetryPolicy(5, 0.0, 0.0),
        dlq=dlq,
        stats=Stats(),
        sleep=lambda _s: None,
    )
    huge = notification(order_id="O" * 64, user_id="U" * 64)
    huge = dataclasses.replace(huge, amount="9" * (MAX_BYTES + 1))
    assert dispatcher.dispatch([huge]) == [Outcome.DEAD_LETTERED]
    (letter,) = dlq.letters
    assert "bytes is over EventBridge's 262144-byte limit" in letter.error
    assert events.calls == []  # never attempted


def test_a_failed_call_fails_every_entry_of_it() -> None:
    events = FakeEventBridge(
        fault=lambda _request: client_error("PutEvents", "ThrottlingException", "Rate exceeded")
    )
    with pytest.raises(DeliveryError) as caught:
        EventBridgeSink(client=events, bus="default").send(notification())
    assert caught.value.transient


def test_entry_size_counts_as_eventbridge_does() -> None:
    entry = {"Source": "orderstream", "DetailType": "order.status_changed", "Detail": "{}"}
    assert entry_size(entry) == len("orderstream") + len("order.status_changed") + 2
    assert entry_size({**entry, "Time": "x", "Resources": ["arn:1"]}) == entry_size(entry) + 14 + 5
