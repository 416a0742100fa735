"""A batch: decide, dispatch, and a checkpoint that never passes an unresolved record."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.fakes.notify import MemoryDeadLetters
from tests.fakes.records import order_record, profile_record, status_walk
from tests.fakes.sinks import RecordingSink
from tests.fakes.world import build_processor, no_sleep
from worker.batch.processor import BatchProcessor
from worker.core.models import StreamRecord
from worker.core.records import parse_record
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.state.dlq import UNPARSEABLE_SINK


def batch(raws: list[dict[str, Any]], first: int = 101) -> list[StreamRecord]:
    """Records as a shard would hand them over: ids e<seq>, consecutive sequence numbers."""
    records = []
    for offset, raw in enumerate(raws):
        sequence = str(first + offset)
        record = {**raw, "eventID": f"e{sequence}"}
        record["dynamodb"] = {**raw["dynamodb"], "SequenceNumber": sequence}
        records.append(parse_record(record, "shardId-1"))
    return records


class Rig:
    def __init__(self, dlq: MemoryDeadLetters | None = None) -> None:
        self.sink = RecordingSink()
        self.stop = threading.Event()
        self.stats = Stats()
        self.dlq = dlq
        self.processor, self.dispatcher = build_processor(self.sink, self.stop, self.stats, dlq)


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.dispatcher.close()


@pytest.fixture
def rig_with_dlq() -> Iterator[Rig]:
    rig = Rig(MemoryDeadLetters())
    yield rig
    rig.dispatcher.close()


def test_a_delivered_batch_checkpoints_its_last_record(rig: Rig) -> None:
    records = batch(
        status_walk("U1", "O1", ["Pending", "Processing", "Shipped"])
        + status_walk("U2", "O2", ["Pending", "Cancelled"])
    )

    result = rig.processor.process(records)

    assert result.checkpoint == "105"
    assert result.unresolved == 0
    assert sorted(rig.sink.sent_ids()) == ["e101", "e102", "e103", "e104", "e105"]
    o1 = [n.new_status for n in rig.sink.sent if n.order_id == "O1"]
    assert o1 == ["Pending", "Processing", "Shipped"]  # order per order id
    assert rig.stats.counts()["records"] == 5


def test_an_empty_batch_allows_no_checkpoint(rig: Rig) -> None:
    result = rig.processor.process([])

    assert result.checkpoint is None
    assert rig.stats.counts().get("records", 0) == 0


def test_records_that_make_no_notification_still_move_the_checkpoint(rig: Rig) -> None:
    records = batch(
        [
            profile_record("INSERT", "U1"),
            order_record("MODIFY", "U1", "O1", "Pending", "Pending", amount="60"),
            order_record("REMOVE", "U1", "O1", old_status="Pending"),
        ]
    )

    with capture_logs() as logs:
        result = rig.processor.process(records)

    assert result.checkpoint == "103"
    assert result.unresolved == 0
    assert rig.sink.attempts == []
    skipped = [e for e in logs if e["event"] == "record.skipped"]
    assert [e["event_id"] for e in skipped] == ["e101", "e102", "e103"]
    assert {e["log_level"] for e in skipped} == {"debug"}


def test_the_checkpoint_stops_before_the_first_unresolved_record(rig: Rig) -> None:
    records = batch(
        [
            order_record("INSERT", "U1", "O1", "Pending"),  # 101 delivered
            order_record("MODIFY", "U1", "O1", "Processing", "Pending"),  # 102 fails
            order_record("MODIFY", "U1", "O1", "Shipped", "Processing"),  # 103 waits (same order)
            order_record("INSERT", "U2", "O2", "Pending"),  # 104 another order: delivered
        ]
    )
    rig.sink.fail("e102")  # permanent, and there is no DLQ to take it

    result = rig.processor.process(records)

    assert result.checkpoint == "101"
    assert result.unresolved == 2  # 102 failed, 103 waits behind it
    assert "e103" not in [n.id for n in rig.sink.attempts]  # never sent out of order
    assert set(rig.sink.sent_ids()) == {"e101", "e104"}  # orders are sent in parallel


def test_a_replay_sends_the_unresolved_records_again_under_the_same_ids(rig: Rig) -> None:
    records = batch(status_walk("U1", "O1", ["Pending", "Processing", "Shipped"]))
    rig.sink.fail("e102", times=1)

    first = rig.processor.process(records)
    replay = rig.processor.process(records[1:])  # the reader re-reads after the checkpoint

    assert first.checkpoint == "101"
    assert replay.checkpoint == "103"
    assert [n.id for n in rig.sink.attempts] == ["e101", "e102", "e102", "e103"]
    assert rig.sink.sent_ids() == ["e101", "e102", "e103"]


def test_a_dead_lettered_notification_is_resolved(rig_with_dlq: Rig) -> None:
    records = batch(status_walk("U1", "O1", ["Pending", "Processing"]))
    rig_with_dlq.sink.fail("e101")

    result = rig_with_dlq.processor.process(records)

    assert result.checkpoint == "102"
    assert result.unresolved == 0
    assert rig_with_dlq.dlq is not None
    letters = {letter.id: letter for letter in rig_with_dlq.dlq.letters}
    assert letters["e101.rec"].body is not None
    assert letters["e101.rec"].body["id"] == "e101"
    assert letters["e101.rec"].sequence_number == "101"


def test_when_the_dlq_is_down_the_checkpoint_stops(rig_with_dlq: Rig) -> None:
    assert rig_with_dlq.dlq is not None
    rig_with_dlq.dlq.broken = True
    records = batch(status_walk("U1", "O1", ["Pending", "Processing"]))
    rig_with_dlq.sink.fail("e102")

    result = rig_with_dlq.processor.process(records)

    assert result.checkpoint == "101"
    assert result.unresolved == 1


def test_a_rejected_record_is_dead_lettered_and_never_stops_the_shard(
    rig_with_dlq: Rig,
) -> None:
    bad = order_record("INSERT", "U1", "O1", "Pending")
    bad["dynamodb"]["NewImage"]["Status"] = {"N": "3"}
    records = batch([bad, order_record("INSERT", "U2", "O2", "Pending")])

    with capture_logs() as logs:
        result = rig_with_dlq.processor.process(records)

    assert result.checkpoint == "102"
    assert result.unresolved == 0
    assert rig_with_dlq.sink.sent_ids() == ["e102"]
    assert rig_with_dlq.dlq is not None
    (letter,) = rig_with_dlq.dlq.letters
    assert (letter.sink, letter.id, letter.body) == (UNPARSEABLE_SINK, "e101.-", None)
    assert letter.record is not None
    assert '"eventID": "e101"' in letter.record
    (rejected,) = [e for e in logs if e["event"] == "record.rejected"]
    assert rejected["event_id"] == "e101"
    assert rejected["log_level"] == "error"
    assert rejected["sequence_number"] == "101"
    assert rig_with_dlq.stats.counts()["rejected"] == 1


def test_a_rejected_record_blocks_the_checkpoint_while_the_dlq_is_down(
    rig_with_dlq: Rig,
) -> None:
    assert rig_with_dlq.dlq is not None
    rig_with_dlq.dlq.broken = True
    bad = order_record("INSERT", "U1", "O1", "Pending")
    del bad["dynamodb"]["NewImage"]
    records = batch([order_record("INSERT", "U2", "O2", "Pending"), bad])

    result = rig_with_dlq.processor.process(records)

    assert result.checkpoint == "101"
    assert result.unresolved == 1


def test_without_a_dlq_a_rejected_record_is_logged_and_passed(rig: Rig) -> None:
    bad = order_record("INSERT", "U1", "O1", "Pending")
    del bad["dynamodb"]["Keys"]["SK"]

    with capture_logs() as logs:
        result = rig.processor.process(batch([bad]))

    assert result.checkpoint == "101"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["record.rejected"]


def test_an_unknown_status_is_delivered_with_a_warning(rig: Rig) -> None:
    records = batch([order_record("MODIFY", "U1", "O1", "Returned", "Delivered")])

    with capture_logs() as logs:
        result = rig.processor.process(records)

    assert result.checkpoint == "101"
    assert rig.sink.sent_ids() == ["e101"]
    (warning,) = [e for e in logs if e["event"] == "status.unknown"]
    assert (warning["event_id"], warning["order_id"], warning["log_level"]) == (
        "e101",
        "O1",
        "warning",
    )


def test_changes_filtered_out_by_the_rules_are_resolved() -> None:
    sink, stats = RecordingSink(), Stats()
    dispatcher = Dispatcher(
        sinks={sink.name: sink},
        rules=parse_rules("*>Shipped", None, (sink.name,)),
        policy=RetryPolicy(1, 0.0, 0.0),
        dlq=None,
        stats=stats,
        concurrency=2,
        sleep=no_sleep,
    )
    processor = BatchProcessor(dispatcher, None, stats, lambda: 0.0)
    try:
        result = processor.process(
            batch(status_walk("U1", "O1", ["Pending", "Processing", "Shipped"]))
        )
    finally:
        dispatcher.close()

    assert result.checkpoint == "103"
    assert sink.sent_ids() == ["e103"]
    assert result.unresolved == 0
    assert stats.counts()["filtered"] == 2


def test_a_stop_during_retries_leaves_the_record_unresolved_not_dead_lettered(
    rig_with_dlq: Rig,
) -> None:
    rig_with_dlq.sink.fail("e101", transient=True)
    rig_with_dlq.stop.set()  # SIGTERM arrived

    result = rig_with_dlq.processor.process(
        batch([order_record("INSERT", "U1", "O1")]), stop=rig_with_dlq.stop
    )

    assert result.checkpoint is None
    assert result.unresolved == 1
    assert rig_with_dlq.dlq is not None
    assert rig_with_dlq.dlq.letters == []
