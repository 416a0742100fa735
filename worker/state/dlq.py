"""The dead-letter store: deliveries that exhausted their attempts, and bad records.

Entries live in the state table under `APP#<app>#DLQ`, sorted by stream and sequence
number, so a redrive replays each order's changes in their original order.

A dead letter also *holds* its order for its sink: a counter item under
`APP#<app>#HOLD` (one per table, user, order and sink) is raised in the same
transaction as the entry is written and lowered when a redrive deletes it. While it is
above zero, the order's later changes for that sink are dead-lettered behind it, across
batches, restarts and takeovers. The entry is written only if absent, so a replayed
change is neither sent again nor counted twice.

An entry always fits DynamoDB's 400 KB item limit: bodies are stored as UTF-8,
compressed when large, and when still too large only a minimal entry is kept (keys,
event id, sequence number, sink, error, size), so no legal item can stall a shard.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from botocore.exceptions import ClientError

from worker.core.models import Notification
from worker.state.statetable import TTL_ATTRIBUTE, app_pk
from writer.dynamodb_calls import DeleteItem, PutItem, Query, TransactWriteItems, UpdateItem

log = structlog.get_logger()
UNPARSEABLE_SINK = "-"  # entries for records the worker could not understand
_SEQ_WIDTH = 40  # stream sequence numbers are at most 40 digits
ITEM_LIMIT = 400 * 1024  # DynamoDB's item size limit
FIT_LIMIT = 300 * 1024  # what an entry may use, with room for names and overhead
COMPRESS_ABOVE = 16 * 1024  # bodies larger than this are stored compressed
MINIMAL_TEXT = 256  # characters kept of the error in a minimal entry
HOLD_KEY_MAX = 900  # bytes: DynamoDB's sort key limit is 1,024
LANE_SUFFIX = "#LANE"  # the retry lane's own hold counter, beside the DLQ's


@dataclass(frozen=True)
class DeadLetter:
    """One change a sink could not take (or a record the worker could not read), kept
    whole with its position so `worker dlq redrive` can send it again."""

    id: str  # `<notification id>.<sink>`: stable, so a re-dead-letter overwrites
    sink: str
    error: str
    attempts: int
    first_attempt_at: str
    last_attempt_at: str
    shard_id: str
    sequence_number: str
    order_id: str | None
    body: dict[str, Any] | None  # None for an unparseable record, or a minimal entry
    record: str | None = None  # the raw record (truncated) for an unparseable one
    stream_arn: str = ""
    user_id: str | None = None
    size: int | None = None  # set on a minimal entry: the body's size in bytes

    @property
    def sort_key(self) -> str:
        """`<stream>#<sequence, zero-padded>#<id>`: a Query lists entries in stream order."""
        return f"{self.stream_arn}#{self.sequence_number.zfill(_SEQ_WIDTH)}#{self.id}"

    def notification(self) -> Notification:
        """The notification the entry carries (not for a minimal or unparseable one)."""
        assert self.body is not None
        return Notification.from_body(self.body)

    @property
    def hold(self) -> HoldKey | None:
        """The (table, user, order, sink) this entry holds; None for a bad record."""
        if self.sink == UNPARSEABLE_SINK or self.order_id is None:
            return None
        return HoldKey(table_of(self.stream_arn), self.user_id or "", self.order_id, self.sink)


@dataclass(frozen=True)
class HoldKey:
    """An order held for one sink: its later changes wait behind a dead letter."""

    table: str
    user_id: str
    order_id: str
    sink: str

    @property
    def sort_key(self) -> str:
        """Readable when it fits DynamoDB's 1,024-byte sort key with room to spare;
        otherwise the ids are hashed (legal keys can be up to 2 KB and 1 KB)."""
        plain = f"{self.table}#{self.user_id}#{self.order_id}#{self.sink}"
        if len(plain.encode("utf-8", "surrogatepass")) <= HOLD_KEY_MAX:
            return plain
        ids = f"{self.user_id}\x00{self.order_id}".encode("utf-8", "surrogatepass")
        return f"{self.table}#sha256:{hashlib.sha256(ids).hexdigest()}#{self.sink[:64]}"


def table_of(stream_arn: str) -> str:
    """`arn:...:table/Users/stream/2024-...` -> `arn:...:table/Users`: holds outlive a
    re-created stream of the same table, and never cross to another table."""
    return stream_arn.split("/stream/", 1)[0]


def from_table(stream_arn: str, table: str) -> bool:
    """Whether an entry read from `stream_arn` came from the orders table `table`. One
    app name on two tables shares the app's DLQ and lane partitions: each worker and each
    operator command acts only on its own table's entries (enriching another table's
    change with this table's profile would mail the wrong customer). An entry without a
    stream (written before entries named it) cannot be placed: it is everyone's."""
    if not stream_arn:
        return True
    return table_of(stream_arn).rsplit(":table/", 1)[-1] == table


