"""An in-memory fake of the boto3 DynamoDB client for the worker's state table.

It stands in for the table that holds checkpoints, the lease, the DLQ (and whatever
else the worker keeps there): a generic subset of the item API, not string matches of
today's expressions, so the real `DynamoCheckpointStore`, `Lease` and
`DeadLetterStore` run on it unchanged, and so will their successors.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from tests.fakes.expressions import (
    ExpressionError,
    Item,
    parse_condition,
    parse_update,
    projection,
)

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item size limit
MAX_TRANSACT_ITEMS = 100
Fault = Callable[[str, dict[str, Any]], ClientError | None]


def client_error(
    operation: str, code: str, message: str = "", status: int = 400, **extra: Any
) -> ClientError:
    """The exception botocore raises for an AWS error response (same shape, same codes)."""
    response: Any = {
        "Error": {"Code": code, "Message": message or code},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "fake"},
        **extra,
    }
    return ClientError(response, operation)


def item_size(item: Item) -> int:
    """DynamoDB's item size: attribute names plus values, as its documentation counts."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Any) -> int:  # noqa: PLR0911 - one exit per attribute type
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return len(str(Decimal(content)).lstrip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: m}) for m in content)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in content)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in content.items())
    raise ValueError(f"unknown attribute type {kind}")


@dataclass(frozen=True)
class Write:
    """One change the table made durable: what the simulation's oracle watches."""

    operation: str
    key: tuple[str, str]
    before: Item | None
    after: Item | None  # None: deleted


