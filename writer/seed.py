"""The seed document's users and orders."""

from __future__ import annotations

from decimal import Decimal

from writer.errors import AlreadyExistsError
from writer.models import OrderStatus
from writer.repository import OrderRepository

SEED_USERS = (
    ("USR001", "Alice", "alice@email.com"),
    ("USR002", "Bob", "bob@email.com"),
)
SEED_ORDERS = (
    ("USR001", "ORD1001", Decimal("50"), OrderStatus.SHIPPED),
    ("USR001", "ORD1002", Decimal("30"), OrderStatus.PROCESSING),
    ("USR002", "ORD1003", Decimal("100"), OrderStatus.DELIVERED),
)


def seed(repo: OrderRepository) -> tuple[int, int]:
    """Write the seed data; orders that exist already are left as they are.

    Returns (users written, orders created), so a second run reports (2, 0).
    """
    for user_id, name, email in SEED_USERS:
        repo.put_user(user_id, name, email)
    created = 0
    for user_id, order_id, amount, status in SEED_ORDERS:
        try:
            repo.put_order(user_id, order_id, amount, status)
            created += 1
        except AlreadyExistsError:
            continue
    return len(SEED_USERS), created
