"""The retry lane: changes a sink did not take in a short burst, parked durably.

A parked change waits in the state table under `APP#<app>#LANE`, sorted like dead
letters by stream and sequence number, until the lane retrier (`worker/delivery/retrier.py`)
delivers it on a long schedule, or gives up and moves it to the DLQ. It holds its order
for its sink as a dead letter does, with a counter under `APP#<app>#HOLD` beside the
DLQ's (its sort key ends in `#LANE`, and it never expires): the order's later changes
for that sink park behind it, while the shard's checkpoint passes them all and the
stream moves on.

Every write the retrier makes, and every park, is fenced by the app lease when there is
one (in a transaction with a check on the lease item, as checkpoints are): a replica
that lost its lease can neither park nor move a parked change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog
from botocore.exceptions import ClientError

from worker.core.errors import LeaseLostError
from worker.core.stats import LaneGauge
from worker.state.checkpoints import Fence
from worker.state.dlq import (
    LANE_SUFFIX,
    DeadLetter,
    HoldKey,
    hold_update,
    letter_item,
    letter_of,
    ttl_expiry,
)
from worker.state.statetable import TTL_ATTRIBUTE, app_pk
from writer.dynamodb_calls import GetItem, Query, TransactWriteItems, UpdateItem

log = structlog.get_logger()
# The long schedule: waits before each attempt from the lane, about a day in all.
DEFAULT_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class TooLargeToParkError(ValueError):
    """The body does not fit an item: the change goes to the DLQ as a minimal entry."""


@dataclass(frozen=True)
class Parked:
    """One parked change for one sink: the entry a dead letter would be, and its turn."""

    letter: DeadLetter
    tries: int  # attempts made from the lane (the burst before parking not counted)
    next_at_s: float  # wall clock: the next attempt is due then
    parked_at_s: float

    @property
    def hold(self) -> HoldKey:
        """The (order, sink) it holds: only order changes are parked, so there is always one."""
        hold = self.letter.hold
        assert hold is not None  # only order changes are parked
        return hold


@dataclass(frozen=True)
class HoldCount:
    """A held (order, sink): `dead` dead letters and `parked` lane entries hold it."""

    dead: int
    parked: int


class LaneClient(UpdateItem, GetItem, TransactWriteItems, Query, Protocol):
    """The DynamoDB calls the retry lane makes (parks and moves in transactions, the
    nudge counter): the boto3 client, or a state table stand-in in tests."""


class LaneStore:
    """Parked changes in the state table, and the hold counters they share with the DLQ."""

    def __init__(
        self,
        *,
        client: LaneClient,
        table: str,
        app: str,
        fence: Fence | None,
        clock: Callable[[], float],
        dlq_ttl_days: int = 0,
    ) -> None:
        """`dlq_ttl_days` as the DLQ's (ORDERSTREAM_DLQ_TTL_DAYS), for what the lane
        hands over to it."""
        self._dlq_ttl_s = dlq_ttl_days * 86400
        self._client = client
        self._table = table
        self._pk = app_pk(app) + "#LANE"
        self._nudge_key = {"pk": {"S": app_pk(app)}, "sk": {"S": "LANE-NUDGE"}}
        self._dlq_pk = app_pk(app) + "#DLQ"
        self._hold_pk = app_pk(app) + "#HOLD"
        self._fence = fence
        self._clock = clock

    # -- parking (the dispatcher) ------------------------------------------------------

    def park(self, letter: DeadLetter, *, next_at_s: float) -> bool:
        """Park a change and hold its order: False if it was parked already (a replay).
        Raises LeaseLostError when fenced and the lease is no longer ours."""
        hold = letter.hold
        if hold is None or letter.body is None:
            raise ValueError("only an order change with its body can be parked")
        item = self._item(letter, tries=0, next_at_s=next_at_s, parked_at_s=self._clock())
        if "body" not in item and "body_z" not in item:
            raise TooLargeToParkError(f"its body ({item['size']['N']} bytes) does not fit an item")
        put = {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        return self._transact([put, self._lane_hold(hold, 1)], own=0)

    # -- the retrier's moves (fenced) --------------------------------------------------

    def delivered(self, entry: Parked) -> None:
        """Delivered at last: the entry goes, and its share of the hold."""
        self._transact([self._delete(entry), self._lane_hold(entry.hold, -1)], own=0)

    def reschedule(self, entry: Parked, *, error: str, at: str, next_at_s: float) -> None:
        """One more attempt failed: count it, say why, and set the next turn."""
        letter = replace(
            entry.letter, error=error, attempts=entry.letter.attempts + 1, last_attempt_at=at
        )
        item = self._item(
            letter, tries=entry.tries + 1, next_at_s=next_at_s, parked_at_s=entry.parked_at_s
        )
        put = {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        self._transact([put], own=0)

    def to_dlq(self, entry: Parked, letter: DeadLetter) -> None:
        """Give up: the entry becomes a dead letter (same key), still holding its order.
        If that dead letter exists already (a replayed change dead-lettered before),
        the lane's copy just goes, with its share of the hold."""
        expiry = ttl_expiry(self._clock, self._dlq_ttl_s)
        item = {"pk": {"S": self._dlq_pk}, "sk": {"S": letter.sort_key}, **letter_item(letter)}
        put = {
            "Put": {
                "TableName": self._table,
                "Item": {**item, **expiry},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        dead = hold_update(self._table, self._hold_pk, entry.hold, 1, expiry=expiry)
        moved = self._transact(
            [self._delete(entry), put, self._lane_hold(entry.hold, -1), dead], own=1
        )
        if not moved:
            self.delivered(entry)  # the same as a delivery: the entry and its share go

    def retry_now(self, entries: Sequence[Parked]) -> int:
        """Make entries due at once (`worker lane retry`): an operator's nudge, unfenced
        (it moves no change, only its turn). Returns how many were still there."""
        now = self._clock()
        done = 0
        for entry in entries:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(entry.letter),
                    UpdateExpression="SET next_at_ms = :now",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":now": {"N": str(int(now * 1000))}},
                )
                done += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return done

    def nudge(self) -> None:
        """Tell the lane retrier to look now (a park in a reader process, an operator's
        retry): one counter, so the retrier need not read the whole lane to notice."""
        self._client.update_item(
            TableName=self._table,
            Key=self._nudge_key,
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    def nudges(self) -> int:
        """The nudge counter as last written (a consistent read; 0 before the first nudge)."""
        found = self._client.get_item(
            TableName=self._table, Key=self._nudge_key, ConsistentRead=True
        )
        return int(found.get("Item", {}).get("n", {}).get("N", "0"))

    # -- reading -------------------------------------------------------------------------

    def entries(self, where: Callable[[Parked], bool] | None = None) -> Iterator[Parked]:
        """Every parked change in sequence order (all pages), optionally filtered."""
        for item in self._query(self._pk):
            entry = _parked(item)
            if where is None or where(entry):
                yield entry

    def holds(self) -> dict[HoldKey, HoldCount]:
        """Every held (order, sink) of the app: its dead letters and its parked changes.
        A dead letters' hold expired by the DLQ's TTL counts none (they expired with it)."""
        now = self._clock()
        dead: dict[HoldKey, int] = {}
        parked: dict[HoldKey, int] = {}
        for item in self._query(self._hold_pk):
            n = max(int(item.get("n", {}).get("N", "0")), 0)
            key = HoldKey(
                item["sk"]["S"].split("#", 1)[0],  # the table's ARN has no '#'
                item["user_id"]["S"],
                item["order_id"]["S"],
                item["sink"]["S"],
            )
            if item["sk"]["S"].endswith(LANE_SUFFIX):
                parked[key] = parked.get(key, 0) + n
                continue
            expires = int(item.get(TTL_ATTRIBUTE, {}).get("N", "0") or 0)
            if not (expires and expires < now):
                dead[key] = dead.get(key, 0) + n
        return {
            key: HoldCount(dead.get(key, 0), parked.get(key, 0))
            for key in dead.keys() | parked.keys()
            if dead.get(key, 0) or parked.get(key, 0)
        }

    # -- plumbing ------------------------------------------------------------------------

    def _key(self, letter: DeadLetter) -> dict[str, Any]:
        return {"pk": {"S": self._pk}, "sk": {"S": letter.sort_key}}

    def _item(
        self, letter: DeadLetter, *, tries: int, next_at_s: float, parked_at_s: float
    ) -> dict[str, Any]:
        return {
            **self._key(letter),
            **letter_item(letter),
            "tries": {"N": str(tries)},
            "next_at_ms": {"N": str(int(next_at_s * 1000))},
            "parked_at_ms": {"N": str(int(parked_at_s * 1000))},
        }

    def _lane_hold(self, hold: HoldKey, step: int) -> dict[str, Any]:
        return hold_update(self._table, self._hold_pk, hold, step, lane=True)

    def _delete(self, entry: Parked) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self._table,
                "Key": self._key(entry.letter),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }

    def _transact(self, operations: list[dict[str, Any]], *, own: int) -> bool:
        """Write all or nothing, behind the lease check when fenced. False when the
        operation at index `own` found its condition failed (already done); raises
        LeaseLostError when the lease check failed."""
        items: Any = operations if self._fence is None else [self._fence.fence(), *operations]
        offset = 0 if self._fence is None else 1
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons: Any = exc.response.get("CancellationReasons") or []
            codes = [str(reason.get("Code", "None")) for reason in reasons]
            if offset and codes and codes[0] == "ConditionalCheckFailed":
                raise LeaseLostError("lane write refused: the app lease is not ours") from exc
            if len(codes) > own + offset and codes[own + offset] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _parked(item: dict[str, Any]) -> Parked:
    return Parked(
        letter=letter_of(item),
        tries=int(item.get("tries", {}).get("N", "0")),
        next_at_s=int(item.get("next_at_ms", {}).get("N", "0")) / 1000,
        parked_at_s=int(item.get("parked_at_ms", {}).get("N", "0")) / 1000,
    )


