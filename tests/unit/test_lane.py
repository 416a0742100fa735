"""The retry lane: parking after the burst, order per (order, sink), the long schedule.

The real LaneStore, DeadLetterStore, Lease, Dispatcher and LaneRetrier on the in-memory
state table (tests/fakes/statetable.py), with an injected clock: no sleeps, no threads
waiting on time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.fakes.notify import RecordingSink, notification
from tests.fakes.runtime import ClockRuntime
from tests.fakes.statetable import FakeDynamoDB
from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.core.models import Notification, Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.lane import HoldCount, LaneStore, Nudger
from worker.delivery.retrier import LaneRetrier
from worker.delivery.retrying import RetryPolicy
from worker.state.dlq import DeadLetterStore, HoldKey, from_table
from worker.state.holds import HoldBook
from worker.state.lease import Lease

T = "state"
ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/Users/stream/2024-05-01T00:00:00.000"
SCHEDULE = (5.0, 60.0, 600.0)
BURST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)
Failure = Callable[[Notification, int], DeliveryError | None]


class World:
    """One app's state table, lease, lane, DLQ and sinks, on a clock the test moves."""

    def __init__(self, *, fenced: bool = True) -> None:
        self.now = [1_714_557_600.0]
        self.db: Any = FakeDynamoDB()  # Any: it stands in for boto3's DynamoDBClient
        self.lease = Lease(self.db, T, "app", "me", 30.0, clock=self.clock, scope="Users")
        assert self.lease.try_acquire()
        self.lane = LaneStore(
            client=self.db,
            table=T,
            app="app",
            fence=self.lease if fenced else None,
            clock=self.clock,
        )
        self.dlq = DeadLetterStore(self.db, T, "app")
        self.stats = Stats()
        self.runtime = ClockRuntime(self.clock)
        self.failing: dict[str, Failure | None] = {"webhook": None, "sqs": None}
        self.sinks = {
            name: RecordingSink(name, fail=self._failure(name)) for name in ("webhook", "sqs")
        }

    def clock(self) -> float:
        return self.now[0]

    def _failure(self, name: str) -> Failure:
        def fail(n: Notification, attempt: int) -> DeliveryError | None:
            rule = self.failing[name]
            return rule(n, attempt) if rule else None

        return fail

    def dispatcher(self, *, schedule: tuple[float, ...] = SCHEDULE) -> Dispatcher:
        return Dispatcher(
            sinks=self.sinks,
            rules=parse_rules(None, None, ("webhook", "sqs")),
            policy=BURST,
            dlq=self.dlq,
            stats=self.stats,
            sleep=lambda _s: None,
            runtime=self.runtime,
            lane=self.lane,
            schedule=schedule,
        )

    def book(self) -> HoldBook:
        return HoldBook(store=self.dlq, stream_arn=ARN, monotonic=lambda: 0.0)

    def retrier(self, table: str = "Users") -> LaneRetrier:
        return LaneRetrier(
            lane=self.lane,
            table=table,
            sinks=self.sinks,
            schedule=SCHEDULE,
            stats=self.stats,
            runtime=self.runtime,
        )

    def parked(self) -> list[str]:
        return [e.letter.id for e in self.lane.entries()]

    def dead(self) -> list[str]:
        return [e.id for e in self.dlq.entries()]


def down(*_: object) -> DeliveryError:
    return DeliveryError("webhook: HTTP 503", transient=True)


def changes(order: str, count: int, first: int = 1) -> list[Notification]:
    return [notification(order, seq) for seq in range(first, first + count)]


@pytest.fixture
def world() -> World:
    return World()


class Stop:
    """A stop signal never set (the retrier's term goes on)."""

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        raise AssertionError("the term was stopped")

    def clear(self) -> None:
        return None

    def wait(self, timeout: float | None = None) -> bool:
        return False


# -- parking -------------------------------------------------------------------------------


