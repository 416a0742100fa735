"""Shard checkpoints in the state table, fenced by the app lease.

A checkpoint is the highest sequence number below which every record is delivered
or dead-lettered (DESIGN.md section 7). Each write is a transaction with a check on
the lease item, so a replica that lost its lease (paused, partitioned) can never
move a checkpoint the new owner depends on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from worker.errors import LeaseLostError
from worker.statetable import app_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


CHECKPOINT_PREFIX = "CHECKPOINT#"


@dataclass(frozen=True)
class Checkpoint:
    shard_id: str
    sequence_number: str | None  # None: nothing processed yet (a finished empty shard)
    finished: bool
    parent_id: str | None = None
    updated_at_ms: int = 0


class CheckpointStore(Protocol):
    def load_all(self) -> dict[str, Checkpoint]: ...

    def save(self, checkpoint: Checkpoint) -> None: ...


class Fence(Protocol):
    def fence(self) -> dict[str, Any]: ...


class DynamoCheckpointStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        app: str,
        fence: Fence | None,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._table = table
        self._pk = app_pk(app)
        self._fence = fence
        self._clock = clock

    def load_all(self) -> dict[str, Checkpoint]:
        checkpoints: dict[str, Checkpoint] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": self._pk},
                ":prefix": {"S": CHECKPOINT_PREFIX},
            },
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            for item in page.get("Items", []):
                checkpoint = _from_item(item)
                checkpoints[checkpoint.shard_id] = checkpoint
            if "LastEvaluatedKey" not in page:
                return checkpoints
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def save(self, checkpoint: Checkpoint) -> None:
        item: dict[str, Any] = {
            "pk": {"S": self._pk},
            "sk": {"S": CHECKPOINT_PREFIX + checkpoint.shard_id},
            "shard_id": {"S": checkpoint.shard_id},
            "finished": {"BOOL": checkpoint.finished},
            "updated_at_ms": {"N": str(int(self._clock() * 1000))},
        }
        if checkpoint.sequence_number is not None:
            item["sequence_number"] = {"S": checkpoint.sequence_number}
        if checkpoint.parent_id:
            item["parent_id"] = {"S": checkpoint.parent_id}
        if self._fence is None:
            self._client.put_item(TableName=self._table, Item=item)
            return
        fence: Any = self._fence.fence()
        try:
            self._client.transact_write_items(
                TransactItems=[
                    fence,
                    {"Put": {"TableName": self._table, "Item": item}},
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise LeaseLostError("checkpoint refused: the app lease is not ours") from exc
            raise


def _from_item(item: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        shard_id=item["shard_id"]["S"],
        sequence_number=item.get("sequence_number", {}).get("S"),
        finished=bool(item.get("finished", {}).get("BOOL", False)),
        parent_id=item.get("parent_id", {}).get("S"),
        updated_at_ms=int(item.get("updated_at_ms", {}).get("N", "0")),
    )
