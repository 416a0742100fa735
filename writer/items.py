"""Users and orders to and from DynamoDB items (low-level attribute values), pure."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from writer import schema
from writer.models import Order, OrderStatus, User

Item = dict[str, Any]


def user_item(user: User) -> Item:
    """A user's PROFILE item, in the user's partition beside the orders."""
    return {
        "PK": {"S": schema.user_pk(user.user_id)},
        "SK": {"S": schema.PROFILE_SK},
        "UserID": {"S": user.user_id},
        "Name": {"S": user.name},
        "Email": {"S": user.email},
        "CreatedAt": {"S": user.created_at},
    }


def order_item(order: Order) -> Item:
    """An order's item: the amount as an exact number, the timestamps when known."""
    item: Item = {
        "PK": {"S": schema.user_pk(order.user_id)},
        "SK": {"S": schema.order_sk(order.order_id)},
        "UserID": {"S": order.user_id},
        "Amount": {"N": str(order.amount)},
        "Status": {"S": str(order.status)},
    }
    if order.created_at is not None:
        item["CreatedAt"] = {"S": order.created_at}
    if order.updated_at is not None:
        item["UpdatedAt"] = {"S": order.updated_at}
    return item


def order_key(user_id: str, order_id: str) -> Item:
    """An order's key: the user's partition, `ORDER#<id>`."""
    return {"PK": {"S": schema.user_pk(user_id)}, "SK": {"S": schema.order_sk(order_id)}}


def user_key(user_id: str) -> Item:
    """A user's PROFILE key (put-order checks that it exists)."""
    return {"PK": {"S": schema.user_pk(user_id)}, "SK": {"S": schema.PROFILE_SK}}


def order_from_item(item: Mapping[str, Any]) -> Order:
    """Read an order item, tolerating what other clients may have written."""
    status_text = item.get("Status", {}).get("S", "")
    try:
        status: OrderStatus | str = OrderStatus(status_text)
    except ValueError:
        status = status_text
    return Order(
        user_id=item["UserID"]["S"] if "UserID" in item else "",
        order_id=schema.order_id_from_sk(item["SK"]["S"]) or "",
        amount=Decimal(item["Amount"]["N"]) if "Amount" in item else Decimal(0),
        status=status,
        created_at=item.get("CreatedAt", {}).get("S"),
        updated_at=item.get("UpdatedAt", {}).get("S"),
    )


def order_json(order: Order) -> dict[str, Any]:
    """The JSON shape `writer orders` prints; the amount stays an exact string."""
    return {
        "user_id": order.user_id,
        "order_id": order.order_id,
        "amount": str(order.amount),
        "status": str(order.status),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }
