"""The single-table key scheme and the item mapping (pure, no network)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writer import items, schema
from writer.models import Order, OrderStatus, User

VALID_ID = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
ORDER = Order(
    "USR001", "ORD1001", Decimal("50.10"), OrderStatus.SHIPPED, "2024-01-01T00:00:00.000Z", None
)


def test_keys_of_the_seed_document() -> None:
    assert schema.user_pk("USR001") == "USER#USR001"
    assert schema.order_sk("ORD1001") == "ORDER#ORD1001"
    assert schema.PROFILE_SK == "PROFILE"
    assert items.order_key("USR001", "ORD1001") == {
        "PK": {"S": "USER#USR001"},
        "SK": {"S": "ORDER#ORD1001"},
    }
    assert items.user_key("USR001") == {"PK": {"S": "USER#USR001"}, "SK": {"S": "PROFILE"}}


@settings(max_examples=100, deadline=None)
@given(VALID_ID)
def test_keys_round_trip_for_any_valid_id(value: str) -> None:
    assert schema.user_id_from_pk(schema.user_pk(value)) == value
    assert schema.order_id_from_sk(schema.order_sk(value)) == value
    assert schema.is_order_sk(schema.order_sk(value))


@pytest.mark.parametrize("sk", ["PROFILE", "order#1", "ORDER", "X#ORDER#1"])
def test_other_sort_keys_are_not_orders(sk: str) -> None:
    assert not schema.is_order_sk(sk)
    assert schema.order_id_from_sk(sk) is None


def test_foreign_partition_keys_have_no_user() -> None:
    assert schema.user_id_from_pk("TENANT#1") is None


def test_on_demand_table_definition() -> None:
    definition = schema.table_definition("Users")
    assert definition["TableName"] == "Users"
    assert definition["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in definition
    (gsi,) = definition["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "UserID-index"
    assert gsi["KeySchema"] == [{"AttributeName": "UserID", "KeyType": "HASH"}]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
    assert "ProvisionedThroughput" not in gsi
    assert definition["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }


def test_provisioned_table_definition_covers_the_index_too() -> None:
    definition = schema.table_definition("Users", provisioned=(5, 7))
    expected = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7}
    assert definition["BillingMode"] == "PROVISIONED"
    assert definition["ProvisionedThroughput"] == expected
    assert definition["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] == expected


def test_user_item_shape() -> None:
    user = User("USR001", "Alice", "alice@email.com", "2024-01-01T00:00:00.000Z")
    assert items.user_item(user) == {
        "PK": {"S": "USER#USR001"},
        "SK": {"S": "PROFILE"},
        "UserID": {"S": "USR001"},
        "Name": {"S": "Alice"},
        "Email": {"S": "alice@email.com"},
        "CreatedAt": {"S": "2024-01-01T00:00:00.000Z"},
    }


def test_order_item_keeps_the_exact_amount_as_a_number() -> None:
    item = items.order_item(ORDER)
    assert item["Amount"] == {"N": "50.10"}
    assert item["Status"] == {"S": "Shipped"}
    assert item["UserID"] == {"S": "USR001"}
    assert "UpdatedAt" not in item  # absent, not null


def test_order_round_trips_through_an_item() -> None:
    back = items.order_from_item(items.order_item(ORDER))
    assert back == ORDER
    assert isinstance(back.amount, Decimal)
    assert back.status is OrderStatus.SHIPPED


def test_items_written_by_other_clients_are_read_as_they_are() -> None:
    order = items.order_from_item(
        {
            "PK": {"S": "USER#U1"},
            "SK": {"S": "ORDER#O1"},
            "UserID": {"S": "U1"},
            "Amount": {"N": "12.3456"},
            "Status": {"S": "Returned"},
        }
    )
    assert order.status == "Returned"
    assert not isinstance(order.status, OrderStatus)
    assert order.amount == Decimal("12.3456")
    assert order.created_at is None


def test_order_json_keeps_the_amount_a_string() -> None:
    assert items.order_json(ORDER) == {
        "user_id": "USR001",
        "order_id": "ORD1001",
        "amount": "50.10",
        "status": "Shipped",
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": None,
    }
