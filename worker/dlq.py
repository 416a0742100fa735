"""The dead-letter store: deliveries that exhausted their attempts, and bad records.

Entries live in the state table under `APP#<app>#DLQ`, sorted by sequence number, so a
redrive replays each order's changes in their original order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from worker.statetable import app_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


log = structlog.get_logger()
UNPARSEABLE_SINK = "-"  # entries for records the worker could not understand
_SEQ_WIDTH = 40  # stream sequence numbers are at most 40 digits


@dataclass(frozen=True)
class DeadLetter:
    id: str  # `<notification id>.<sink>`: stable, so a re-dead-letter overwrites
    sink: str
    error: str
    attempts: int
    first_attempt_at: str
    last_attempt_at: str
    shard_id: str
    sequence_number: str
    order_id: str | None
    body: dict[str, Any] | None  # None for an unparseable record
    record: str | None = None  # the raw record (truncated) for an unparseable one

    @property
    def sort_key(self) -> str:
        return f"{self.sequence_number.zfill(_SEQ_WIDTH)}#{self.id}"


def entry_id(notification_id: str, sink: str) -> str:
    return f"{notification_id}.{sink}"


class LetterSink(Protocol):
    def put(self, letter: DeadLetter) -> None: ...


def put_unparseable(
    store: LetterSink,
    event_id: str,
    reason: str,
    shard_id: str,
    sequence_number: str,
    record: str | None,
    at: str,
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
    )
    try:
        store.put(letter)
    except Exception as exc:
        log.error("dlq.write_failed", event_id=event_id, error=str(exc))
        return False
    return True


class DeadLetterStore:
    def __init__(self, client: DynamoDBClient, table: str, app: str) -> None:
        self._client = client
        self._table = table
        self._pk = app_pk(app) + "#DLQ"

    def put(self, letter: DeadLetter) -> None:
        item: dict[str, Any] = {
            "pk": {"S": self._pk},
            "sk": {"S": letter.sort_key},
            "id": {"S": letter.id},
            "sink": {"S": letter.sink},
            "error": {"S": letter.error[:2000]},
            "attempts": {"N": str(letter.attempts)},
            "first_attempt_at": {"S": letter.first_attempt_at},
            "last_attempt_at": {"S": letter.last_attempt_at},
            "shard_id": {"S": letter.shard_id},
            "sequence_number": {"S": letter.sequence_number},
        }
        if letter.order_id:
            item["order_id"] = {"S": letter.order_id}
        if letter.body is not None:
            item["body"] = {"S": json.dumps(letter.body, separators=(",", ":"))}
        if letter.record is not None:
            item["record"] = {"S": letter.record[:100_000]}
        self._client.put_item(TableName=self._table, Item=item)

    def delete(self, letter: DeadLetter) -> None:
        self._client.delete_item(
            TableName=self._table, Key={"pk": {"S": self._pk}, "sk": {"S": letter.sort_key}}
        )

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
        return sum(1 for _ in self.entries())


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None


def _from_item(item: dict[str, Any]) -> DeadLetter:
    body = _s(item, "body")
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
        record=_s(item, "record"),
    )