def test_a_change_the_sink_fails_in_its_burst_is_parked_and_resolved(world: World) -> None:
    world.failing["webhook"] = down
    [change] = changes("ORD1", 1)

    outcomes = world.dispatcher().dispatch([change], holds=world.book())

    assert outcomes == [Outcome.PARKED]  # resolved: the checkpoint may pass it
    assert Outcome.PARKED.resolved
    assert len(world.sinks["webhook"].calls) == BURST.max_attempts
    assert world.sinks["sqs"].delivered_ids() == [change.id]
    [entry] = world.lane.entries()
    assert (entry.letter.id, entry.tries, entry.letter.attempts) == (f"{change.id}.webhook", 0, 3)
    assert entry.next_at_s == world.now[0] + SCHEDULE[0]
    assert world.lane.holds() == {entry.hold: HoldCount(dead=0, parked=1)}
    assert world.dead() == []


def test_later_changes_of_the_order_park_behind_it_while_others_go_on(world: World) -> None:
    world.failing["webhook"] = lambda n, _a: down() if n.order_id == "ORD1" else None
    batch = [*changes("ORD1", 3), *changes("ORD2", 2)]

    outcomes = world.dispatcher().dispatch(batch, holds=world.book())

    assert outcomes == [Outcome.PARKED] * 3 + [Outcome.DELIVERED] * 2
    # Only the first of ORD1 was attempted; the two after it parked without an attempt.
    assert {n.id for n in world.sinks["webhook"].calls} == {batch[0].id, *(n.id for n in batch[3:])}
    assert world.parked() == [f"{n.id}.webhook" for n in batch[:3]]
    for order in ("ORD1", "ORD2"):  # SQS: everything, in order per order, at once
        expected = [n.id for n in batch if n.order_id == order]
        assert world.sinks["sqs"].delivered_ids(order) == expected
    behind = list(world.lane.entries())[1:]
    assert all(e.next_at_s == world.now[0] and e.letter.attempts == 0 for e in behind)


def test_parking_holds_the_order_across_batches_and_replays(world: World) -> None:
    world.failing["webhook"] = down
    first, second = changes("ORD1", 2)
    dispatcher = world.dispatcher()
    dispatcher.dispatch([first], holds=world.book())
    world.failing["webhook"] = None  # the endpoint is back, but ORD1 waits in the lane

    assert dispatcher.dispatch([second], holds=world.book()) == [Outcome.PARKED]
    assert dispatcher.dispatch([first, second], holds=world.book()) == [Outcome.PARKED] * 2

    assert world.parked() == [f"{first.id}.webhook", f"{second.id}.webhook"]
    [count] = world.lane.holds().values()
    assert count == HoldCount(dead=0, parked=2)  # a replay is not counted twice


def test_a_refused_sink_parks_at_once_without_a_burst(world: World) -> None:
    world.failing["webhook"] = lambda *_: SinkUnavailableError("webhook: breaker open")
    [change] = changes("ORD1", 1)

    assert world.dispatcher().dispatch([change], holds=world.book()) == [Outcome.PARKED]

    assert len(world.sinks["webhook"].calls) == 1  # the refusal itself, no retries
    [entry] = world.lane.entries()
    assert entry.letter.attempts == 0


def test_without_a_lane_a_refused_sink_leaves_the_change_unresolved(world: World) -> None:
    """Fleet mode has no lane: a breaker's refusal is not the change's fault, so it is
    neither dead-lettered nor resolved; the settling core retries it in place."""
    world.failing["webhook"] = lambda *_: SinkUnavailableError("webhook: breaker open")

    outcomes = world.dispatcher(schedule=()).dispatch(changes("ORD1", 2), holds=world.book())

    assert outcomes == [Outcome.FAILED, Outcome.FAILED]
    assert world.dead() == []
    assert world.parked() == []


def test_a_change_refused_for_good_goes_to_the_dlq_not_the_lane(world: World) -> None:
    world.failing["webhook"] = lambda *_: DeliveryError("webhook: HTTP 400", transient=False)
    first, second = changes("ORD1", 2)

    outcomes = world.dispatcher().dispatch([first, second], holds=world.book())

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.PARKED]
    assert world.dead() == [f"{first.id}.webhook"]
    assert world.parked() == [f"{second.id}.webhook"]  # behind; the retrier moves it on