def entry_id(notification_id: str, sink: str) -> str:
    """The entry's key: one per notification and sink, so dead-lettering the same change
    again (a replay) overwrites instead of adding a second entry."""
    return f"{notification_id}.{sink}"


class LetterSink(Protocol):
    """Where a dead letter goes: the consumer-side seam of `DeadLetterStore`."""

    def put(self, letter: DeadLetter) -> bool:
        """Store the entry (and raise its hold); False if it was there already."""
        ...


class HoldStore(LetterSink, Protocol):
    """A letter sink that also answers which orders it holds, so a reader keeps an
    order's later changes behind its dead letter."""

    def held(self, stream_arn: str) -> set[HoldKey]:
        """The orders held (per sink) in the table of `stream_arn`."""
        ...


def put_unparseable(
    store: LetterSink,
    *,
    event_id: str,
    reason: str,
    shard_id: str,
    sequence_number: str,
    record: str | None,
    at: str,
    stream_arn: str = "",
) -> bool:
    """Set aside a record the worker could not understand, with its raw form.

    False if the write failed (logged): the caller must not checkpoint past it.
    """
    letter = DeadLetter(
        id=entry_id(event_id, UNPARSEABLE_SINK),
        sink=UNPARSEABLE_SINK,
        error=reason,
        attempts=0,
        first_attempt_at=at,
        last_attempt_at=at,
        shard_id=shard_id,
        sequence_number=sequence_number,
        order_id=None,
        body=None,
        record=record,
        stream_arn=stream_arn,
    )
    try:
        store.put(letter)
    except Exception as exc:
        log.error("dlq.write_failed", event_id=event_id, error=str(exc))
        return False
    return True


class DeadLetterClient(PutItem, UpdateItem, DeleteItem, TransactWriteItems, Query, Protocol):
    """The DynamoDB calls the dead-letter store makes (entries, and their holds in the
    same transaction): the boto3 client, or a state table stand-in in tests."""


