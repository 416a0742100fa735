"""The worker's state table: one table for checkpoints, the lease, the DLQ and dedup.

Items are keyed `pk`/`sk` under the app name, so several apps can share one table:
`APP#<app>` / `CHECKPOINT#<shard>`, `APP#<app>` / `LEASE`, `APP#<app>#DLQ` / `<entry>`,
`APP#<app>#DEDUP#<id>` / `ID`, `APP#<app>#SINK#<orders table>` / `<sink>` (disabled, breaker state).
Dedup items expire through the `expires_at` TTL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


TTL_ATTRIBUTE = "expires_at"


def app_pk(app: str) -> str:
    """`APP#<app>`: the app's own items (lease, checkpoints), and its other partitions' prefix."""
    return f"APP#{app}"


def ensure_state_table(client: DynamoDBClient, name: str) -> bool:
    """Create the state table (on-demand, TTL on) if absent; True if it was created.

    It is described first, so a start against an existing table needs no CreateTable
    permission (the usual case: the table is made once, by the first start or by IaC).
    """
    try:
        client.describe_table(TableName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    else:
        return False
    try:
        client.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        return False
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return True
