"""Shard discovery and lineage: all DescribeStream pages, parents strictly before children."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from tests.conftest import wait_until
from tests.fakes.records import order_record, status_walk
from tests.fakes.streams import Call, FakeStreams
from tests.fakes.world import World
from worker.core.models import Shard
from worker.poller.shards import Lost, plan
from worker.poller.stream import StreamSource
from worker.state.checkpoints import Checkpoint, Meeting


def shard(
    shard_id: str, parent: str | None = None, start: str = "100", end: str | None = None
) -> Shard:
    return Shard(shard_id, parent, start, end)


def done(shard_id: str, sequence: str | None = "150") -> Checkpoint:
    return Checkpoint(shard_id, sequence, True)


def partway(shard_id: str, sequence: str | None = "120") -> Checkpoint:
    return Checkpoint(shard_id, sequence, False)


def ids(shards: list[Shard]) -> list[str]:
    return [s.shard_id for s in shards]


# -- worker.poller.shards.plan, pure ---------------------------------------------------------------


def test_shards_without_parents_are_ready_oldest_first_by_integer_sequence() -> None:
    shards = [shard("b", start="100"), shard("a", start="99"), shard("c", start="1000")]

    result = plan(shards, {}, set())

    assert ids(result.ready) == ["a", "b", "c"]  # "99" < "100" < "1000" as integers
    assert result.waiting == []
    assert result.lost == []


@pytest.mark.parametrize(
    ("checkpoints", "active"),
    [
        ({}, set()),  # the parent has not started
        ({"p": partway("p")}, set()),  # the parent is part read
        ({"p": partway("p")}, {"p"}),  # the parent is being read right now
        ({}, {"p"}),
    ],
)
def test_a_child_waits_while_its_parent_is_not_finished(
    checkpoints: dict[str, Checkpoint], active: set[str]
) -> None:
    shards = [shard("p", end="150"), shard("c", parent="p", start="151")]

    result = plan(shards, checkpoints, active)

    assert ids(result.waiting) == ["c"]
    assert "c" not in ids(result.ready)
    assert ids(result.ready) == ([] if "p" in active else ["p"])


def test_a_child_is_ready_once_its_parent_is_finished() -> None:
    shards = [shard("p", end="150"), shard("c", parent="p", start="151")]

    result = plan(shards, {"p": done("p")}, set())

    assert ids(result.ready) == ["c"]
    assert result.waiting == []


def test_every_generation_waits_for_the_one_before() -> None:
    shards = [
        shard("g3", parent="g2", start="300"),
        shard("g2", parent="g1", start="200", end="299"),
        shard("g1", start="100", end="199"),
    ]

    first = plan(shards, {}, set())
    second = plan(shards, {"g1": done("g1")}, set())
    third = plan(shards, {"g1": done("g1"), "g2": done("g2")}, set())

    assert (ids(first.ready), ids(first.waiting)) == (["g1"], ["g2", "g3"])
    assert (ids(second.ready), ids(second.waiting)) == (["g2"], ["g3"])
    assert (ids(third.ready), ids(third.waiting)) == (["g3"], [])


def test_both_children_of_a_split_wait_then_start_together() -> None:
    shards = [
        shard("p", end="150"),
        shard("c1", parent="p", start="151"),
        shard("c2", parent="p", start="152"),
    ]

    assert ids(plan(shards, {}, set()).waiting) == ["c1", "c2"]
    assert ids(plan(shards, {"p": done("p")}, set()).ready) == ["c1", "c2"]


def test_finished_and_active_shards_are_not_started_again() -> None:
    shards = [shard("a"), shard("b", start="101"), shard("c", start="102")]

    result = plan(shards, {"a": done("a"), "b": partway("b")}, {"c"})

    assert ids(result.ready) == ["b"]  # part read, not active: resume it


def test_an_aged_out_parent_with_an_unfinished_checkpoint_is_lost_data() -> None:
    shards = [shard("c", parent="gone", start="500")]

    result = plan(shards, {"gone": partway("gone")}, set())

    assert ids(result.ready) == ["c"]
    assert result.lost == [Lost("gone", partway("gone").sequence_number)]


def test_a_parent_aged_out_before_the_application_met_the_stream_is_no_loss() -> None:
    result = plan([shard("c", parent="gone", start="500")], {}, set(), frozenset({"gone"}))

    assert ids(result.ready) == ["c"]
    assert result.lost == []


def test_a_parent_we_finished_is_no_loss() -> None:
    result = plan([shard("c", parent="gone", start="500")], {"gone": done("gone")}, set())

    assert ids(result.ready) == ["c"]
    assert result.lost == []


def test_a_parent_that_aged_out_after_the_meeting_before_we_read_it_is_lost() -> None:
    result = plan([shard("c", parent="gone", start="500")], {}, set())

    assert result.lost == [Lost("gone", None)]


def test_a_grandparent_whose_whole_lineage_aged_out_is_lost_data() -> None:
    """Defect 7: only the direct parent was checked, so an unfinished checkpoint on a
    grandparent that aged out with its child produced no data_loss."""
    shards = [shard("c", parent="p", start="900")]
    checkpoints = {"g": partway("g")}

    result = plan(shards, checkpoints, set(), frozenset())

    assert Lost("g", partway("g").sequence_number) in result.lost
    assert Lost("p", None) in result.lost  # the parent, never read, went with it
    assert ids(result.ready) == ["c"]


def test_a_shard_listed_at_the_meeting_that_ages_out_unrecorded_is_lost_data() -> None:
    """Found by the 100,000-seed run: the meeting was written, recording the listed
    shards failed part-way, and discovery kept failing until some of them aged out.
    Neither listed, checkpointed nor the parent of a listed shard, they vanished
    unreported; a shard listed at the meeting that owes records is now reported."""
    listed = [shard("c", parent="p", start="900")]
    meeting = Meeting.first(
        start="TRIM_HORIZON",
        shards=[shard("g"), shard("p", parent="g", start="500"), shard("old", end="120")],
        firsts={"g": None, "p": None, "old": ""},
        met_at_s=0.0,
    )

    result = plan(listed, {}, set(), meeting.aged_before, meeting.owing())

    assert Lost("g", None) in result.lost
    assert Lost("p", None) in result.lost
    assert Lost("old", None) not in result.lost  # closed, nothing left at the meeting


def test_under_latest_a_shard_closed_at_the_meeting_owes_nothing() -> None:
    meeting = Meeting.first(
        start="LATEST",
        shards=[shard("open"), shard("closed", end="150")],
        firsts={"open": None, "closed": None},
        met_at_s=0.0,
    )

    assert meeting.owing() == frozenset({"open"})
    assert plan([], {}, set(), owing=meeting.owing()).lost == [Lost("open", None)]


# -- discovery through the Streams fake -------------------------------------------------------


def test_discovery_reads_every_describe_stream_page() -> None:
    streams = FakeStreams(page_size=2)
    created = [streams.add_shard() for _ in range(5)]

    found = StreamSource(streams).shards(streams.stream_arn)

    assert ids(found) == created
    pages = streams.calls_to("DescribeStream")
    assert [c.params["ExclusiveStartShardId"] for c in pages] == [None, created[1], created[3]]
    assert all(1 <= c.params["Limit"] <= 100 for c in pages)


def test_discovery_pages_at_the_api_limit_of_100() -> None:
    streams = FakeStreams()  # the fake's page is DescribeStream's own limit
    created = [streams.add_shard() for _ in range(250)]

    found = StreamSource(streams).shards(streams.stream_arn)

    assert ids(found) == created
    assert len(streams.calls_to("DescribeStream")) == 3


def test_the_fake_honours_limit_and_reports_the_last_shard_of_a_page() -> None:
    streams = FakeStreams()
    first, second = streams.add_shard(), streams.add_shard()

    page = streams.describe_stream(StreamArn=streams.stream_arn, Limit=1)["StreamDescription"]
    rest = streams.describe_stream(
        StreamArn=streams.stream_arn, Limit=1, ExclusiveStartShardId=first
    )["StreamDescription"]

    assert [s["ShardId"] for s in page["Shards"]] == [first]
    assert page["LastEvaluatedShardId"] == first
    assert [s["ShardId"] for s in rest["Shards"]] == [second]
    assert "LastEvaluatedShardId" not in rest


def test_discovery_carries_lineage_and_closed_ranges() -> None:
    streams = FakeStreams(page_size=1, reverse_listing=True)  # children listed first
    root = streams.add_shard()
    streams.put_many(root, [order_record("INSERT", "U1", "O1")] * 3)
    (child,) = streams.split(root)
    left, right = streams.split(child, children=2)

    found = {s.shard_id: s for s in StreamSource(streams).shards(streams.stream_arn)}

    assert ids(list(found.values())) == [right, left, child, root]
    assert (found[root].parent_id, found[child].parent_id) == (None, root)
    assert found[left].parent_id == found[right].parent_id == child
    assert found[root].closed
    assert found[child].closed
    assert not found[left].closed
    assert found[root].starting_sequence_int < found[child].starting_sequence_int
    assert ids(plan(found.values(), {}, set()).ready) == [root]


def test_aged_out_shards_are_no_longer_listed() -> None:
    streams = FakeStreams()
    old = streams.add_shard()
    (new,) = streams.split(old)
    streams.age_out(old)

    found = StreamSource(streams).shards(streams.stream_arn)

    assert ids(found) == [new]
    assert found[0].parent_id == old


# -- lineage order while running ---------------------------------------------------------------


@pytest.fixture
def world() -> Iterator[World]:
    world = World()
    yield world
    world.close()


def test_a_child_is_read_only_after_its_parent_is_fully_processed(world: World) -> None:
    streams = world.streams
    parent = streams.add_shard()
    streams.put_many(parent, status_walk("U1", "O1", ["Pending", "Processing"]))
    (child,) = streams.split(parent)
    streams.put_many(child, status_walk("U1", "O1", ["Processing", "Shipped"])[1:])
    (grandchild,) = streams.split(child)
    streams.put(grandchild, order_record("MODIFY", "U1", "O1", "Delivered", "Shipped"))
    parent_done_when_opened: dict[str, bool] = {}

    def on_call(call: Call) -> None:
        if call.operation == "GetRecords" and call.shard_id in (child, grandchild):
            before = parent if call.shard_id == child else child
            parent_done_when_opened.setdefault(call.shard_id, world.finished(before))

    streams.hooks.append(on_call)
    world.poller().start()

    wait_until(lambda: len(world.sink.sent) == 4, timeout=5)

    assert [n.new_status for n in world.sink.sent] == [
        "Pending",
        "Processing",
        "Shipped",
        "Delivered",
    ]
    assert parent_done_when_opened == {child: True, grandchild: True}


def test_a_child_never_starts_while_its_parent_is_stuck(world: World) -> None:
    streams = world.streams
    parent = streams.add_shard()
    streams.put_many(parent, status_walk("U1", "O1", ["Pending", "Processing"]))
    (child,) = streams.split(parent)
    streams.put(child, order_record("MODIFY", "U1", "O1", "Shipped", "Processing"))
    world.sink.fail(streams.records(parent)[1]["eventID"])  # forever, and no DLQ
    world.poller().start()

    wait_until(lambda: len(world.sink.attempts) >= 4, timeout=5)  # replayed, still failing

    assert streams.calls_to("GetRecords", child) == []
    assert [n.new_status for n in world.sink.sent] == ["Pending"]
    assert world.checkpoint(parent) == streams.records(parent)[0]["dynamodb"]["SequenceNumber"]


def test_a_shard_rolling_over_while_read_hands_over_to_its_child(world: World) -> None:
    streams = world.streams
    parent = streams.add_shard()
    streams.put(parent, order_record("INSERT", "U1", "O1", "Pending"))
    world.poller().start()
    wait_until(lambda: len(world.sink.sent) == 1)

    streams.put(parent, order_record("MODIFY", "U1", "O1", "Processing", "Pending"))
    (child,) = streams.split(parent)
    streams.put(child, order_record("MODIFY", "U1", "O1", "Shipped", "Processing"))

    wait_until(lambda: len(world.sink.sent) == 3, timeout=5)
    assert [n.new_status for n in world.sink.sent] == ["Pending", "Processing", "Shipped"]
    assert world.finished(parent)
    assert not world.finished(child)


def test_a_parent_that_aged_out_half_read_is_reported_once_as_data_loss(world: World) -> None:
    streams = world.streams
    parent = streams.add_shard()
    sequences = streams.put_many(parent, [order_record("INSERT", "U1", f"O{i}") for i in range(3)])
    (child,) = streams.split(parent)
    streams.put(child, order_record("INSERT", "U2", "O9"))
    streams.age_out(parent)
    world.store.save(Checkpoint(parent, sequences[0], False))

    with capture_logs() as logs:
        poller = world.poller().start()
        wait_until(lambda: len(world.sink.sent) == 1)
        wait_until(lambda: len(streams.calls_to("DescribeStream")) >= 4)  # a few discoveries
        poller.halt()

    losses = [e for e in logs if e["event"] == "data_loss"]
    assert len(losses) == 1
    assert losses[0]["log_level"] == "error"
    assert (losses[0]["shard_id"], losses[0]["reason"]) == (parent, "shard_aged_out")
    assert losses[0]["after_sequence"] == sequences[0]
    assert [n.order_id for n in world.sink.sent] == ["O9"]
    assert poller.stats.counts()["data_loss"] == 1


def test_a_parent_that_aged_out_before_we_read_it_is_not_data_loss(world: World) -> None:
    streams = world.streams
    parent = streams.add_shard()
    (child,) = streams.split(parent)
    streams.put(child, order_record("INSERT", "U2", "O9"))
    streams.age_out(parent)

    with capture_logs() as logs:
        poller = world.poller().start()
        wait_until(lambda: len(world.sink.sent) == 1)
        poller.halt()

    assert [e for e in logs if e["event"] == "data_loss"] == []


def test_a_parent_finishing_during_discovery_is_not_read_twice(world: World) -> None:
    """Discovery loads checkpoints, then a parent reader ends: it must stay 'active'
    for that round, or it would be started again from its stale checkpoint while its
    child starts too (order per order id broken on the replay)."""
    streams = world.streams
    parent = streams.add_shard()
    walk = status_walk("U1", "O1", ["Pending", "Processing", "Shipped"])
    streams.put_many(parent, walk[:2])
    (child,) = streams.split(parent)
    streams.put(child, walk[2])
    gate = world.sink.hold(streams.records(parent)[1]["eventID"])
    poller = world.poller()
    fired = threading.Event()

    def stale_snapshot_then_parent_ends(_: dict[str, Checkpoint]) -> None:
        if gate.entered.is_set() and not fired.is_set():
            fired.set()
            gate.release.set()
            for thread in threading.enumerate():
                if thread.name == f"shard-{parent[-12:]}":
                    thread.join(5)

    poller.store.before_load = stale_snapshot_then_parent_ends
    poller.start()

    wait_until(lambda: "Shipped" in [n.new_status for n in world.sink.sent], timeout=5)
    assert fired.is_set()
    # the meeting's check of its first record, then one reader's iterator: never two
    assert len(streams.calls_to("GetShardIterator", parent)) == 2
    assert [n.new_status for n in world.sink.sent] == ["Pending", "Processing", "Shipped"]


def test_a_shard_trimmed_at_the_meeting_is_read_from_its_first_record_then() -> None:
    """Found by the 100,000-seed run: a listed shard whose first record was already
    trimmed at the meeting was read from the trim horizon whenever first read, so records
    written after the meeting and trimmed before that read went unreported. Now it is
    read from the first record it held at the meeting: a later trim raises, and is said."""
    listed = Shard("s", None, "100", None)
    meeting = Meeting(
        start="TRIM_HORIZON",
        met_shards=frozenset({"s", "empty", "whole"}),
        trimmed_before=frozenset({"empty"}),
        resume_at={"s": "150"},
    )

    checkpoint, start = meeting.resume(listed, None)

    assert start == "FROM_START"
    assert checkpoint is not None
    assert (checkpoint.first_unresolved, checkpoint.derived) == ("150", True)
    assert meeting.resume(Shard("empty", None, "100", None), None) == (None, "TRIM_HORIZON")
    assert meeting.resume(Shard("whole", None, "100", None), None) == (None, "FROM_START")
