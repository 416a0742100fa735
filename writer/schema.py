"""The single-table key scheme: pure builders for keys and the table definition."""

from __future__ import annotations

from typing import Any

DEFAULT_TABLE = "Users"
GSI_NAME = "UserID-index"
PROFILE_SK = "PROFILE"
USER_PREFIX = "USER#"
ORDER_PREFIX = "ORDER#"

KEY_SCHEMA: list[dict[str, str]] = [
    {"AttributeName": "PK", "KeyType": "HASH"},
    {"AttributeName": "SK", "KeyType": "RANGE"},
]


def user_pk(user_id: str) -> str:
    """A user's partition key, `USER#<id>`: the profile and the orders live under it."""
    return f"{USER_PREFIX}{user_id}"


def order_sk(order_id: str) -> str:
    """An order's sort key, `ORDER#<id>`."""
    return f"{ORDER_PREFIX}{order_id}"


def is_order_sk(sk: str) -> bool:
    """Whether a sort key names an order (not the PROFILE)."""
    return sk.startswith(ORDER_PREFIX)


def user_id_from_pk(pk: str) -> str | None:
    """The user id of a `USER#` partition key; None for any other."""
    return pk[len(USER_PREFIX) :] if pk.startswith(USER_PREFIX) else None


def order_id_from_sk(sk: str) -> str | None:
    """The order id of an `ORDER#` sort key; None for any other (the worker skips those)."""
    return sk[len(ORDER_PREFIX) :] if is_order_sk(sk) else None


def table_definition(name: str, provisioned: tuple[int, int] | None = None) -> dict[str, Any]:
    """CreateTable arguments: PK/SK, the UserID GSI (projection ALL), a new-and-old stream.

    `provisioned` is (read, write) capacity for the table and the GSI alike; None
    means on-demand.
    """
    gsi: dict[str, Any] = {
        "IndexName": GSI_NAME,
        "KeySchema": [{"AttributeName": "UserID", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
    }
    definition: dict[str, Any] = {
        "TableName": name,
        "KeySchema": KEY_SCHEMA,
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "UserID", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [gsi],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    if provisioned is None:
        definition["BillingMode"] = "PAY_PER_REQUEST"
    else:
        throughput = {"ReadCapacityUnits": provisioned[0], "WriteCapacityUnits": provisioned[1]}
        definition["BillingMode"] = "PROVISIONED"
        definition["ProvisionedThroughput"] = throughput
        gsi["ProvisionedThroughput"] = dict(throughput)
    return definition
