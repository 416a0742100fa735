"""The writer's table against a real moto_server over HTTP: create, seed, load, errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import MotoServer
from tests.dynamodb_helpers import client_for, scan_items
from writer import OrderRepository, OrderStatus, aws, bulk
from writer.errors import ConfigurationError
from writer.seed import seed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The seed document's example: three orders, two of them USR001's.
SEED_DOCUMENT_ORDERS: list[dict[str, Any]] = [
    {
        "PK": {"S": "USER#USR001"},
        "SK": {"S": "ORDER#ORD1001"},
        "UserID": {"S": "USR001"},
        "Amount": {"N": "50"},
        "Status": {"S": "Shipped"},
    },
    {
        "PK": {"S": "USER#USR001"},
        "SK": {"S": "ORDER#ORD1002"},
        "UserID": {"S": "USR001"},
        "Amount": {"N": "30"},
        "Status": {"S": "Processing"},
    },
    {
        "PK": {"S": "USER#USR002"},
        "SK": {"S": "ORDER#ORD1003"},
        "UserID": {"S": "USR002"},
        "Amount": {"N": "100"},
        "Status": {"S": "Delivered"},
    },
]
STATUS_STEPS = {"Pending": 0, "Processing": 1, "Shipped": 2, "Delivered": 3}


@pytest.fixture
def client(moto_server: MotoServer) -> DynamoDBClient:
    return client_for(moto_server.url)


@pytest.fixture
def repo(moto_server: MotoServer) -> OrderRepository:
    """A repository on its own client, with the writer's retry configuration."""
    return OrderRepository(client_for(moto_server.url, aws.RETRY_CONFIG))


@pytest.fixture
def scan_table(client: DynamoDBClient) -> Callable[[], list[dict[str, Any]]]:
    return lambda: scan_items(client, "Users")


def test_seed_document_example(client: DynamoDBClient, repo: OrderRepository) -> None:
    assert repo.create_table() is True
    for item in SEED_DOCUMENT_ORDERS:
        client.put_item(TableName="Users", Item=item)

    response = client.query(
        TableName="Users",
        IndexName="UserID-index",
        KeyConditionExpression="UserID = :u",
        ExpressionAttributeValues={":u": {"S": "USR001"}},
    )

    assert sorted(item["SK"]["S"] for item in response["Items"]) == [
        "ORDER#ORD1001",
        "ORDER#ORD1002",
    ]
    orders = sorted(repo.orders("USR001"), key=lambda o: o.order_id)
    assert [(o.order_id, o.amount, o.status) for o in orders] == [
        ("ORD1001", Decimal("50"), OrderStatus.SHIPPED),
        ("ORD1002", Decimal("30"), OrderStatus.PROCESSING),
    ]


def test_create_table_builds_the_designed_table(
    client: DynamoDBClient, repo: OrderRepository
) -> None:
    assert repo.create_table() is True
    table = client.describe_table(TableName="Users")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        ("PK", "HASH"),
        ("SK", "RANGE"),
    ]
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "UserID-index"
    assert gsi["Projection"]["ProjectionType"] == "ALL"
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_create_table_is_idempotent(repo: OrderRepository, scan_table: Any) -> None:
    assert repo.create_table() is True
    repo.put_user("USR001", "Alice", "alice@email.com")
    assert repo.create_table() is False
    assert len(scan_table()) == 1  # the second run touched nothing


def test_provisioned_capacity_applies_to_table_and_index(
    client: DynamoDBClient, repo: OrderRepository
) -> None:
    repo.create_table(provisioned=(5, 5))
    table = client.describe_table(TableName="Users")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    for throughput in (
        table["ProvisionedThroughput"],
        table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"],
    ):
        assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (5, 5)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            },
            "not PK (HASH) + SK (RANGE)",
        ),
        (
            {
                "KeySchema": [
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                "StreamSpecification": {
                    "StreamEnabled": True,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            },
            "without the UserID-index index",
        ),
        (
            {
                "KeySchema": [
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
            },
            "without a NEW_AND_OLD_IMAGES stream",
        ),
    ],
)
def test_an_existing_table_of_another_shape_is_a_clear_error(
    client: DynamoDBClient, repo: OrderRepository, definition: dict[str, Any], message: str
) -> None:
    client.create_table(TableName="Users", BillingMode="PAY_PER_REQUEST", **definition)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        repo.create_table()
    assert info.value.exit_code == 2
    table = client.describe_table(TableName="Users")["Table"]  # left as it was
    assert table["KeySchema"] == definition["KeySchema"]
    assert table.get("GlobalSecondaryIndexes", []) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.put_user("USR001", "Alice", "alice@email.com"),
        lambda r: r.put_order("USR001", "ORD1", "5"),
        lambda r: r.set_status("USR001", "ORD1", OrderStatus.PROCESSING),
        lambda r: list(r.orders("USR001")),
    ],
)
def test_a_missing_table_is_a_clear_error(repo: OrderRepository, call: Any) -> None:
    with pytest.raises(ConfigurationError, match="table 'Users' does not exist") as info:
        call(repo)
    assert "writer create-table" in str(info.value)


def test_seed_is_idempotent_and_keeps_existing_orders(
    repo: OrderRepository, scan_table: Any
) -> None:
    repo.create_table()
    assert seed(repo) == (2, 3)
    repo.set_status("USR001", "ORD1002", OrderStatus.SHIPPED)

    assert seed(repo) == (2, 0)

    rows = [(i["PK"]["S"], i["SK"]["S"], i.get("Status", {}).get("S")) for i in scan_table()]
    assert rows == [
        ("USER#USR001", "ORDER#ORD1001", "Shipped"),
        ("USER#USR001", "ORDER#ORD1002", "Shipped"),  # not reset to the seed's Processing
        ("USER#USR001", "PROFILE", None),
        ("USER#USR002", "ORDER#ORD1003", "Delivered"),
        ("USER#USR002", "PROFILE", None),
    ]


def test_load_writes_users_times_orders_and_legal_updates(
    client: DynamoDBClient, repo: OrderRepository, scan_table: Any
) -> None:
    repo.create_table()
    result = bulk.load(repo, client, users=3, orders_per_user=30, updates=7, seed=42)

    assert result == bulk.LoadResult(users=3, orders=90, updates=7)
    table = scan_table()
    orders = [item for item in table if item["SK"]["S"].startswith("ORDER#")]
    assert len(table) - len(orders) == 3
    assert len(orders) == 90
    # each update is one legal step along Pending -> Processing -> Shipped -> Delivered
    assert sum(STATUS_STEPS[o["Status"]["S"]] for o in orders) == 7
    assert {o["PK"]["S"] for o in orders} == {f"USER#LOADU{u:06d}" for u in range(3)}
    assert len(list(repo.orders("LOADU000002"))) == 30