class DeadLetterStore:
    """Dead letters and holds in the state table.

    With `ttl_days` (ORDERSTREAM_DLQ_TTL_DAYS, off by default: a dead letter is a
    notification nobody has received yet) an entry carries DynamoDB's TTL attribute, and
    its hold is given the same expiry, so an order is released when its entries expire.
    """

    def __init__(
        self,
        client: DeadLetterClient,
        table: str,
        app: str,
        ttl_days: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._pk = app_pk(app) + "#DLQ"
        self._hold_pk = app_pk(app) + "#HOLD"
        self._ttl_s = ttl_days * 86400
        self._clock = clock

    def _expiry(self) -> dict[str, Any]:
        return ttl_expiry(self._clock, self._ttl_s)

    def put(self, letter: DeadLetter) -> bool:
        """Written only if absent, in one transaction with its hold's raise; False for a replay."""
        item = {
            "pk": {"S": self._pk},
            "sk": {"S": letter.sort_key},
            **_fitted(letter),
            **self._expiry(),
        }
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        hold = letter.hold
        try:
            if hold is None:
                self._client.put_item(**put)
            else:
                items: Any = [{"Put": put}, self._count(hold, 1)]
                self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _already_there(exc):
                return False
            raise
        return True

    def update(self, letter: DeadLetter) -> None:
        """Record a failed redrive on an existing entry: its attempts, error and last
        attempt only. Its body, hold and expiry stay as written (a rewrite of the whole
        item would drop the expiry that its hold shares). One gone meanwhile stays gone."""
        minimal = MINIMAL_TEXT if letter.body is None and letter.record is None else 2000
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": self._pk}, "sk": {"S": letter.sort_key}},
                UpdateExpression="SET #e = :e, #a = :a, #l = :l",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#e": "error", "#a": "attempts", "#l": "last_attempt_at"},
                ExpressionAttributeValues={
                    ":e": {"S": letter.error[:minimal]},
                    ":a": {"N": str(letter.attempts)},
                    ":l": {"S": letter.last_attempt_at},
                },
            )
        except ClientError as exc:
            # A failed condition: the entry was dropped or redriven meanwhile. Never
            # bring it back (without its hold, it would hold nothing).
            if not _already_there(exc):
                raise

    def delete(self, letter: DeadLetter) -> None:
        """Remove a (redriven) entry and lower its hold, together."""
        delete: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": self._pk}, "sk": {"S": letter.sort_key}},
            "ConditionExpression": "attribute_exists(pk)",
        }
        hold = letter.hold
        try:
            if hold is None:
                self._client.delete_item(**delete)
            else:
                items: Any = [{"Delete": delete}, self._count(hold, -1)]
                self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if not _already_there(exc):  # already gone: someone else redrove it
                raise

    def held(self, stream_arn: str) -> set[HoldKey]:
        """Holds counted above zero, every page; one whose TTL has passed counts as released."""
        table = table_of(stream_arn)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :table)",
            "ExpressionAttributeValues": {
                ":pk": {"S": self._hold_pk},
                ":table": {"S": table + "#"},
            },
            "ConsistentRead": True,
        }
        keys: set[HoldKey] = set()
        while True:
            page = self._client.query(**kwargs)
            now = self._clock()
            for item in page.get("Items", []):
                expired = int(item.get(TTL_ATTRIBUTE, {}).get("N", "0") or 0) or None
                if expired is not None and expired < now:
                    continue  # TTL deletes it within a day or two: already not held
                if int(item.get("n", {}).get("N", "0")) > 0:
                    keys.add(
                        HoldKey(
                            table, item["user_id"]["S"], item["order_id"]["S"], item["sink"]["S"]
                        )
                    )
            if "LastEvaluatedKey" not in page:
                return keys
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _count(self, hold: HoldKey, step: int) -> dict[str, Any]:
        return hold_update(self._table, self._hold_pk, hold, step, expiry=self._expiry())

    def entries(self, where: Callable[[DeadLetter], bool] | None = None) -> Iterator[DeadLetter]:
        """All entries in sequence order (all pages), optionally filtered."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": self._pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            for item in page.get("Items", []):
                letter = _from_item(item)
                if where is None or where(letter):
                    yield letter
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count(self) -> int:
        """How many entries, by reading every one (every page)."""
        return sum(1 for _ in self.entries())


def hold_update(
    table: str,
    hold_pk: str,
    hold: HoldKey,
    step: int,
    *,
    lane: bool = False,
    expiry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A TransactWriteItems Update of a hold's counter `n`. Dead letters and the retry
    lane count on items of their own (the lane's sort key ends in `#LANE`): a dead
    letter's hold may expire with it (ORDERSTREAM_DLQ_TTL_DAYS), a parked change's never."""
    update = "ADD n :step SET user_id = :u, order_id = :o, sink = :s"
    values: dict[str, Any] = {
        ":step": {"N": str(step)},
        ":u": {"S": hold.user_id},
        ":o": {"S": hold.order_id},
        ":s": {"S": hold.sink},
    }
    sort_key = hold.sort_key + (LANE_SUFFIX if lane else "")
    operation: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": hold_pk}, "sk": {"S": sort_key}},
        "UpdateExpression": update,
        "ExpressionAttributeValues": values,
    }
    if expiry and step > 0 and not lane:  # the hold lasts as long as its newest entry
        operation["UpdateExpression"] += ", #ttl = :ttl"
        values[":ttl"] = expiry[TTL_ATTRIBUTE]
        operation["ExpressionAttributeNames"] = {"#ttl": TTL_ATTRIBUTE}
    return {"Update": operation}


