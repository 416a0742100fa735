"""One shard's reader against the Streams fake, in virtual time (no real waits).

The reader's stop event is a `VirtualStop`: every wait (pacing, idle, backoff)
advances a virtual clock that the fake also stamps its calls with, so read rates
are asserted exactly and a test never sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from tests.fakes.checkpoints import MemoryCheckpointStore
from tests.fakes.clock import VirtualClock, VirtualStop
from tests.fakes.lease import FakeLease
from tests.fakes.records import order_record, recorded_page, status_walk
from tests.fakes.runtime import ClockRuntime
from tests.fakes.sinks import RecordingSink
from tests.fakes.streams import ITERATOR_TTL_S, Call, FakeStreams, client_error
from tests.fakes.world import build_processor, shard_of
from worker.core.errors import (
    IteratorExpiredError,
    SetupError,
    ShardNotFoundError,
    StreamError,
    ThrottledError,
    TrimmedDataError,
)
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.poller.pacing import MIN_READ_INTERVAL_S
from worker.poller.reader import ShardReader
from worker.poller.stream import Position, StreamSource, translated
from worker.state.checkpoints import Checkpoint, Meeting

EPS = 1e-9  # float rounding of the virtual clock, not a timing tolerance


class Rig:
    """A shard reader wired on fakes, run to completion in the test's own thread."""

    def __init__(self, records_per_read: int = 1000) -> None:
        self.clock = VirtualClock()
        self.streams = FakeStreams(
            clock=self.clock, wall_clock=self.clock, records_per_read=records_per_read
        )
        self.sink = RecordingSink()
        self.store = MemoryCheckpointStore()
        self.stats = Stats()
        self.stop = VirtualStop(self.clock)
        self._dispatchers: list[Dispatcher] = []

    def reader(
        self,
        shard_id: str,
        checkpoint: str | Checkpoint | None = None,
        *,
        start: str = "TRIM_HORIZON",
        budget_s: float = 10.0,
        idle_wait_s: float = 0.5,
        store: Any = None,
    ) -> ShardReader:
        self.stop.budget_s = budget_s
        processor, dispatcher = build_processor(self.sink, self.stop, self.stats, clock=self.clock)
        self._dispatchers.append(dispatcher)
        if isinstance(checkpoint, Checkpoint) or checkpoint is None:
            saved = checkpoint
        else:
            saved = Checkpoint(shard_id, checkpoint, False)
        return ShardReader(
            source=StreamSource(self.streams),
            stream_arn=self.streams.stream_arn,
            shard=shard_of(self.streams, shard_id),
            checkpoint=saved,
            start=start,
            processor=processor,
            store=store or self.store,
            stats=self.stats,
            stop=self.stop,
            idle_wait_s=idle_wait_s,
            runtime=ClockRuntime(self.clock),
        )

    def run_from_store(self, shard_id: str, **options: Any) -> ShardReader:
        """A new reader that starts from what the store holds (a restart, a takeover)."""
        saved = self.store.get(shard_id)
        self.stop.waits.clear()
        processor, dispatcher = build_processor(self.sink, self.stop, self.stats, clock=self.clock)
        self._dispatchers.append(dispatcher)
        options.setdefault("start", "TRIM_HORIZON")
        self.stop.budget_s = options.pop("budget_s", 10.0)
        reader = ShardReader(
            source=StreamSource(self.streams),
            stream_arn=self.streams.stream_arn,
            shard=shard_of(self.streams, shard_id),
            checkpoint=saved,
            start=options["start"],
            processor=processor,
            store=self.store,
            stats=self.stats,
            stop=self.stop,
            idle_wait_s=0.5,
            runtime=ClockRuntime(self.clock),
        )
        reader.run()
        return reader

    def run(self, shard_id: str, **options: Any) -> ShardReader:
        reader = self.reader(shard_id, **options)
        reader.run()
        return reader

    def after_reads(self, count: int, action: Any) -> None:
        """Run `action` once, right after the `count`-th successful GetRecords."""
        seen = []

        def hook(call: Call) -> None:
            if call.operation == "GetRecords":
                seen.append(call)
                if len(seen) == count:
                    action()

        self.streams.hooks.append(hook)

    def iterator_requests(self, shard_id: str) -> list[tuple[str, str | None]]:
        return [
            (c.params["ShardIteratorType"], c.params["SequenceNumber"])
            for c in self.streams.calls_to("GetShardIterator", shard_id)
        ]

    def read_times(self, shard_id: str) -> list[float]:
        return [c.at for c in self.streams.calls_to("GetRecords", shard_id)]

    def close(self) -> None:
        for dispatcher in self._dispatchers:
            dispatcher.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.close()


