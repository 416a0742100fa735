"""The DynamoDB calls the two tools make, one Protocol per call, typed as boto3's client
takes them (keyword-only, boto3's names, the parameters either tool passes).

Each store's seam composes the calls it makes (`class LeaseClient(PutItem, UpdateItem,
..., Protocol)`), so the boto3 client and a test's stand-in both fit, and a signature is
written once. In `writer` because the worker already builds on the writer's plumbing
(`writer.logs`, `writer.awsenv`), and the writer never imports the worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.literals import ReturnValueType

# ruff: noqa: N803 - the parameters are boto3's names


class DescribeTable(Protocol):
    """DescribeTable: a table's shape and its latest stream."""

    def describe_table(self, *, TableName: str) -> Mapping[str, Any]:
        """The raw answer."""
        ...


class PutItem(Protocol):
    """PutItem, conditional or not."""

    def put_item(
        self,
        *,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str = ...,
        ExpressionAttributeNames: Mapping[str, str] = ...,
        ExpressionAttributeValues: dict[str, Any] = ...,
    ) -> Mapping[str, Any]:
        """Write one item."""
        ...


class GetItem(Protocol):
    """GetItem, consistent or not."""

    def get_item(
        self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = ...
    ) -> Mapping[str, Any]:
        """Read one item."""
        ...


class UpdateItem(Protocol):
    """UpdateItem, conditional or not."""

    def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ConditionExpression: str = ...,
        ExpressionAttributeNames: Mapping[str, str] = ...,
        ExpressionAttributeValues: dict[str, Any] = ...,
        ReturnValues: ReturnValueType = ...,
    ) -> Mapping[str, Any]:
        """Change one item's attributes."""
        ...


class DeleteItem(Protocol):
    """DeleteItem, conditional or not."""

    def delete_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        ConditionExpression: str = ...,
        ExpressionAttributeNames: Mapping[str, str] = ...,
        ExpressionAttributeValues: dict[str, Any] = ...,
    ) -> Mapping[str, Any]:
        """Remove one item."""
        ...


class Query(Protocol):
    """Query, one page at a time."""

    def query(
        self,
        *,
        TableName: str,
        KeyConditionExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ConsistentRead: bool = ...,
        ExclusiveStartKey: dict[str, Any] = ...,
    ) -> Mapping[str, Any]:
        """One page of a partition's items."""
        ...


class TransactWriteItems(Protocol):
    """TransactWriteItems: writes and checks, all or nothing."""

    def transact_write_items(self, *, TransactItems: Sequence[Any]) -> Mapping[str, Any]:
        """Apply them together, or none."""
        ...


class BatchGetItem(Protocol):
    """BatchGetItem: up to 100 keys a call."""

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> Mapping[str, Any]:
        """The items found, and the keys left unprocessed."""
        ...


class BatchWriteItem(Protocol):
    """BatchWriteItem: up to 25 puts or deletes a call."""

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> Mapping[str, Any]:
        """The writes left unprocessed, if any."""
        ...