def ttl_expiry(clock: Callable[[], float], ttl_s: int) -> dict[str, Any]:
    """DynamoDB's TTL attribute for a dead letter kept `ttl_s` seconds (0: for ever)."""
    if not ttl_s:
        return {}
    return {TTL_ATTRIBUTE: {"N": str(int(clock() + ttl_s))}}


def _already_there(exc: ClientError) -> bool:
    """The entry's own condition failed (not the hold, not throttling)."""
    error = exc.response["Error"]
    if error["Code"] == "ConditionalCheckFailedException":
        return True
    if error["Code"] != "TransactionCanceledException":
        return False
    reasons: Any = exc.response.get("CancellationReasons") or []
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"


def letter_item(letter: DeadLetter) -> dict[str, Any]:
    """The entry's attributes (keys aside), fitted to the item limit: shared with the lane."""
    return _fitted(letter)


def letter_of(item: dict[str, Any]) -> DeadLetter:
    """A stored item back as a DeadLetter: the retry lane reads its entries with it."""
    return _from_item(item)


def _fitted(letter: DeadLetter) -> dict[str, Any]:
    """The entry's attributes, made to fit the item limit whatever the body holds."""
    item: dict[str, Any] = {
        "id": {"S": letter.id},
        "sink": {"S": letter.sink},
        "error": {"S": letter.error[:2000]},
        "attempts": {"N": str(letter.attempts)},
        "first_attempt_at": {"S": letter.first_attempt_at},
        "last_attempt_at": {"S": letter.last_attempt_at},
        "shard_id": {"S": letter.shard_id},
        "sequence_number": {"S": letter.sequence_number},
        "stream_arn": {"S": letter.stream_arn},
    }
    if letter.order_id:
        item["order_id"] = {"S": letter.order_id}  # whole: redrive --order and holds match it
    if letter.user_id:
        item["user_id"] = {"S": letter.user_id}
    payloads = {
        "body": json.dumps(letter.body, separators=(",", ":"), ensure_ascii=False)
        if letter.body is not None
        else None,
        "record": letter.record,
    }
    size = 0
    for name, text in payloads.items():
        if text is None:
            continue
        raw = text.encode("utf-8", "surrogatepass")
        size += len(raw)
        if len(raw) <= COMPRESS_ABOVE:
            item[name] = {"S": text}
        else:
            item[name + "_z"] = {"B": zlib.compress(raw, 6)}
    if _size(item) > FIT_LIMIT:
        for name in payloads:
            item.pop(name, None)
            item.pop(name + "_z", None)
        item["size"] = {"N": str(size)}
        item["error"] = {"S": letter.error[:MINIMAL_TEXT]}
    return item


def _size(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's item size: names plus values in bytes."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        ((kind, data),) = value.items()
        if kind == "B":
            total += len(data)
        else:
            total += len(str(data).encode("utf-8", "surrogatepass"))
    return total


def _payload(item: dict[str, Any], name: str) -> str | None:
    if name in item:
        return str(item[name]["S"])
    if name + "_z" in item:
        data = item[name + "_z"]["B"]
        raw = base64.b64decode(data) if isinstance(data, str) else bytes(data)
        return zlib.decompress(raw).decode("utf-8", "surrogatepass")
    return None


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None


def _from_item(item: dict[str, Any]) -> DeadLetter:
    body = _payload(item, "body")
    return DeadLetter(
        id=_s(item, "id") or "",
        sink=_s(item, "sink") or "",
        error=_s(item, "error") or "",
        attempts=int(item.get("attempts", {}).get("N", "0")),
        first_attempt_at=_s(item, "first_attempt_at") or "",
        last_attempt_at=_s(item, "last_attempt_at") or "",
        shard_id=_s(item, "shard_id") or "",
        sequence_number=_s(item, "sequence_number") or "0",
        order_id=_s(item, "order_id"),
        body=json.loads(body) if body else None,
        record=_payload(item, "record"),
        stream_arn=_s(item, "stream_arn") or "",
        user_id=_s(item, "user_id"),
        size=int(item["size"]["N"]) if "size" in item else None,
    )