@pytest.fixture
def paged() -> Iterator[Rig]:
    """GetRecords answers two records at a time."""
    rig = Rig(records_per_read=2)
    yield rig
    rig.close()


def _seq(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def orders(count: int, user: str = "U1") -> list[dict[str, Any]]:
    return [order_record("INSERT", user, f"O{i}", "Pending") for i in range(1, count + 1)]


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def capture() -> Any:
    """Captured log events with the contextvars (shard_id) merged in, as in production."""
    return capture_logs(processors=[structlog.contextvars.merge_contextvars])


# -- where a shard starts -------------------------------------------------------------


def test_without_a_checkpoint_trim_horizon_reads_from_the_oldest_record(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, status_walk("U1", "O1", ["Pending", "Processing"]))
    rig.streams.close(shard)

    reader = rig.run(shard, start="TRIM_HORIZON")

    assert rig.iterator_requests(shard) == [("TRIM_HORIZON", None)]
    assert rig.sink.sent_sequences() == sequences
    assert reader.finished
    assert rig.store.get(shard) == Checkpoint(shard, sequences[-1], True, None)


def test_without_a_checkpoint_latest_reads_only_what_is_written_after_it_opened(
    rig: Rig,
) -> None:
    shard = rig.streams.add_shard()
    rig.streams.put_many(shard, orders(2))
    later: list[str] = []
    rig.after_reads(1, lambda: later.extend(rig.streams.put_many(shard, orders(2, user="U2"))))

    rig.run(shard, start="LATEST", budget_s=3)

    assert rig.iterator_requests(shard) == [("LATEST", None)]
    assert rig.sink.sent_sequences() == later
    assert {n.user_id for n in rig.sink.sent} == {"U2"}


@pytest.mark.parametrize("start", ["TRIM_HORIZON", "LATEST"])
def test_a_checkpoint_resumes_after_its_sequence_number(rig: Rig, start: str) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, orders(4))
    rig.streams.close(shard)

    rig.run(shard, checkpoint=sequences[1], start=start)

    assert rig.iterator_requests(shard) == [("AFTER_SEQUENCE_NUMBER", sequences[1])]
    assert rig.sink.sent_sequences() == sequences[2:]


def test_a_closed_shard_is_read_page_by_page_to_its_end(paged: Rig) -> None:
    shard = paged.streams.add_shard()
    sequences = paged.streams.put_many(shard, orders(5))
    paged.streams.close(shard)

    reader = paged.run(shard)

    assert len(paged.streams.calls_to("GetRecords", shard)) == 3
    assert paged.sink.sent_sequences() == sequences
    saved = [c.sequence_number for c in paged.store.saved(shard)]
    # First the anchor (the first record read, before any delivery), then one per page.
    assert saved == [None, sequences[1], sequences[3], sequences[4], sequences[4]]
    assert paged.store.saved(shard)[0].first_unresolved == sequences[0]
    assert [c.finished for c in paged.store.saved(shard)] == [False, False, False, False, True]
    assert reader.finished