def test_with_the_lane_off_a_failure_goes_to_the_dlq_as_before(world: World) -> None:
    world.failing["webhook"] = down

    outcomes = world.dispatcher(schedule=()).dispatch(changes("ORD1", 2), holds=world.book())

    assert outcomes == [Outcome.DEAD_LETTERED] * 2
    assert world.parked() == []


def test_a_replica_without_the_lease_cannot_park(world: World) -> None:
    world.failing["webhook"] = down
    world.now[0] += 31
    assert Lease(world.db, T, "app", "them", 30.0, clock=world.clock, scope="Users").try_acquire()
    stop = world.runtime.event()

    outcomes = world.dispatcher().dispatch(changes("ORD1", 1), holds=world.book(), stop=stop)

    assert outcomes == [Outcome.FAILED]
    assert stop.is_set()  # the term is over: the next owner replays the change
    assert world.parked() == []


def test_a_body_too_large_for_an_item_goes_to_the_dlq_as_a_minimal_entry(world: World) -> None:
    world.failing["webhook"] = down
    big = notification("ORD1", 1)
    big = Notification(**{**big.__dict__, "user_id": "U" + "x" * 350_000})

    assert world.dispatcher().dispatch([big], holds=world.book())[0] is Outcome.DEAD_LETTERED
    [entry] = world.dlq.entries()
    assert entry.body is None
    assert entry.size is not None


# -- the retrier ------------------------------------------------------------------------------


def park_three(world: World) -> list[Notification]:
    world.failing["webhook"] = down
    batch = changes("ORD1", 3)
    world.dispatcher().dispatch(batch, holds=world.book())
    return batch


def test_nothing_is_attempted_before_it_is_due(world: World) -> None:
    park_three(world)
    calls = len(world.sinks["webhook"].calls)
    world.failing["webhook"] = None

    wait_s = world.retrier().pass_once(Stop())

    assert len(world.sinks["webhook"].calls) == calls
    assert wait_s == SCHEDULE[0]


def test_once_due_an_order_is_delivered_oldest_first_and_released(world: World) -> None:
    batch = park_three(world)
    world.failing["webhook"] = None
    world.now[0] += SCHEDULE[0]

    world.retrier().pass_once(Stop())

    assert world.sinks["webhook"].delivered_ids() == [n.id for n in batch]
    assert world.parked() == []
    assert world.lane.holds() == {}  # released: the order's next change goes straight out
    assert world.book().is_held(batch[0], "webhook") is False


def test_a_failed_lane_attempt_waits_for_the_next_step_and_holds_the_rest(world: World) -> None:
    park_three(world)
    world.now[0] += SCHEDULE[0]
    retrier = world.retrier()

    retrier.pass_once(Stop())

    head, *rest = world.lane.entries()
    assert (head.tries, head.next_at_s) == (1, world.now[0] + SCHEDULE[1])
    assert head.letter.attempts == BURST.max_attempts + 1
    assert all(e.tries == 0 for e in rest)  # never attempted: they wait behind it


def test_an_exhausted_schedule_moves_the_order_to_the_dlq_in_order(world: World) -> None:
    batch = park_three(world)
    retrier = world.retrier()
    with capture_logs() as logs:
        for wait_s in SCHEDULE:
            world.now[0] += wait_s
            retrier.pass_once(Stop())

    assert world.parked() == []
    assert world.dead() == [f"{n.id}.webhook" for n in batch]
    [count] = world.lane.holds().values()
    assert count == HoldCount(dead=3, parked=0)  # still holding the order, as before
    dead = [e for e in logs if e["event"] == "notification.dead_lettered"]
    assert [e["notification_id"] for e in dead] == [n.id for n in batch]


