"""In-memory fakes for the dispatcher's collaborators: a sink, the DLQ and dedup stores.

They stand in for the real sinks and state-table stores in unit tests (no network):
each records what it was asked and can be told to fail, the way dramatiq's
`StubBroker` stands in for a broker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from worker.core.errors import DeliveryError
from worker.core.models import Notification
from worker.state.dlq import DeadLetter, HoldKey, table_of

Failure = Callable[[Notification, int], DeliveryError | None]


def notification(
    order_id: str = "ORD1",
    seq: int = 1,
    old: str | None = "Pending",
    new: str = "Processing",
    *,
    user_id: str = "USR1",
    shard_id: str = "shardId-000001",
) -> Notification:
    """A notification as `detect` builds it; the id is derived from the sequence number."""
    return Notification(
        id=f"evt-{order_id}-{seq:05d}",
        occurred_at="2024-05-01T10:00:00.000Z",
        user_id=user_id,
        order_id=order_id,
        old_status=old,
        new_status=new,
        amount="50",
        shard_id=shard_id,
        sequence_number=str(1000 + seq),
    )


class RecordingSink:
    """Stands in for any sink: records deliveries; `fail(n, attempt)` may return an error.

    `attempt` counts the calls for that notification id, from 1.
    """

    def __init__(self, name: str = "log", fail: Failure | None = None) -> None:
        self.name = name
        self.local = False  # a remote sink: the dispatcher runs it on the pool
        self._fail = fail
        self._lock = threading.Lock()
        self.calls: list[Notification] = []  # every attempt
        self.delivered: list[Notification] = []  # successful ones, in completion order
        self.closed = False

    def send(self, notification: Notification) -> None:
        with self._lock:
            self.calls.append(notification)
            attempt = sum(1 for n in self.calls if n.id == notification.id)
        error = self._fail(notification, attempt) if self._fail else None
        if error is not None:
            raise error
        with self._lock:
            self.delivered.append(notification)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def delivered_ids(self, order_id: str | None = None) -> list[str]:
        with self._lock:
            return [n.id for n in self.delivered if order_id in (None, n.order_id)]


class MemoryDeadLetters:
    """Stands in for `DeadLetterStore` (put, held, delete); `broken=True` makes every
    write fail. Like the real store, an entry is written once (a replay is a no-op) and
    holds its order for its sink until it is deleted."""

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self._lock = threading.Lock()
        self.letters: list[DeadLetter] = []

    def put(self, letter: DeadLetter) -> bool:
        if self.broken:
            raise ConnectionError("state table unreachable")
        with self._lock:
            if any(x.sort_key == letter.sort_key for x in self.letters):
                return False
            self.letters.append(letter)
            return True

    def held(self, stream_arn: str) -> set[HoldKey]:
        table = table_of(stream_arn)
        with self._lock:
            return {x.hold for x in self.letters if x.hold is not None and x.hold.table == table}

    def delete(self, letter: DeadLetter) -> None:
        with self._lock:
            self.letters = [x for x in self.letters if x.sort_key != letter.sort_key]

    def by_sink(self, sink: str) -> list[DeadLetter]:
        return sorted(
            (x for x in self.letters if x.sink == sink), key=lambda x: int(x.sequence_number)
        )


class MemoryDedup:
    """Stands in for `DedupStore`: counts its bulk calls; `broken_writes` fails remember()."""

    def __init__(self, known: Iterable[str] = (), broken_writes: bool = False) -> None:
        self.known = set(known)
        self.broken_writes = broken_writes
        self.seen_calls: list[list[str]] = []
        self.remember_calls: list[list[str]] = []

    def seen(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        self.seen_calls.append(wanted)
        return self.known & set(wanted)

    def remember(self, ids: Iterable[str]) -> None:
        written = list(ids)
        self.remember_calls.append(written)
        if self.broken_writes:
            raise ConnectionError("state table unreachable")
        self.known.update(written)


class FakeDedupClient:
    """Stands in for the DynamoDB client under `DedupStore`: BatchGetItem and BatchWriteItem.

    Keeps items by key like a table; enforces the 100-key and 25-request limits and the
    no-duplicate-keys rule; `unprocessed` leaves the last N keys/requests of the next
    calls unprocessed, as DynamoDB does under throttling.
    """

    def __init__(self, unprocessed: Iterable[int] = ()) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.unprocessed = list(unprocessed)
        self.get_calls: list[int] = []  # keys per BatchGetItem
        self.write_calls: list[int] = []  # requests per BatchWriteItem

    def _leave(self, count: int) -> int:
        return min(self.unprocessed.pop(0), count) if self.unprocessed else 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        ((table, spec),) = RequestItems.items()
        keys = spec["Keys"]
        assert len(keys) <= 100, "BatchGetItem takes at most 100 keys"
        pks = [k["pk"]["S"] for k in keys]
        assert len(set(pks)) == len(pks), "BatchGetItem rejects duplicate keys"
        self.get_calls.append(len(keys))
        left = self._leave(len(keys))
        done, rest = keys[: len(keys) - left], keys[len(keys) - left :]
        found = [self.items[k["pk"]["S"]] for k in done if k["pk"]["S"] in self.items]
        response: dict[str, Any] = {"Responses": {table: found}}
        if rest:
            response["UnprocessedKeys"] = {table: {"Keys": rest, "ConsistentRead": True}}
        return response

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        ((table, requests),) = RequestItems.items()
        assert len(requests) <= 25, "BatchWriteItem takes at most 25 requests"
        pks = [r["PutRequest"]["Item"]["pk"]["S"] for r in requests]
        assert len(set(pks)) == len(pks), "BatchWriteItem rejects duplicate keys"
        self.write_calls.append(len(requests))
        left = self._leave(len(requests))
        done, rest = requests[: len(requests) - left], requests[len(requests) - left :]
        for request in done:
            item = request["PutRequest"]["Item"]
            self.items[item["pk"]["S"]] = item
        return {"UnprocessedItems": {table: rest} if rest else {}}
