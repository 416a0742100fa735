"""orderstream writer: users and orders in one DynamoDB table, validated."""

from writer.models import Order, OrderStatus, User
from writer.repository import OrderRepository

__all__ = ["Order", "OrderRepository", "OrderStatus", "User"]
