"""The fleet-mode record processor in-process: chunks, checkpoints, the DLQ, lease loss."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

pytest.importorskip("amazon_kclpy", reason="amazon-kclpy is installed by `make fleet`")

from amazon_kclpy.kcl import CheckpointError

from tests.fakes.clock import VirtualClock, VirtualStop
from tests.fakes.notify import MemoryDeadLetters
from tests.fakes.records import order_record, profile_record
from tests.fakes.sinks import RecordingSink
from tests.fakes.world import build_processor
from worker.batch.settle import CHUNK
from worker.core.stats import Stats
from worker.kcl.processor import ShardProcessor
from worker.state.dlq import UNPARSEABLE_SINK

SHARD = "shardId-00000001"


def kcl_record(raw: dict[str, Any], sequence: int) -> SimpleNamespace:
    """A record as amazon-kclpy hands it over: `data` is base64 of the adapter's JSON."""
    seq = str(sequence)
    adapter_json = {
        **raw,
        "eventID": f"e{seq}",
        "dynamodb": {
            **raw["dynamodb"],
            "SequenceNumber": seq,
            "ApproximateCreationDateTime": 1_714_557_600_123,  # epoch ms from the adapter
        },
    }
    data = base64.b64encode(json.dumps(adapter_json).encode()).decode()
    return SimpleNamespace(sequence_number=seq, data=data, partition_key=seq)


def orders(count: int, first: int = 101) -> list[SimpleNamespace]:
    return [
        kcl_record(order_record("INSERT", f"U{i}", f"O{i}", "Pending"), first + i)
        for i in range(count)
    ]


class Checkpointer:
    """amazon-kclpy's checkpointer: `replies` scripts errors (None answers success)."""

    def __init__(self, *replies: str | None) -> None:
        self.replies = list(replies)
        self.asked: list[str | None] = []
        self.saved: list[str | None] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence: Any = None) -> None:
        self.asked.append(sequence_number)
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            raise CheckpointError(reply)
        self.saved.append(sequence_number)


class HookedStop(VirtualStop):
    """A virtual stop event that runs `on_wait` before each (instant) backoff wait."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock, budget_s=3600)
        self.on_wait: Callable[[int], None] = lambda _calls: None

    def wait(self, timeout: float | None = None) -> bool:
        self.on_wait(len(self.waits) + 1)
        return super().wait(timeout)


class Rig:
    def __init__(self) -> None:
        self.sink = RecordingSink()
        self.dlq = MemoryDeadLetters()
        self.stats = Stats()
        clock = VirtualClock()
        self.stop = HookedStop(clock)
        batch, self.dispatcher = build_processor(
            self.sink, threading.Event(), self.stats, self.dlq, clock=clock
        )
        self.processor = ShardProcessor(
            batch,
            self.dlq,
            self.stats,
            self.stop,
            stats_interval_s=30.0,
            clock=clock,
            monotonic=clock,
            jitter=lambda _lo, hi: hi,
        )
        self.processor.initialize(SimpleNamespace(shard_id=SHARD, sequence_number="TRIM_HORIZON"))

    def process(self, records: list[SimpleNamespace], checkpointer: Checkpointer) -> None:
        self.processor.process_records(
            SimpleNamespace(records=records, checkpointer=checkpointer, millis_behind_latest=0)
        )


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.dispatcher.close()
    structlog.contextvars.clear_contextvars()  # initialize() bound the shard id


def test_a_batch_is_delivered_then_checkpointed_at_its_last_record(rig: Rig) -> None:
    records = [*orders(2), kcl_record(profile_record("INSERT", "U9"), 103)]
    checkpointer = Checkpointer()

    rig.process(records, checkpointer)

    assert sorted(rig.sink.sent_ids()) == ["e101", "e102"]
    assert rig.sink.sent[0].occurred_at == "2024-05-01T10:00:00.123Z"  # epoch ms decoded
    assert checkpointer.saved == ["103"]


def test_a_large_batch_is_checkpointed_once_per_chunk(rig: Rig) -> None:
    checkpointer = Checkpointer()

    rig.process(orders(CHUNK + 10), checkpointer)

    assert checkpointer.saved == [str(100 + CHUNK), str(100 + CHUNK + 10)]
    assert len(rig.sink.sent) == CHUNK + 10


def test_a_long_lived_processor_remembers_one_batch_of_sequence_numbers(rig: Rig) -> None:
    """The map from the settling core's sequence numbers to KCL's grew with every record
    a processor ever saw; a shard's processor lives for hours."""
    checkpointer = Checkpointer()
    for batch in range(20):
        rig.process(orders(5, first=1000 + batch * 10), checkpointer)

    assert len(rig.processor._kcl_sequence) <= 5 + 1  # a batch and the settled one
    assert checkpointer.saved[-1] == str(1000 + 19 * 10 + 4)
    rig.processor.shutdown_requested(SimpleNamespace(checkpointer=checkpointer))
    assert checkpointer.saved[-1] == str(1000 + 19 * 10 + 4)  # the settled one, mapped


