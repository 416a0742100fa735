"""The optional dedup store: ids already delivered, kept with a TTL, checked in bulk.

One BatchGetItem per 100 ids before a batch is sent and one BatchWriteItem per 25
ids after, so a notification costs a fraction of one read and one write, never a
round trip of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from worker.state.statetable import TTL_ATTRIBUTE, app_pk
from writer.dynamodb_calls import BatchGetItem, BatchWriteItem

READ_CHUNK = 100  # BatchGetItem's key limit
WRITE_CHUNK = 25  # BatchWriteItem's request limit


class DedupClient(BatchGetItem, BatchWriteItem, Protocol):
    """The two DynamoDB calls the dedup store makes: the boto3 client, or a fake."""


class DedupStore:
    """Notification ids already delivered, so a replay after a crash is not sent
    again; the TTL bounds the table to the window a replay can come from."""

    def __init__(
        self,
        client: DedupClient,
        *,
        table: str,
        app: str,
        ttl_s: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table
        self._prefix = app_pk(app) + "#DEDUP#"
        self._ttl_s = ttl_s
        self._clock = clock
        self._sleep = sleep

    def _key(self, notification_id: str) -> dict[str, Any]:
        return {"pk": {"S": self._prefix + notification_id}, "sk": {"S": "ID"}}

    def seen(self, ids: Iterable[str]) -> set[str]:
        """The ids among `ids` recorded as delivered and not yet expired."""
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        now = int(self._clock())
        for start in range(0, len(wanted), READ_CHUNK):
            keys: list[Any] = [self._key(i) for i in wanted[start : start + READ_CHUNK]]
            while keys:
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    if int(item.get(TTL_ATTRIBUTE, {}).get("N", "0")) > now:
                        found.add(item["pk"]["S"].removeprefix(self._prefix))
                unprocessed: Any = response.get("UnprocessedKeys", {})
                keys = list(unprocessed.get(self._table, {}).get("Keys", []))
                if keys:
                    self._sleep(0.05)
        return found

    def remember(self, ids: Iterable[str]) -> None:
        """Record delivered ids with a TTL, 25 to a request, resending unprocessed ones."""
        expires = str(int(self._clock()) + self._ttl_s)
        requests: list[Any] = [
            {"PutRequest": {"Item": {**self._key(i), TTL_ATTRIBUTE: {"N": expires}}}}
            for i in dict.fromkeys(ids)
        ]
        for start in range(0, len(requests), WRITE_CHUNK):
            pending: list[Any] = requests[start : start + WRITE_CHUNK]
            while pending:
                response = self._client.batch_write_item(RequestItems={self._table: pending})
                pending = list(response.get("UnprocessedItems", {}).get(self._table, []))
                if pending:
                    self._sleep(0.05)