def summarize(entries: Iterable[Parked], now_s: float) -> dict[str, LaneGauge]:
    """Per sink: parked count, the oldest one's wait, and the next attempt due. That is
    an order's oldest change's turn: the rest of the order waits behind it."""
    gauges: dict[str, LaneGauge] = {}
    heads: set[HoldKey] = set()
    for entry in entries:
        sink = entry.letter.sink
        gauge = gauges.get(sink, LaneGauge(0, 0.0, None))
        next_at = gauge.next_at_s
        if entry.hold not in heads:
            heads.add(entry.hold)
            next_at = entry.next_at_s if next_at is None else min(next_at, entry.next_at_s)
        age = max(gauge.oldest_age_s, now_s - entry.parked_at_s)
        gauges[sink] = LaneGauge(gauge.parked + 1, age, next_at)
    return gauges


def _timer(delay_s: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(delay_s, action)
    timer.daemon = True
    timer.start()


class Nudger:
    """A reader process's parks, told to the parent's lane retrier through the state
    table: at most one nudge per `every_s`, whatever the number of parks; parks within
    a period are told at its end, never dropped. A failed nudge only delays the retrier
    until its next full look (a minute at most)."""

    def __init__(
        self,
        *,
        lane: LaneStore,
        clock: Callable[[], float],
        every_s: float = 2.0,
        later: Callable[[float, Callable[[], None]], None] = _timer,
    ) -> None:
        self._lane = lane
        self._clock = clock
        self._every_s = every_s
        self._later = later
        self._last: float | None = None
        self._pending = False
        self._lock = threading.Lock()

    def __call__(self, _due_at_s: float, _sink: str) -> None:
        """A park (the dispatcher's `on_park`): nudge now, or once at the end of the period."""
        with self._lock:
            now = self._clock()
            if self._last is None or now - self._last >= self._every_s:
                self._last = now
            else:
                if not self._pending:
                    self._pending = True
                    self._later(self._last + self._every_s - now, self._flush)
                return
        self._nudge()

    def _flush(self) -> None:
        with self._lock:
            self._pending = False
            self._last = self._clock()
        self._nudge()

    def _nudge(self) -> None:
        try:
            self._lane.nudge()
        except Exception as exc:
            log.warning("lane.nudge_failed", error=str(exc))
