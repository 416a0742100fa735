"""The poller's lifecycle on fakes: discovery, resume, failures, graceful stop, the lease."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from tests.conftest import wait_until
from tests.fakes.lease import FakeLease
from tests.fakes.partial import LocalMeta, PutItemOnly
from tests.fakes.records import order_record, status_walk
from tests.fakes.runtime import VirtualTimeRuntime
from tests.fakes.streams import client_error
from tests.fakes.world import World, shard_of
from worker.poller.pacing import MIN_READ_INTERVAL_S
from worker.state.checkpoints import Checkpoint
from worker.state.lease import Lease


@pytest.fixture
def world() -> Iterator[World]:
    world = World()
    yield world
    world.close()


def sequences_of(world: World, shard_id: str) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in world.streams.records(shard_id)]


def test_every_shard_on_every_describe_page_is_read(world: World) -> None:
    shards = [world.streams.add_shard() for _ in range(5)]  # the fake lists 2 per page
    for number, shard_id in enumerate(shards):
        world.streams.put_many(shard_id, status_walk(f"U{number}", "O1", ["Pending", "Shipped"]))
    poller = world.poller().start()

    wait_until(lambda: len(world.sink.sent) == 10, timeout=5)

    assert {n.shard_id for n in world.sink.sent} == set(shards)
    assert poller.runner.ready.is_set()
    first_round = world.streams.calls_to("DescribeStream")[:3]
    assert [c.params["ExclusiveStartShardId"] for c in first_round] == [None, shards[1], shards[3]]
    for shard_id in shards:
        wait_until(lambda s=shard_id: world.checkpoint(s) == sequences_of(world, s)[-1])


def test_new_shards_are_found_by_periodic_rediscovery(world: World) -> None:
    first = world.streams.add_shard()
    world.streams.put(first, order_record("INSERT", "U1", "O1"))
    world.poller().start()
    wait_until(lambda: len(world.sink.sent) == 1)
    discoveries = len(world.streams.calls_to("DescribeStream"))

    later = world.streams.add_shard()
    world.streams.put(later, order_record("INSERT", "U2", "O2"))

    wait_until(lambda: len(world.sink.sent) == 2, timeout=5)
    assert world.sink.sent[1].shard_id == later
    assert len(world.streams.calls_to("DescribeStream")) > discoveries


def test_a_throttled_discovery_is_logged_and_tried_again(world: World) -> None:
    shard_id = world.streams.add_shard()
    world.streams.put(shard_id, order_record("INSERT", "U1", "O1"))
    world.streams.fail("DescribeStream", "LimitExceededException", times=2)

    with capture_logs() as logs:
        world.poller().start()
        wait_until(lambda: len(world.sink.sent) == 1, timeout=5)

    failures = [e for e in logs if e["event"] == "discovery.failed"]
    assert len(failures) == 2
    assert all(e["log_level"] == "warning" for e in failures)
    assert "LimitExceededException" in failures[0]["error"]


def test_a_restart_resumes_exactly_at_the_checkpoint(world: World) -> None:
    shard_id = world.streams.add_shard()
    before = world.streams.put_many(shard_id, status_walk("U1", "O1", ["Pending", "Processing"]))
    first = world.poller().start()
    wait_until(lambda: world.checkpoint(shard_id) == before[-1])
    first.halt()

    after = world.streams.put_many(
        shard_id, [order_record("MODIFY", "U1", "O1", "Shipped", "Processing")]
    )
    second = world.poller().start()

    wait_until(lambda: world.checkpoint(shard_id) == after[-1], timeout=5)
    second.halt()
    assert world.sink.sent_sequences() == before + after  # nothing lost, nothing twice
    opened = world.streams.calls_to("GetShardIterator", shard_id)
    first_record = shard_of(world.streams, shard_id).starting_sequence
    assert [(c.params["ShardIteratorType"], c.params["SequenceNumber"]) for c in opened] == [
        ("AT_SEQUENCE_NUMBER", first_record),  # at the meeting: is its start still there?
        ("AT_SEQUENCE_NUMBER", first_record),  # the first read, from its first record
        ("AFTER_SEQUENCE_NUMBER", before[-1]),
    ]


def test_latest_applies_only_to_a_shard_without_a_checkpoint(world: World) -> None:
    old = world.streams.add_shard()
    seen = world.streams.add_shard()
    world.streams.put(old, order_record("INSERT", "U1", "O1", created_at_s=time.time() - 60))
    done_before = world.streams.put(seen, order_record("INSERT", "U2", "O2"))
    missed = world.streams.put(seen, order_record("INSERT", "U2", "O3"))
    world.store.save(Checkpoint(seen, done_before, False))
    poller = world.poller(start="LATEST").start()
    wait_until(lambda: len(world.streams.calls_to("GetRecords", old)) >= 2)

    # LATEST: every change made after the application met the stream, not before.
    changed = order_record("MODIFY", "U1", "O1", "Shipped", "Pending", created_at_s=time.time())
    fresh = world.streams.put(old, changed)

    wait_until(lambda: len(world.sink.sent) == 2, timeout=5)
    poller.halt()
    assert sorted(world.sink.sent_sequences(), key=int) == sorted([missed, fresh], key=int)


def test_a_failing_delivery_holds_the_checkpoint_and_a_restart_replays_it(world: World) -> None:
    shard_id = world.streams.add_shard()
    sequences = world.streams.put_many(
        shard_id, status_walk("U1", "O1", ["Pending", "Processing", "Shipped"])
    )
    failing = world.streams.records(shard_id)[1]["eventID"]
    world.sink.fail(failing)  # permanent, and no DLQ: the record stays unresolved
    first = world.poller().start()

    wait_until(lambda: [n.id for n in world.sink.attempts].count(failing) >= 2, timeout=5)
    first.halt()
    assert world.checkpoint(shard_id) == sequences[0]
    assert all(int(c.sequence_number or 0) < int(sequences[1]) for c in world.store.history)

    world.sink.heal()
    second = world.poller().start()
    wait_until(lambda: world.checkpoint(shard_id) == sequences[-1], timeout=5)
    second.halt()

    assert world.sink.sent_sequences() == sequences  # each once, in order
    assert {n.id for n in world.sink.attempts if n.sequence_number == sequences[1]} == {failing}
    resumed = world.streams.calls_to("GetShardIterator", shard_id)[-1]
    assert resumed.params["SequenceNumber"] == sequences[0]


def test_a_graceful_stop_finishes_in_flight_work_and_checkpoints(world: World) -> None:
    shard_id = world.streams.add_shard()
    sequences = world.streams.put_many(
        shard_id, status_walk("U1", "O1", ["Pending", "Processing", "Shipped"])
    )
    gate = world.sink.hold(world.streams.records(shard_id)[1]["eventID"])
    poller = world.poller().start()
    assert gate.entered.wait(5)

    with capture_logs() as logs:
        poller.stop.set()  # SIGTERM while a delivery is in flight
        gate.release.set()
        poller.halt()

    assert world.sink.sent_sequences() == sequences
    assert world.store.get(shard_id) == Checkpoint(shard_id, sequences[-1], False)
    assert world.board.holder() is None  # released for a standby at once
    assert poller.lease.releases == 1
    assert not poller.runner.ready.is_set()
    names = [e["event"] for e in logs]
    assert names.index("shard.stopped") < names.index("lease.released")
    assert "shutdown.timeout" not in names


def test_a_stop_while_idle_ends_promptly_and_checkpoints_nothing_new() -> None:
    world = World.on_virtual_time()
    runtime = world.runtime
    assert isinstance(runtime, VirtualTimeRuntime)
    shard_id = world.streams.add_shard()
    poller = world.poller(idle_wait_s=10.0).start()
    world.pass_time(until=lambda: len(world.streams.calls_to("GetRecords", shard_id)) >= 3)
    # the reader is in its idle wait of 1.6 s or more (0.4, 0.8, 1.6 ...)
    wait_until(lambda: any(w > 1.6 - 1e-6 for w in runtime.waiting()))
    stopped_at = runtime.monotonic()
    reads = len(world.streams.calls_to("GetRecords", shard_id))

    poller.runner.request_stop()  # SIGTERM, as the worker's signal handler does
    poller.halt(time_passes=False)

    # Time stood still, so no wait ran out: the stop cut the idle wait short.
    assert runtime.monotonic() == stopped_at
    assert len(world.streams.calls_to("GetRecords", shard_id)) == reads
    # only the shard's record and its start's anchor, written before the first read
    assert all(c.sequence_number is None for c in world.store.history)
    assert not any(c.finished for c in world.store.history)
    world.close()


def test_reads_stay_under_five_per_second_per_shard() -> None:
    world = World.on_virtual_time()
    shard_id = world.streams.add_shard()
    world.streams.put_many(shard_id, [order_record("INSERT", "U1", f"O{i}") for i in range(5)])
    world.streams.records_per_read = 1  # a read per record: as fast as the reader may go
    poller = world.poller().start()

    world.pass_time(until=lambda: len(world.sink.sent) == 5)
    poller.halt()

    reads = [c.at for c in world.streams.calls_to("GetRecords", shard_id)]
    assert len(reads) >= 5
    # on the virtual clock every read starts at least 0.2 s after the one before
    assert all(b - a >= MIN_READ_INTERVAL_S - 1e-6 for a, b in itertools.pairwise(reads))
    world.close()


def test_max_shards_bounds_the_readers(world: World) -> None:
    shards = [world.streams.add_shard() for _ in range(3)]
    world.poller(max_shards=2).start()

    wait_until(lambda: len(world.streams.calls_to("GetRecords")) >= 4)
    wait_until(lambda: len(world.streams.calls_to("DescribeStream")) >= 3)

    read = {c.shard_id for c in world.streams.calls_to("GetRecords")}
    assert read == set(shards[:2])  # the oldest first


def test_a_replica_that_loses_the_lease_stops_reading_and_waits() -> None:
    world = World.on_virtual_time()  # no lapse while a loaded machine stalls a renewal
    shard_id = world.streams.add_shard()
    world.streams.put(shard_id, order_record("INSERT", "U1", "O1"))

    with capture_logs() as logs:
        poller = world.poller(lease_s=1.5).start()
        world.pass_time(until=lambda: len(world.sink.sent) == 1)
        world.board.steal("replica-elsewhere")
        world.pass_time(until=lambda: "lease.lost" in [e["event"] for e in logs])
        world.pass_time(until=lambda: [e["event"] for e in logs].count("lease.waiting") == 2)
        reads = len(world.streams.calls_to("GetRecords"))
        polls = world.board.attempts
        world.pass_time(until=lambda: world.board.attempts >= polls + 5)  # as a standby
        saves = len(world.store.history)
        world.streams.put(shard_id, order_record("MODIFY", "U1", "O1", "Shipped", "Pending"))
        world.pass_time(until=lambda: world.board.attempts >= polls + 10)

        assert len(world.streams.calls_to("GetRecords")) == reads
        assert len(world.store.history) == saves
        assert not poller.runner.ready.is_set()
        poller.halt()

    assert poller.lease.releases == 0  # never release a lease that is not ours
    assert world.board.holder() == "replica-elsewhere"
    assert len(world.sink.sent) == 1


def test_a_standby_takes_over_where_the_holder_stopped(world: World) -> None:
    shard_id = world.streams.add_shard()
    first_batch = world.streams.put(shard_id, order_record("INSERT", "U1", "O1"))
    active = world.poller().start()
    wait_until(lambda: world.checkpoint(shard_id) == first_batch)
    standby = world.poller().start()
    wait_until(lambda: world.board.attempts >= 5)  # the standby is polling for the lease
    assert world.board.holder() == active.lease.owner

    active.halt()
    later = world.streams.put(shard_id, order_record("MODIFY", "U1", "O1", "Shipped", "Pending"))

    wait_until(lambda: world.checkpoint(shard_id) == later, timeout=5)
    assert world.board.holder() == standby.lease.owner
    assert world.sink.sent_sequences() == [first_batch, later]


def test_stats_are_logged_with_per_shard_lag(world: World) -> None:
    shard_id = world.streams.add_shard()
    world.streams.put(shard_id, order_record("INSERT", "U1", "O1"))

    with capture_logs() as logs:
        poller = world.poller(stats_interval_s=0.05).start()
        wait_until(lambda: len(world.sink.sent) == 1)
        wait_until(lambda: any(e["event"] == "worker.stats" and e["shards"] for e in logs))
        poller.halt()

    stats = [e for e in logs if e["event"] == "worker.stats" and e["shards"]][-1]
    assert stats["shards"] == 1
    assert set(stats["lag"][shard_id]) == {"lag_ms", "trim_in_ms", "last_read_ms_ago"}
    assert stats["throttled"] == 0  # stream calls still throttled after botocore's retries


class TablesWithAStream:
    """Stands in for the DynamoDB client's DescribeTable: the table's current stream."""

    def __init__(self, stream_arn: str) -> None:
        self.stream_arn = stream_arn
        self.meta = LocalMeta()

    def describe_table(self, TableName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return {
            "Table": {
                "TableName": TableName,
                "LatestStreamArn": self.stream_arn,
                "StreamSpecification": {"StreamEnabled": True},
            }
        }


def test_a_restart_finishes_or_reports_an_older_stream_before_the_new_one(world: World) -> None:
    """S5: after a restart only the latest stream ARN was read; the unfinished shards of a
    disabled (now gone) stream were abandoned with no data_loss. Now an older stream we
    met is read to its end first, or, gone, its unread part is reported; and the new
    stream, a continuation, is read from its start whatever ORDERSTREAM_START says."""
    new = world.streams.stream_arn
    old = new.replace("2024-05-01", "2024-04-01")
    world.store.meet(old, "TRIM_HORIZON", [])
    world.store.save(old, Checkpoint("shardId-old-1", "77", False))
    shard_id = world.streams.add_shard()
    written = world.streams.put(shard_id, order_record("INSERT", "U1", "O1"))
    poller = world.poller(start="LATEST", stream_arn=None)
    poller.runner._tables = TablesWithAStream(new)

    with capture_logs() as logs:
        poller.start()
        wait_until(lambda: world.sink.sent_sequences() == [written], timeout=5)
        poller.halt()

    (lost,) = [e for e in logs if e["event"] == "data_loss"]
    assert (lost["shard_id"], lost["after_sequence"]) == ("shardId-old-1", "77")
    assert world.store.meetings[old].finished
    assert world.store.meetings[new].start == "TRIM_HORIZON"


def throttled(operation: str) -> ClientError:
    return client_error(operation, "ProvisionedThroughputExceededException", status=400)


class ThrottledOnceClient(PutItemOnly):
    """Stands in for the state table's client under `Lease`: the first PutItem is
    throttled (after botocore's own retries), the next ones succeed."""

    def __init__(self) -> None:
        self.calls = 0

    def put_item(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise throttled("PutItem")
        return {}


def test_a_throttled_standby_keeps_waiting_instead_of_dying() -> None:
    """Defect 8: `try_acquire` re-raised anything but a conditional failure, so one
    throttle ended a standby with a traceback."""
    client = ThrottledOnceClient()
    lease = Lease(client, "state", "app", "me", 15.0, clock=lambda: 1_714_557_600.0)

    with capture_logs() as logs:
        assert lease.wait_for(threading.Event(), poll_s=0.0)

    assert client.calls == 2
    assert [e["event"] for e in logs] == ["lease.acquire_failed"]
    assert lease.held


class LapsingLease(FakeLease):
    """A lease whose renewals keep failing with a transient AWS error."""

    def renew(self) -> None:
        self.valid_until_s = 0.0  # the last good renewal is long past
        raise throttled("UpdateItem")


def test_a_holder_whose_renewals_keep_failing_steps_down_before_the_lease_lapses() -> None:
    """Defect 8: renewal errors were logged forever while the lease lapsed under a
    replica that kept delivering; now it steps down, and tries to take it again."""
    world = World.on_virtual_time()  # the renewals, a third of a lease apart, in no time
    poller = world.poller(lease_s=3.0)
    lapsing = LapsingLease(world.board, owner="replica-1", duration_s=3.0)
    poller.runner._lease = lapsing
    with capture_logs() as logs:
        poller.start()
        world.pass_time(until=lambda: any(e["event"] == "lease.lapsing" for e in logs))
        world.pass_time(until=lambda: [e["event"] for e in logs].count("lease.waiting") >= 2)
        poller.halt()
    world.close()
    assert [e["event"] for e in logs if e["event"] == "lease.renew_failed"]


def test_a_throttled_discovery_is_retried_not_fatal(world: World) -> None:
    """Defect 8: an AWS error from loading the checkpoints ended the process with a
    traceback, the lease still held."""
    shard_id = world.streams.add_shard()
    written = world.streams.put(shard_id, order_record("INSERT", "U1", "O1"))
    failures = [throttled("Query")]

    def fail_once(_: Any) -> None:
        if failures:
            raise failures.pop()

    poller = world.poller()
    poller.store.before_load = fail_once
    with capture_logs() as logs:
        poller.start()
        wait_until(lambda: world.sink.sent_sequences() == [written], timeout=5)
        poller.halt()
    assert "discovery.failed" in [e["event"] for e in logs]


class LeaseTable(PutItemOnly):
    """Stands in for the state table's client under `Lease`: items by key, PutItem with
    the lease's condition (free, expired, or ours)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def put_item(self, Item: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        key = (Item["pk"]["S"], Item["sk"]["S"])
        held = self.items.get(key)
        if held and held["owner"]["S"] != Item["owner"]["S"]:
            raise client_error("PutItem", "ConditionalCheckFailedException")
        self.items[key] = Item
        return {}


def test_one_app_name_on_two_tables_runs_both() -> None:
    """The review: the lease was per app only, so a second table under the same app
    waited forever, silently. The lease is per app and table now."""
    table = LeaseTable()
    users = Lease(table, "state", "app", "a", 15.0, clock=lambda: 1.0, scope="Users")
    other = Lease(table, "state", "app", "b", 15.0, clock=lambda: 1.0, scope="Other")
    rival = Lease(table, "state", "app", "c", 15.0, clock=lambda: 1.0, scope="Users")
    assert users.try_acquire()
    assert other.try_acquire()
    assert not rival.try_acquire()  # one active poller per app and table