def test_a_change_parked_behind_a_dead_letter_joins_the_dlq(world: World) -> None:
    world.failing["webhook"] = lambda *_: DeliveryError("webhook: HTTP 400", transient=False)
    first, second = changes("ORD1", 2)
    world.dispatcher().dispatch([first, second], holds=world.book())

    world.retrier().pass_once(Stop())

    assert world.dead() == [f"{first.id}.webhook", f"{second.id}.webhook"]
    assert world.parked() == []


def test_a_permanent_refusal_in_the_lane_dead_letters_it_and_its_followers(world: World) -> None:
    batch = park_three(world)
    world.failing["webhook"] = lambda *_: DeliveryError("webhook: HTTP 422", transient=False)
    world.now[0] += SCHEDULE[0]

    world.retrier().pass_once(Stop())

    assert world.dead() == [f"{n.id}.webhook" for n in batch]


def test_a_sink_out_of_reach_spends_no_step_of_the_schedule(world: World) -> None:
    park_three(world)
    world.failing["webhook"] = lambda *_: SinkUnavailableError("webhook: breaker open")
    world.now[0] += SCHEDULE[0]

    world.retrier().pass_once(Stop())

    head = next(world.lane.entries())
    assert head.tries == 0  # keeps its turn for when the sink is back


def test_the_retrier_publishes_parked_count_and_oldest_age_per_sink(world: World) -> None:
    park_three(world)
    world.now[0] += 2.0

    world.retrier().pass_once(Stop())

    lane = world.stats.lane()
    assert (lane["webhook"].parked, lane["webhook"].oldest_age_s) == (3, 2.0)
    assert lane["webhook"].next_at_s == world.now[0] + SCHEDULE[0] - 2.0
    assert lane["sqs"].parked == 0


def test_a_retrier_without_the_lease_moves_nothing(world: World) -> None:
    batch = park_three(world)
    world.failing["webhook"] = None
    world.now[0] += 31  # past our lease: another replica takes it
    assert Lease(world.db, T, "app", "them", 30.0, clock=world.clock, scope="Users").try_acquire()
    stop = world.runtime.event()

    world.retrier().run(stop)

    assert stop.is_set()
    assert world.parked() == [f"{n.id}.webhook" for n in batch]  # all still parked


class Refusing(RecordingSink):
    """Stands in for a GuardedSink whose breaker refuses every call for now."""

    def out_of_reach(self) -> bool:
        return True


def test_the_retrier_does_not_read_the_lane_while_every_waiting_sink_refuses(
    world: World,
) -> None:
    park_three(world)
    world.now[0] += SCHEDULE[0]
    retrier = world.retrier()
    retrier.pass_once(Stop())  # learns which sinks have parked changes
    world.sinks["webhook"] = Refusing("webhook")
    reads: list[str] = []
    query = world.db.query
    world.db.query = lambda **kw: reads.append("query") or query(**kw)
    world.now[0] += SCHEDULE[1]

    retrier.pass_once(Stop())  # the same retrier: it knows the lane from its last read

    assert reads == []  # during an outage the lane is read once per breaker period
    assert world.sinks["webhook"].calls == []
    waited = world.stats.lane()["webhook"].oldest_age_s
    assert waited == SCHEDULE[0] + SCHEDULE[1]  # the gauge goes on ageing meanwhile


def test_reader_processes_nudge_the_retrier_at_most_once_per_period(world: World) -> None:
    """Parks within a period are told at its end (found by the second review: they
    were dropped, and the parent's retrier found them only at its minute's look)."""
    deferred: list[tuple[float, Callable[[], None]]] = []
    nudge = Nudger(
        lane=world.lane,
        clock=world.clock,
        every_s=2.0,
        later=lambda delay, action: deferred.append((delay, action)),
    )
    before = world.lane.nudges()

    for _ in range(5):
        nudge(world.now[0], "webhook")

    assert world.lane.nudges() == before + 1
    assert [delay for delay, _ in deferred] == [2.0]  # one deferred nudge, not four
    world.now[0] += 2.0
    deferred[0][1]()
    assert world.lane.nudges() == before + 2


