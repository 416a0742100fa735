"""Bulk synthetic load: BatchWriteItem with unprocessed-item retry, then status moves."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from writer import items
from writer.aws_errors import translate
from writer.errors import AwsError
from writer.models import ALLOWED_TRANSITIONS, Order, OrderStatus, User
from writer.repository import OrderRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_LIMIT = 25  # BatchWriteItem's per-request maximum
Progress = Callable[[int, int], None]


def write_items(
    client: DynamoDBClient,
    table: str,
    all_items: Sequence[items.Item],
    sleep: Callable[[float], None] = time.sleep,
    max_rounds: int = 10,
    progress: Progress | None = None,
) -> None:
    """Write items 25 at a time; DynamoDB may return some unprocessed, which we resend."""
    done = 0
    for start in range(0, len(all_items), BATCH_LIMIT):
        chunk = all_items[start : start + BATCH_LIMIT]
        pending = [{"PutRequest": {"Item": item}} for item in chunk]
        for round_no in range(max_rounds):
            with translate(table):
                response = client.batch_write_item(RequestItems={table: pending})  # type: ignore[dict-item]
            pending = list(response.get("UnprocessedItems", {}).get(table, []))  # type: ignore[arg-type]
            if not pending:
                break
            sleep(min(2.0, 0.05 * 2**round_no) * random.random())
        else:
            raise AwsError(f"{len(pending)} items still unprocessed after {max_rounds} rounds")
        done += len(chunk)
        if progress:
            progress(done, len(all_items))


@dataclass(frozen=True)
class LoadResult:
    users: int
    orders: int
    updates: int


def load(
    repo: OrderRepository,
    client: DynamoDBClient,
    users: int,
    orders_per_user: int,
    updates: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
) -> LoadResult:
    """Synthetic users `LOADU<n>` with orders `LOADO<n>-<m>`, then `updates` legal moves."""
    rng = random.Random(seed)
    now = "2024-01-01T00:00:00.000Z"
    batch: list[items.Item] = []
    orders: list[Order] = []
    for u in range(users):
        uid = f"LOADU{u:06d}"
        batch.append(
            items.user_item(User(uid, f"Load user {u}", f"{uid.lower()}@example.com", now))
        )
        for o in range(orders_per_user):
            order = Order(
                uid,
                f"LOADO{u:06d}-{o:04d}",
                Decimal(rng.randint(100, 99999)) / 100,
                OrderStatus.PENDING,
                now,
                now,
            )
            orders.append(order)
            batch.append(items.order_item(order))
    write_items(client, repo.table, batch, progress=progress)
    status = {o.order_id: OrderStatus.PENDING for o in orders}
    owners = {o.order_id: o.user_id for o in orders}
    movable = [o.order_id for o in orders]
    done = 0
    while done < updates and movable:
        oid = rng.choice(movable)
        nexts = sorted(ALLOWED_TRANSITIONS[status[oid]] - {OrderStatus.CANCELLED})
        if not nexts:
            movable.remove(oid)
            continue
        repo.set_status(owners[oid], oid, nexts[0])
        status[oid] = nexts[0]
        done += 1
        if progress:
            progress(done, updates)
    return LoadResult(users, len(orders), done)
