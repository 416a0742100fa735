"""KCL's lease table, read: who holds each shard and where its checkpoint is.

KCL 3 keeps one item per shard in the table named after the application
(ORDERSTREAM_APP): `leaseKey` (the shard id), `leaseOwner` (the workerId, our
`host:pid:nonce`), `checkpoint` (a sequence number, or `TRIM_HORIZON`, `LATEST`,
`SHARD_END`) and `parentShardIds`. `worker status` shows it in fleet mode, and
`worker kcl run` reads it at start-up to say whose leases it is waiting for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SHARD_END = "SHARD_END"


@dataclass(frozen=True)
class KclLease:
    """One shard's item of KCL's lease table, as `worker status` and the launcher read it."""

    shard_id: str
    owner: str | None
    checkpoint: str | None  # None, a sentinel (TRIM_HORIZON, LATEST, SHARD_END) or a number
    parent_id: str | None

    @property
    def finished(self) -> bool:
        """KCL checkpointed SHARD_END: the shard was read to its end."""
        return self.checkpoint == SHARD_END

    @property
    def sequence_number(self) -> str | None:
        """The checkpoint when it is a record's sequence number, else None."""
        return self.checkpoint if self.checkpoint and self.checkpoint.isdigit() else None


def _lease(item: dict[str, Any]) -> KclLease | None:
    key = item.get("leaseKey", {}).get("S")
    if not key:
        return None
    parents = sorted(item.get("parentShardIds", {}).get("SS", []))
    return KclLease(
        shard_id=str(key),
        owner=item.get("leaseOwner", {}).get("S"),
        checkpoint=item.get("checkpoint", {}).get("S"),
        parent_id=parents[0] if parents else None,
    )


def read_leases(client: DynamoDBClient, app: str) -> list[KclLease] | None:
    """Every lease of `app`, by shard id; None when there is no such KCL table."""
    leases: list[KclLease] = []
    kwargs: dict[str, Any] = {"TableName": app, "ConsistentRead": True}
    while True:
        try:
            page = client.scan(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        leases += [lease for item in page.get("Items", []) if (lease := _lease(item))]
        if "LastEvaluatedKey" not in page:
            return sorted(leases, key=lambda lease: lease.shard_id)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