def test_a_sink_that_parked_since_the_last_read_is_not_skipped(world: World) -> None:
    """Found by the second review: a disabled webhook made the retrier skip reading the
    lane, so changes parked for a healthy SQS afterwards waited until an enable."""
    park_three(world)
    world.now[0] += SCHEDULE[0]
    retrier = world.retrier()
    retrier.pass_once(Stop())
    world.sinks["webhook"] = Refusing("webhook")
    world.failing["sqs"] = down
    sqs_change = notification("ORD9", 1)
    world.dispatcher().dispatch([sqs_change], holds=world.book())
    retrier.wake(world.now[0], "sqs")  # as the dispatcher's on_park does
    world.failing["sqs"] = None
    world.now[0] += SCHEDULE[0]

    retrier.pass_once(Stop())

    assert world.sinks["sqs"].delivered_ids("ORD9") == [sqs_change.id]


def test_no_lane_attempt_once_the_lease_may_have_passed(world: World) -> None:
    """Found by the second review: a worker paused past its lease resumed and its lane
    pullers each sent a change the new owner had already delivered."""
    park_three(world)
    world.failing["webhook"] = None
    world.now[0] += SCHEDULE[0]
    retrier = LaneRetrier(
        lane=world.lane,
        table="Users",
        sinks=world.sinks,
        schedule=SCHEDULE,
        stats=world.stats,
        runtime=world.runtime,
        lease_valid=lambda: False,
    )
    stop = world.runtime.event()

    retrier.pass_once(stop)

    assert stop.is_set()
    assert world.sinks["webhook"].delivered_ids() == []


def test_after_a_failed_lane_attempt_the_next_look_is_at_the_next_step(world: World) -> None:
    park_three(world)
    world.now[0] += SCHEDULE[0]

    wait_s = world.retrier().pass_once(Stop())

    assert wait_s == SCHEDULE[1]


class GatedHolds:
    """Stands in for the holds store: each read returns what was stored when it began,
    and the first read after `gate` is armed waits for the test to let it finish."""

    def __init__(self) -> None:
        self.stored: set[HoldKey] = set()
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def held(self, stream_arn: str) -> set[HoldKey]:
        snapshot = set(self.stored)
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(10)
        return snapshot

    def put(self, letter: Any) -> bool:
        raise AssertionError("not used")


def test_a_hold_noted_while_the_book_refreshes_is_never_lost() -> None:
    """Found by the adversarial review: two pullers refreshing at once, or a note
    between a refresh's read and its assignment, lost a hold, and a later change of
    the order overtook a parked one."""
    store = GatedHolds()
    clock = [0.0]
    book = HoldBook(store=store, stream_arn=ARN, monotonic=lambda: clock[0], refresh_s=60.0)
    first, second = changes("ORD1", 2)
    assert book.is_held(first, "webhook") is False  # the first load
    clock[0] = 61.0
    store.armed = True
    refreshing = threading.Thread(target=book.is_held, args=(first, "webhook"))
    refreshing.start()
    assert store.entered.wait(10)  # the refresh has read the store (without ORD1)

    key = book.key(first, "webhook")
    store.stored.add(key)  # parked meanwhile: written, then noted
    book.note(key)
    concurrent = book.is_held(second, "webhook")  # another puller, during the refresh
    store.release.set()
    refreshing.join(10)

    assert concurrent is True
    assert book.is_held(second, "webhook") is True


class StoppedWhilePacing(RecordingSink):
    """Stands in for a rate-limited sink: a stop (SIGTERM, a lost lease) arrives while
    the caller waits for its turn."""

    def pace(self, stop: Any) -> bool:
        stop.set()
        return not stop.is_set()


def test_a_stop_during_the_rate_wait_sends_nothing_and_parks_nothing(world: World) -> None:
    """Found by the adversarial review: the wait for a rate token ended on a stop, and
    the send went ahead, so SIGTERM released every waiting delivery at once."""
    world.sinks["webhook"] = StoppedWhilePacing("webhook")
    stop = world.runtime.event()

    outcomes = world.dispatcher().dispatch(changes("ORD1", 2), holds=world.book(), stop=stop)

    assert outcomes == [Outcome.FAILED, Outcome.FAILED]  # the next owner replays them
    assert world.sinks["webhook"].calls == []
    assert world.parked() == []
    assert world.dead() == []


