"""The order domain: statuses, allowed transitions, users and orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    """The statuses the writer accepts; the worker also tolerates others."""

    PENDING = "Pending"
    PROCESSING = "Processing"
    SHIPPED = "Shipped"
    DELIVERED = "Delivered"
    CANCELLED = "Cancelled"


ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PROCESSING, OrderStatus.CANCELLED}),
    OrderStatus.PROCESSING: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


def allowed_sources(target: OrderStatus) -> frozenset[OrderStatus]:
    """The statuses an order may be in for a move to `target` to be legal."""
    return frozenset(src for src, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def is_allowed(old: OrderStatus, new: OrderStatus) -> bool:
    """Whether `old` may move to `new` (the writer's rule; the worker sends any change)."""
    return new in ALLOWED_TRANSITIONS[old]


@dataclass(frozen=True)
class User:
    """A user's profile as the writer stores it (the PROFILE item)."""

    user_id: str
    name: str
    email: str
    created_at: str


@dataclass(frozen=True)
class Order:
    """An order as stored; `status` stays a string when another client wrote an unknown one."""

    user_id: str
    order_id: str
    amount: Decimal
    status: OrderStatus | str
    created_at: str | None
    updated_at: str | None