def test_an_empty_closed_shard_finishes_with_no_sequence(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    rig.streams.close(shard)

    rig.run(shard)

    assert rig.store.get(shard) == Checkpoint(shard, None, True, None)


def test_an_open_shard_is_read_until_stopped_and_never_marked_finished(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, orders(2))

    reader = rig.run(shard, budget_s=5)

    assert rig.stop.is_set()
    assert not reader.finished
    assert rig.store.get(shard) == Checkpoint(shard, sequences[-1], False, None)


def test_a_recorded_page_is_delivered_with_its_own_ids(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    for record in recorded_page("get_records_orders.json")["Records"]:
        rig.streams.put(shard, record)
    rig.streams.close(shard)

    rig.run(shard)

    sent = sorted(rig.sink.sent, key=lambda n: int(n.sequence_number))
    assert [n.id for n in sent] == [
        "4b1c9f6e0d6f4c1e9a8b7c6d5e4f3a21",
        "6d3e1b8a2f8b6e3abc0d9e8f7a6b5c43",
        "8f5a3d0c4b0d8a5cde2f1a0b9c8d7e65",
    ]
    assert rig.store.get(shard) == Checkpoint(shard, "4421584500000000017450439096", True)


def test_unreadable_records_are_dead_lettered_and_never_stop_the_shard(rig: Rig) -> None:
    """S6: a record with no eventID or SequenceNumber was only logged by the poller;
    it is now dead-lettered in its place, as in fleet mode."""
    shard = rig.streams.add_shard()
    for record in recorded_page("get_records_unreadable.json")["Records"]:
        rig.streams.put(shard, record, as_is=True)
    sequence = rig.streams.put(shard, order_record("INSERT", "U1", "O1"))
    rig.streams.close(shard)

    with capture() as logs:
        rig.run(shard)

    rejected = events(logs, "record.rejected")
    assert len(rejected) == 4  # three that detect() refuses, one that does not parse
    assert all(e["shard_id"] == shard for e in rejected)
    assert rig.sink.sent_sequences() == [sequence]
    assert rig.store.get(shard) == Checkpoint(shard, sequence, True)


# -- pacing ---------------------------------------------------------------------------------


def test_reads_of_a_shard_are_at_least_200_ms_apart() -> None:
    rig = Rig(records_per_read=1)
    try:
        shard = rig.streams.add_shard()
        rig.streams.put_many(shard, orders(12))
        rig.run(shard, budget_s=6, idle_wait_s=0.2)
    finally:
        rig.close()

    times = rig.read_times(shard)
    assert len(times) >= 20  # records and idle reads alike
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= MIN_READ_INTERVAL_S - EPS
    for start in times:  # never more than 5 GetRecords per second on one shard
        assert sum(1 for t in times if start <= t < start + 1.0 - EPS) <= 5
    assert len(rig.sink.sent) == 12


def test_a_backlog_of_full_pages_is_read_without_the_200_ms_spacing(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, orders(3500))  # 3 full pages and 500

    rig.run(shard, budget_s=2, idle_wait_s=0.5)

    times = rig.read_times(shard)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    # catch-up: after each full page at once; after the partial one paced, then idle
    assert gaps[:4] == [0.0, 0.0, 0.0, MIN_READ_INTERVAL_S]
    assert gaps[4:7] == [0.4, 0.5, 0.5]
    assert sum(1 for t in times if t < times[0] + 1.0 - EPS) == 6  # 4 pages in no time
    assert sorted(rig.sink.sent_sequences(), key=int) == sequences  # once each
    assert rig.stats.counts().get("throttled", 0) == 0


def test_a_throttled_catch_up_backs_off_then_speeds_up_again(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, orders(5000))
    rig.streams.close(shard)
    rig.after_reads(1, lambda: rig.streams.fail("GetRecords", "LimitExceededException", times=2))

    with capture() as logs:
        reader = rig.run(shard)

    backoffs = events(logs, "stream.backoff")
    assert [(e["attempt"], e["delay_ms"]) for e in backoffs] == [(1, 200), (2, 400)]
    times = rig.read_times(shard)  # 1 page, 2 throttled, then 4 pages at the allowed rate
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:3] == pytest.approx([0.0, 0.2, 0.4])  # 5/s, then halved to 2.5/s
    rates = [1 / gap for gap in gaps[3:]]
    assert rates == pytest.approx([3.0, 3.5, 4.0])  # +0.5/s per page read
    assert rig.stats.counts()["throttled"] == 2
    assert sorted(rig.sink.sent_sequences(), key=int) == sequences  # once each
    assert reader.finished


def test_an_idle_shard_is_polled_less_often_up_to_the_idle_wait(rig: Rig) -> None:
    shard = rig.streams.add_shard()

    rig.run(shard, budget_s=5, idle_wait_s=1.0)

    times = rig.read_times(shard)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps[:3] == [0.4, 0.8, 1.0]
    assert max(gaps) == 1.0


# -- iterator expiry -------------------------------------------------------------------------


def test_an_expired_iterator_is_reopened_after_the_last_processed_record(paged: Rig) -> None:
    shard = paged.streams.add_shard()
    sequences = paged.streams.put_many(shard, orders(5))
    paged.streams.close(shard)
    paged.after_reads(1, paged.streams.expire_iterators)

    with capture() as logs:
        paged.run(shard)

    assert paged.iterator_requests(shard) == [
        ("TRIM_HORIZON", None),
        ("AFTER_SEQUENCE_NUMBER", sequences[1]),
    ]
    assert paged.sink.sent_sequences() == sequences  # nothing lost, nothing twice
    (expired,) = events(logs, "iterator.expired")
    assert (expired["shard_id"], expired["after_sequence"]) == (shard, sequences[1])
    assert events(logs, "data_loss") == []


def test_an_iterator_left_unused_for_15_minutes_expires_and_is_reopened(paged: Rig) -> None:
    shard = paged.streams.add_shard()
    sequences = paged.streams.put_many(shard, orders(4))
    paged.streams.close(shard)
    paged.after_reads(1, lambda: paged.clock.advance(ITERATOR_TTL_S))  # a long stall

    paged.run(shard)

    assert [kind for kind, _ in paged.iterator_requests(shard)] == [
        "TRIM_HORIZON",
        "AFTER_SEQUENCE_NUMBER",
    ]
    assert paged.sink.sent_sequences() == sequences


# -- trimming --------------------------------------------------------------------------------


def test_records_trimmed_while_reading_are_one_data_loss_event(paged: Rig) -> None:
    shard = paged.streams.add_shard()
    sequences = paged.streams.put_many(shard, orders(6))
    paged.streams.close(shard)
    paged.after_reads(1, lambda: paged.streams.trim(shard, 4))  # records 3 and 4 unread

    with capture() as logs:
        reader = paged.run(shard)

    (loss,) = events(logs, "data_loss")
    assert loss["log_level"] == "error"
    assert loss["shard_id"] == shard
    assert (loss["after_sequence"], loss["before_sequence"]) == (sequences[1], sequences[4])
    assert paged.iterator_requests(shard)[-1] == ("TRIM_HORIZON", None)
    assert paged.sink.sent_sequences() == [sequences[0], sequences[1], sequences[4], sequences[5]]
    assert paged.stats.counts()["data_loss"] == 1
    assert reader.finished


def test_a_checkpoint_behind_the_trim_horizon_reports_the_gap_and_reads_on(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, orders(5))
    rig.streams.close(shard)
    rig.streams.trim(shard, 3)

    with capture() as logs:
        rig.run(shard, checkpoint=sequences[0])

    (loss,) = events(logs, "data_loss")
    assert (loss["shard_id"], loss["after_sequence"], loss["before_sequence"]) == (
        shard,
        sequences[0],
        sequences[3],
    )
    assert rig.iterator_requests(shard) == [
        ("AFTER_SEQUENCE_NUMBER", sequences[0]),
        ("TRIM_HORIZON", None),
    ]
    assert rig.sink.sent_sequences() == sequences[3:]


def test_a_shard_trimmed_to_its_end_reports_a_gap_with_no_upper_bound(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, orders(3))
    rig.streams.close(shard)
    rig.streams.trim(shard, 3)

    with capture() as logs:
        reader = rig.run(shard, checkpoint=sequences[0])

    (loss,) = events(logs, "data_loss")
    assert (loss["after_sequence"], loss["before_sequence"]) == (sequences[0], None)
    assert reader.finished


# -- throttling and server errors -------------------------------------------------------------


def test_throttling_and_server_errors_back_off_then_continue(paged: Rig) -> None:
    shard = paged.streams.add_shard()
    sequences = paged.streams.put_many(shard, orders(4))
    paged.streams.close(shard)
    paged.streams.fail("GetShardIterator", "LimitExceededException")
    paged.streams.fail("GetRecords", "LimitExceededException", times=2)
    paged.streams.fail("GetRecords", "InternalServerError", status=500)

    with capture() as logs:
        reader = paged.run(shard)

    backoffs = events(logs, "stream.backoff")
    assert [e["action"] for e in backoffs] == ["GetShardIterator"] + ["GetRecords"] * 3
    # GetShardIterator backs off with jitter; GetRecords' throttling halves the allowed
    # read rate each time (AIMD, from the paced 5/s), so the waits double.
    assert [e["attempt"] for e in backoffs] == [1, 1, 2, 3]  # grows until a read succeeds
    assert [e["delay_ms"] for e in backoffs[1:]] == [200, 400, 800]
    assert [e["reads_per_s"] for e in backoffs[1:]] == [5.0, 2.5, 1.25]
    assert paged.stats.counts()["throttled"] == 4
    assert all(e["log_level"] == "warning" and e["shard_id"] == shard for e in backoffs)
    assert "InternalServerError" in backoffs[-1]["error"]
    assert paged.sink.sent_sequences() == sequences
    assert events(logs, "data_loss") == []
    assert reader.finished


def test_backoff_waits_are_spent_on_the_stop_event(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    rig.streams.close(shard)
    rig.streams.fail("GetRecords", "LimitExceededException", times=3)

    with capture() as logs:
        rig.run(shard)

    delays = [e["delay_ms"] / 1000 for e in events(logs, "stream.backoff")]
    assert len(delays) == 3
    for delay, cap in zip(delays, [0.2, 0.4, 0.8], strict=True):
        assert 0 <= delay <= cap
    # every delay was a wait on the stop event, so SIGTERM cuts it short
    assert all(any(abs(w - d) < 1e-3 for w in rig.stop.waits) for d in delays)


def test_a_shard_that_aged_out_ends_its_reader_without_finishing(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    rig.streams.put_many(shard, orders(1))
    reader = rig.reader(shard)
    rig.streams.age_out(shard)

    with capture() as logs:
        reader.run()

    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["shard.gone"]
    assert not reader.finished
    assert rig.store.get(shard) is None


# -- the checkpoint never passes an unresolved record -------------------------------------------


def test_a_failing_delivery_holds_the_checkpoint_then_replays_under_the_same_id(
    rig: Rig,
) -> None:
    shard = rig.streams.add_shard()
    sequences = rig.streams.put_many(shard, status_walk("U1", "O1", ["Pending", "Processing"]))
    sequences += rig.streams.put_many(shard, orders(2, user="U2"))
    rig.streams.close(shard)
    failing = rig.streams.records(shard)[1]["eventID"]
    rig.sink.fail(failing, times=2)

    with capture() as logs:
        rig.run(shard)

    attempts = [n.id for n in rig.sink.attempts]
    assert attempts.count(failing) == 3  # the same id each time
    assert rig.sink.sent_sequences().count(sequences[0]) == 1  # not re-sent
    # U2's records came after the failing one in the same batch: re-sent, same ids
    assert set(rig.sink.sent_sequences()) == set(sequences)
    saved = [c.sequence_number for c in rig.store.saved(shard)]
    # the anchor, then held before the failing record until it went through
    assert saved == [None, sequences[0], sequences[-1], sequences[-1]]
    assert rig.iterator_requests(shard) == [("TRIM_HORIZON", None)]  # retried in place
    dispatch = [e["attempt"] for e in events(logs, "stream.backoff") if e["action"] == "dispatch"]
    assert dispatch == [1, 2]  # the backoff grows while the batch keeps failing


def test_no_checkpoint_ever_passes_a_record_that_was_not_yet_delivered(paged: Rig) -> None:
    shard = paged.streams.add_shard()
    sequences = paged.streams.put_many(shard, orders(6))
    paged.streams.close(shard)
    ids = {_seq(r): r["eventID"] for r in paged.streams.records(shard)}
    paged.sink.fail(ids[sequences[3]], times=3)
    premature: list[tuple[str | None, str]] = []

    def check(checkpoint: Checkpoint) -> None:
        sent = set(paged.sink.sent_ids())
        for sequence, event_id in ids.items():
            covered = int(sequence) <= int(checkpoint.sequence_number or 0)
            if covered and event_id not in sent:
                premature.append((checkpoint.sequence_number, sequence))

    paged.store.on_save = check

    paged.run(shard)

    assert premature == []
    assert len(paged.store.history) > 4  # held back several times while failing
    assert paged.store.get(shard) == Checkpoint(shard, sequences[-1], True)


def test_latest_without_a_checkpoint_replays_an_unresolved_first_record(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    new: list[str] = []
    walk = status_walk("U1", "O1", ["Pending", "Processing"])
    rig.after_reads(1, lambda: new.extend(rig.streams.put_many(shard, walk)))

    def fail_first() -> None:
        rig.sink.fail(rig.streams.records(shard)[0]["eventID"], times=1)

    rig.after_reads(1, fail_first)

    rig.run(shard, start="LATEST", budget_s=3)

    assert rig.iterator_requests(shard) == [("LATEST", None)]  # retried in place
    assert rig.sink.sent_sequences() == new


def test_latest_never_re_applied_a_new_owner_resumes_where_the_first_began(
    rig: Rig,
) -> None:
    """Defect 1: the unresolved first batch of a LATEST start saved a checkpoint with no
    position, so the next owner opened at LATEST again and skipped the record. Now a
    LATEST meeting means every change made since the meeting: each owner reads the shard
    from its first record, passing over what came before, from the same durable anchor."""
    shard = rig.streams.add_shard()
    early = order_record("INSERT", "U0", "O0", created_at_s=rig.clock() - 60)
    rig.streams.put(shard, early)  # before the meeting: not ours
    new = rig.streams.put_many(shard, status_walk("U1", "O1", ["Pending", "Processing"]))
    rig.sink.fail(rig.streams.records(shard)[1]["eventID"], times=99)
    meeting = Meeting(start="LATEST", met_shards=frozenset({shard}), met_at_s=rig.clock())
    checkpoint, start = meeting.resume(shard_of(rig.streams, shard), None)
    assert (start, checkpoint is not None) == ("FROM_START", True)

    rig.run(shard, checkpoint=checkpoint, start=start, budget_s=2)  # it never delivers
    assert rig.sink.sent_sequences() == []
    anchor = rig.store.saved(shard)[0]
    assert anchor.first_unresolved == shard_of(rig.streams, shard).starting_sequence
    assert anchor.not_before_s == meeting.met_at_s

    rig.sink.heal()
    rig.stop.clear()
    rig.run_from_store(shard, budget_s=2)  # a restart, or a takeover

    assert rig.sink.sent_sequences() == new  # the early one passed over, none skipped


def test_a_replica_that_lost_the_lease_writes_no_checkpoint(rig: Rig) -> None:
    shard = rig.streams.add_shard()
    rig.streams.put_many(shard, orders(2))
    lease = FakeLease(owner="replica-a")
    assert lease.try_acquire()
    store = MemoryCheckpointStore(lease)
    lease.board.steal("replica-b")

    with capture() as logs:
        reader = rig.run(shard, store=store)

    assert store.history == []
    assert store.refused == 1
    assert "shard.lease_lost" in [e["event"] for e in logs]
    assert not reader.finished


# -- botocore errors are translated by kind ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ExpiredIteratorException", 400, IteratorExpiredError),
        ("TrimmedDataAccessException", 400, TrimmedDataError),
        ("ResourceNotFoundException", 400, ShardNotFoundError),
        ("LimitExceededException", 400, ThrottledError),
        ("ThrottlingException", 400, ThrottledError),
        ("InternalServerError", 500, ThrottledError),
        ("ServiceUnavailable", 503, ThrottledError),
        ("SomethingNew", 502, ThrottledError),
        ("AccessDeniedException", 400, SetupError),
        ("ValidationException", 400, StreamError),
    ],
)
def test_client_errors_are_translated_keeping_the_cause(
    code: str, status: int, error: type[Exception]
) -> None:
    cause = client_error("GetRecords", code, "boom", status)

    with pytest.raises(error) as info, translated("GetRecords"):
        raise cause

    assert type(info.value) is error
    assert info.value.__cause__ is cause
    assert code in str(info.value)


@pytest.mark.parametrize(
    ("operation", "code", "status", "error"),
    [
        ("GetRecords", "ExpiredIteratorException", 400, IteratorExpiredError),
        ("GetRecords", "TrimmedDataAccessException", 400, TrimmedDataError),
        ("GetRecords", "LimitExceededException", 400, ThrottledError),
        ("GetRecords", "InternalServerError", 500, ThrottledError),
        ("GetShardIterator", "ResourceNotFoundException", 400, ShardNotFoundError),
        ("DescribeStream", "LimitExceededException", 400, ThrottledError),
    ],
)
def test_stream_source_raises_worker_errors_for_the_fake_s_client_errors(
    operation: str, code: str, status: int, error: type[Exception]
) -> None:
    streams = FakeStreams()
    shard = streams.add_shard()
    source = StreamSource(streams)
    iterator = source.iterator(streams.stream_arn, shard, Position("TRIM_HORIZON"))
    calls: dict[str, Callable[[], object]] = {
        "GetRecords": lambda: source.read(shard, iterator),
        "GetShardIterator": lambda: source.iterator(
            streams.stream_arn, shard, Position("TRIM_HORIZON")
        ),
        "DescribeStream": lambda: source.shards(streams.stream_arn),
    }
    streams.fail(operation, code, status=status)

    with pytest.raises(error) as info:
        calls[operation]()

    assert isinstance(info.value.__cause__, ClientError)


def test_pages_cut_by_size_are_read_again_at_once() -> None:
    """GetRecords stops at 1 MB too: a large page with fewer than 1,000 records says more
    is waiting, so it is read in catch-up mode, not 200 ms apart."""
    rig = Rig(records_per_read=2)
    rig.streams.cut_by_size = True
    try:
        shard = rig.streams.add_shard()
        rig.streams.put_many(shard, orders(40))
        rig.run(shard, budget_s=1, idle_wait_s=0.5)
    finally:
        rig.close()

    times = rig.read_times(shard)
    assert len(rig.sink.sent) == 40
    # 20 reads of 2 records, each taken as cut by size: no 200 ms spacing between them.
    gaps = [b - a for a, b in itertools.pairwise(times[:20])]
    assert max(gaps) < MIN_READ_INTERVAL_S - EPS