def test_the_retrier_sends_nothing_once_its_stop_ends_the_rate_wait(world: World) -> None:
    park_three(world)
    world.now[0] += SCHEDULE[0]
    world.sinks["webhook"] = StoppedWhilePacing("webhook")
    stop = world.runtime.event()

    world.retrier().pass_once(stop)

    assert world.sinks["webhook"].calls == []
    assert [e.tries for e in world.lane.entries()] == [0, 0, 0]


def test_a_dead_letters_expiry_never_releases_a_parked_change() -> None:
    """Found by the adversarial review: with ORDERSTREAM_DLQ_TTL_DAYS the lane shared
    the DLQ's hold item, whose expiry then released an order with changes parked."""
    world = World()
    world.dlq = DeadLetterStore(world.db, T, "app", ttl_days=1, clock=world.clock)
    first, second, third = changes("ORD1", 3)
    world.failing["webhook"] = lambda *_: DeliveryError("webhook: HTTP 400", transient=False)
    world.dispatcher().dispatch([first], holds=world.book())
    [letter] = world.dlq.entries()
    world.dlq.delete(letter)  # `worker dlq drop`: its hold item keeps its expiry
    world.now[0] += 2 * 86400
    world.failing["webhook"] = down
    world.dispatcher().dispatch([second], holds=world.book())
    world.failing["webhook"] = None

    outcome = world.dispatcher().dispatch([third], holds=world.book())

    assert outcome == [Outcome.PARKED]  # behind the parked one, not past it
    assert world.sinks["webhook"].delivered_ids() == []


def test_a_chunk_retried_in_place_does_not_send_again_what_went_out(world: World) -> None:
    """Found by CI on the sink-outage test: without a lane, a breaker's refusal leaves a
    change unresolved and its chunk is retried in place; the other orders' changes of
    that chunk, delivered the first time, went out a second time."""
    world.failing["webhook"] = lambda n, _a: (
        SinkUnavailableError("webhook: circuit breaker open") if n.order_id == "ORD1" else None
    )
    batch = [*changes("ORD1", 1), *changes("ORD2", 1)]
    dispatcher = world.dispatcher(schedule=())
    assert dispatcher.dispatch(batch, holds=world.book()) == [Outcome.FAILED, Outcome.DELIVERED]
    world.failing["webhook"] = None

    assert dispatcher.dispatch(batch, holds=world.book()) == [Outcome.DELIVERED] * 2

    assert sorted(world.sinks["webhook"].delivered_ids()) == sorted(n.id for n in batch)
    assert sorted(world.sinks["sqs"].delivered_ids()) == sorted(n.id for n in batch)


def test_a_retrier_sends_only_its_own_tables_parked_changes(world: World) -> None:
    """One app name on two tables shares the lane: the other table's worker must not
    send (and enrich with its own table's profiles) what this table parked."""
    batch = park_three(world)
    world.failing["webhook"] = None
    world.now[0] += SCHEDULE[0]
    world.retrier(table="Orders").pass_once(Stop())

    assert world.sinks["webhook"].delivered_ids() == []
    assert world.parked() == [f"{n.id}.webhook" for n in batch]

    world.retrier().pass_once(Stop())

    assert world.sinks["webhook"].delivered_ids() == [n.id for n in batch]


@pytest.mark.parametrize(
    ("stream_arn", "table", "ours"),
    [
        (ARN, "Users", True),
        (ARN, "Orders", False),
        (ARN.replace("table/Users", "table/Users2"), "Users", False),
        ("", "Users", True),  # written before entries named their stream: cannot be placed
    ],
)
def test_an_entry_belongs_to_the_table_its_stream_is_of(
    stream_arn: str, table: str, ours: bool
) -> None:
    assert from_table(stream_arn, table) is ours