def test_a_throttled_checkpoint_is_tried_again(rig: Rig) -> None:
    checkpointer = Checkpointer("ThrottlingException", "KinesisClientLibDependencyException")

    with capture_logs() as logs:
        rig.process(orders(2), checkpointer)

    assert checkpointer.asked == ["102", "102", "102"]
    assert checkpointer.saved == ["102"]
    retries = [e for e in logs if e["event"] == "stream.backoff" and e["action"] == "checkpoint"]
    assert [e["error"] for e in retries] == [
        "ThrottlingException",
        "KinesisClientLibDependencyException",
    ]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert rig.stop.waits == [0.2, 0.4]  # doubling (full jitter's upper bound here)


def test_a_lost_lease_stops_processing_and_checkpointing(rig: Rig) -> None:
    checkpointer = Checkpointer("ShutdownException")

    rig.process(orders(CHUNK + 5), checkpointer)
    rig.process(orders(2, first=1000), checkpointer)
    rig.processor.shutdown_requested(SimpleNamespace(checkpointer=checkpointer))
    rig.processor.shard_ended(SimpleNamespace(checkpointer=checkpointer))

    assert checkpointer.asked == [str(100 + CHUNK)]  # the first chunk's, refused
    assert len(rig.sink.sent) == CHUNK  # the rest is left to the lease's new owner


def test_an_unexpected_checkpoint_error_ends_the_process(rig: Rig) -> None:
    with pytest.raises(SystemExit):
        rig.process(orders(1), Checkpointer("InvalidStateException"))


def test_unresolved_records_are_retried_in_process_until_the_dlq_is_back(rig: Rig) -> None:
    records = orders(3)
    rig.sink.fail("e102")  # permanent: goes to the DLQ...
    rig.dlq.broken = True  # ...which is down for two rounds

    def heal(calls: int) -> None:
        if calls == 2:
            rig.dlq.broken = False

    rig.stop.on_wait = heal
    checkpointer = Checkpointer()
    with capture_logs() as logs:
        rig.process(records, checkpointer)

    # Progress up to the unresolved record first, then the rest once it is resolved.
    assert checkpointer.saved == ["101", "103"]
    assert [letter.id for letter in rig.dlq.letters] == ["e102.rec"]
    backoffs = [e for e in logs if e["event"] == "stream.backoff" and e["action"] == "dispatch"]
    assert [e["error"] for e in backoffs] == ["2 unresolved", "2 unresolved"]
    assert "e103" in rig.sink.sent_ids()


def test_a_failure_inside_the_core_is_retried_not_skipped(rig: Rig) -> None:
    calls = []
    real = rig.processor._batch.process

    def flaky(records: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(records))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(records, *args, **kwargs)

    rig.processor._batch.process = flaky  # type: ignore[method-assign]  # a flaky stand-in for the method
    checkpointer = Checkpointer()
    with capture_logs() as logs:
        rig.process(orders(2), checkpointer)

    assert calls == [2, 2]
    assert checkpointer.saved == ["102"]
    assert any(e["event"] == "batch.failed" for e in logs)


def test_an_undecodable_record_is_dead_lettered_and_passed(rig: Rig) -> None:
    bad = SimpleNamespace(sequence_number="102", data="bm90IGpzb24=", partition_key="102")
    checkpointer = Checkpointer()

    with capture_logs() as logs:
        rig.process([orders(1)[0], bad, orders(1, first=103)[0]], checkpointer)

    (letter,) = rig.dlq.letters
    assert (letter.id, letter.sink, letter.sequence_number) == (
        "kcl-102.-",
        UNPARSEABLE_SINK,
        "102",
    )
    assert letter.record == "not json"
    assert checkpointer.saved == ["103"]
    (rejected,) = [e for e in logs if e["event"] == "record.rejected"]
    assert rejected["event_id"] == "kcl-102"


def test_shard_end_and_shutdown_checkpoint_lease_loss_does_not(rig: Rig) -> None:
    checkpointer = Checkpointer()
    rig.process(orders(2), checkpointer)

    rig.processor.shutdown_requested(SimpleNamespace(checkpointer=checkpointer))
    rig.processor.shard_ended(SimpleNamespace(checkpointer=checkpointer))
    rig.processor.lease_lost(SimpleNamespace())
    rig.process(orders(1, first=200), checkpointer)

    assert checkpointer.saved == ["102", "102", None]  # batch, shutdown, shard end
    assert len(rig.sink.sent) == 2


def test_shutdown_before_any_record_does_not_checkpoint(rig: Rig) -> None:
    checkpointer = Checkpointer()

    rig.processor.shutdown_requested(SimpleNamespace(checkpointer=checkpointer))

    assert checkpointer.asked == []