class FakeDynamoDB:
    """Stands in for `boto3.client("dynamodb")` on tables keyed HASH `pk` + RANGE `sk`.

    put_item / get_item / delete_item / update_item (SET, ADD, REMOVE, DELETE), query
    (key conditions, ExclusiveStartKey paging, Limit, ScanIndexForward, projection,
    filters), transact_write_items (ConditionCheck/Put/Update/Delete, all or nothing,
    TransactionCanceledException with CancellationReasons), batch_get_item and
    batch_write_item. Errors are botocore `ClientError`s with DynamoDB's codes
    (ConditionalCheckFailedException, ValidationException for a 400 KB item, ...).

    `fault(operation, params)` may return an error to raise instead of doing the call
    (throttling, 5xx): the simulation's fault injection. `page_items` caps a query page
    (DynamoDB's cap is 1 MB) so paging is exercised. `watchers` see every write that
    landed, in order, inside the call (they must not call back into the fake).
    """

    def __init__(
        self,
        *,
        hash_key: str = "pk",
        range_key: str = "sk",
        page_items: int = 1000,
        fault: Fault | None = None,
    ) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        self.page_items = page_items
        self.fault = fault
        self.watchers: list[Callable[[Write], None]] = []
        self._items: dict[str, dict[tuple[str, str], Item]] = {}
        self._lock = threading.Lock()

    # -- inspection --------------------------------------------------------------------

    def items(self, table: str) -> list[Item]:
        with self._lock:
            rows = self._items.get(table, {})
            return [copy.deepcopy(rows[k]) for k in sorted(rows)]

    # -- the API -------------------------------------------------------------------------

    def put_item(self, *, TableName: str, Item: Item, **kwargs: Any) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        self._check("PutItem", {"TableName": TableName, "Item": Item, **kwargs})
        with self._lock:
            old = self._put(TableName, Item, kwargs, "PutItem")
        return _returned(kwargs, old)

    def get_item(self, *, TableName: str, Key: Item, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self._check("GetItem", {"TableName": TableName, "Key": Key, **kwargs})
        with self._lock:
            item = self._rows(TableName).get(self._key(Key))
            if item is None:
                return {}
            names = kwargs.get("ExpressionAttributeNames", {})
            return {
                "Item": copy.deepcopy(projection(item, kwargs.get("ProjectionExpression"), names))
            }

    def delete_item(self, *, TableName: str, Key: Item, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self._check("DeleteItem", {"TableName": TableName, "Key": Key, **kwargs})
        with self._lock:
            old = self._delete(TableName, Key, kwargs, "DeleteItem")
        return _returned(kwargs, old)

    def update_item(self, *, TableName: str, Key: Item, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self._check("UpdateItem", {"TableName": TableName, "Key": Key, **kwargs})
        with self._lock:
            old, new = self._update(TableName, Key, kwargs, "UpdateItem")
        if kwargs.get("ReturnValues") in ("ALL_NEW", "UPDATED_NEW"):
            return {"Attributes": copy.deepcopy(new)}
        return _returned(kwargs, old)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self._check("Query", kwargs)
        table = kwargs["TableName"]
        names = kwargs.get("ExpressionAttributeNames", {})
        values = kwargs.get("ExpressionAttributeValues", {})
        try:
            key_condition = parse_condition(kwargs["KeyConditionExpression"])
            filters = (
                parse_condition(kwargs["FilterExpression"])
                if "FilterExpression" in kwargs
                else None
            )
            with self._lock:
                rows = self._rows(table)
                keys = sorted(k for k, item in rows.items() if key_condition(item, names, values))
                if not kwargs.get("ScanIndexForward", True):
                    keys.reverse()
                start = kwargs.get("ExclusiveStartKey")
                if start is not None:
                    after = self._key(start)
                    forward = kwargs.get("ScanIndexForward", True)
                    keys = [k for k in keys if (k > after if forward else k < after)]
                limit = min(kwargs.get("Limit", self.page_items), self.page_items)
                page, more = keys[:limit], len(keys) > limit
                found = [rows[k] for k in page]
                if filters is not None:
                    found = [i for i in found if filters(i, names, values)]
                result: dict[str, Any] = {
                    "Items": [
                        copy.deepcopy(projection(i, kwargs.get("ProjectionExpression"), names))
                        for i in found
                    ],
                    "Count": len(found),
                    "ScannedCount": len(page),
                }
                if more:
                    last = rows[page[-1]]
                    result["LastEvaluatedKey"] = {
                        self.hash_key: last[self.hash_key],
                        self.range_key: last[self.range_key],
                    }
                return result
        except ExpressionError as exc:
            raise client_error("Query", "ValidationException", str(exc)) from exc

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]:
        self._check("TransactWriteItems", kwargs)
        actions: list[dict[str, Any]] = kwargs["TransactItems"]
        if not 1 <= len(actions) <= MAX_TRANSACT_ITEMS:
            raise client_error("TransactWriteItems", "ValidationException", "1 to 100 actions")
        with self._lock:
            # Items are replaced, never changed in place: a shallow copy is a snapshot.
            staged = {table: dict(rows) for table, rows in self._items.items()}
            saved, self._items = self._items, staged
            watchers, self.watchers = self.watchers, []
            pending: list[Write] = []
            self.watchers.append(pending.append)
            reasons: list[dict[str, str]] = []
            seen: set[tuple[str, tuple[str, str]]] = set()
            try:
                for action in actions:
                    reasons.append(self._transact_one(action, seen))
            finally:
                self.watchers = watchers
            if any(r["Code"] != "None" for r in reasons):
                self._items = saved
                codes = ", ".join(r["Code"] for r in reasons)
                raise client_error(
                    "TransactWriteItems",
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific "
                    f"reasons [{codes}]",
                    CancellationReasons=reasons,
                )
            for write in pending:
                self._notify(write)
        return {}

    def batch_get_item(self, *, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self._check("BatchGetItem", {"RequestItems": RequestItems, **kwargs})
        responses: dict[str, list[Item]] = {}
        with self._lock:
            for table, request in RequestItems.items():
                rows = self._rows(table)
                found = [rows.get(self._key(k)) for k in request["Keys"]]
                responses[table] = [copy.deepcopy(i) for i in found if i is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def batch_write_item(self, *, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self._check("BatchWriteItem", {"RequestItems": RequestItems, **kwargs})
        with self._lock:
            for table, requests in RequestItems.items():
                for request in requests:
                    if "PutRequest" in request:
                        self._put(table, request["PutRequest"]["Item"], {}, "BatchWriteItem")
                    else:
                        self._delete(table, request["DeleteRequest"]["Key"], {}, "BatchWriteItem")
        return {"UnprocessedItems": {}}

    # -- internals -------------------------------------------------------------------------

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        if self.fault is not None:
            error = self.fault(operation, params)
            if error is not None:
                raise error

    def _rows(self, table: str) -> dict[tuple[str, str], Item]:
        return self._items.setdefault(table, {})

    def _key(self, item: Item) -> tuple[str, str]:
        try:
            return (item[self.hash_key]["S"], item[self.range_key]["S"])
        except KeyError as exc:
            raise client_error("Key", "ValidationException", "missing key attribute") from exc

    def _condition(self, kwargs: dict[str, Any], item: Item | None, operation: str) -> bool:
        text = kwargs.get("ConditionExpression")
        if not text:
            return True
        try:
            condition = parse_condition(text)
            return condition(
                item or {},
                kwargs.get("ExpressionAttributeNames", {}),
                kwargs.get("ExpressionAttributeValues", {}),
            )
        except ExpressionError as exc:
            raise client_error(operation, "ValidationException", str(exc)) from exc

    def _refuse(self, operation: str) -> ClientError:
        return client_error(
            operation, "ConditionalCheckFailedException", "The conditional request failed"
        )

    def _put(self, table: str, item: Item, kwargs: dict[str, Any], operation: str) -> Item | None:
        key = self._key(item)
        if item_size(item) > MAX_ITEM_BYTES:
            raise client_error(
                operation, "ValidationException", "Item size has exceeded the maximum allowed size"
            )
        rows = self._rows(table)
        old = rows.get(key)
        if not self._condition(kwargs, old, operation):
            raise self._refuse(operation)
        rows[key] = copy.deepcopy(item)
        self._notify(Write(operation, key, old, rows[key]))
        return old

    def _delete(
        self, table: str, key_item: Item, kwargs: dict[str, Any], operation: str
    ) -> Item | None:
        key = self._key(key_item)
        rows = self._rows(table)
        old = rows.get(key)
        if not self._condition(kwargs, old, operation):
            raise self._refuse(operation)
        if old is not None:
            del rows[key]
            self._notify(Write(operation, key, old, None))
        return old

    def _update(
        self, table: str, key_item: Item, kwargs: dict[str, Any], operation: str
    ) -> tuple[Item | None, Item]:
        key = self._key(key_item)
        rows = self._rows(table)
        old = rows.get(key)
        if not self._condition(kwargs, old, operation):
            raise self._refuse(operation)
        new = copy.deepcopy(old) if old is not None else copy.deepcopy(key_item)
        try:
            for action in parse_update(kwargs.get("UpdateExpression", "")):
                action(
                    new,
                    kwargs.get("ExpressionAttributeNames", {}),
                    kwargs.get("ExpressionAttributeValues", {}),
                )
        except ExpressionError as exc:
            raise client_error(operation, "ValidationException", str(exc)) from exc
        if item_size(new) > MAX_ITEM_BYTES:
            raise client_error(
                operation, "ValidationException", "Item size has exceeded the maximum allowed size"
            )
        rows[key] = new
        self._notify(Write(operation, key, old, new))
        return old, new

    def _transact_one(
        self, action: dict[str, Any], seen: set[tuple[str, tuple[str, str]]]
    ) -> dict[str, str]:
        ((kind, request),) = action.items()
        table = request["TableName"]
        key = self._key(request.get("Item") or request["Key"])
        if (table, key) in seen:
            raise client_error(
                "TransactWriteItems",
                "ValidationException",
                "Transaction request cannot include multiple operations on one item",
            )
        seen.add((table, key))
        try:
            if kind == "ConditionCheck":
                if not self._condition(request, self._rows(table).get(key), "TransactWriteItems"):
                    raise self._refuse("TransactWriteItems")
            elif kind == "Put":
                self._put(table, request["Item"], request, "TransactWriteItems")
            elif kind == "Delete":
                self._delete(table, request["Key"], request, "TransactWriteItems")
            elif kind == "Update":
                self._update(table, request["Key"], request, "TransactWriteItems")
            else:
                raise client_error(
                    "TransactWriteItems", "ValidationException", f"unknown action {kind}"
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
        return {"Code": "None"}

    def _notify(self, write: Write) -> None:
        for watcher in self.watchers:
            watcher(write)


def _returned(kwargs: dict[str, Any], old: Item | None) -> dict[str, Any]:
    if kwargs.get("ReturnValues") == "ALL_OLD" and old is not None:
        return {"Attributes": copy.deepcopy(old)}
    return {}
