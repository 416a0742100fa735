"""Bulk synthetic load: BatchWriteItem with unprocessed-item retry, then status moves.

Items are generated as they are written, 25 at a time, and an order is found again by
its number (user, order) rather than kept: memory stays the same whatever `--users`
and `--orders-per-user` are (only `--updates` moves are remembered, at most one entry
each).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from writer import items
from writer.aws_errors import translate
from writer.dynamodb_calls import BatchWriteItem
from writer.errors import AwsError
from writer.models import ALLOWED_TRANSITIONS, Order, OrderStatus, User
from writer.repository import OrderRepository

BATCH_LIMIT = 25  # BatchWriteItem's per-request maximum
Progress = Callable[[int, int], None]


class BatchWriter(BatchWriteItem, Protocol):
    """The one call bulk loading makes (up to 25 puts; some may come back
    unprocessed): the boto3 client, or a fake that records or counts what it is sent."""


def write_items(
    client: BatchWriter,
    table: str,
    all_items: Iterable[items.Item],
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_rounds: int = 10,
    progress: Progress | None = None,
    total: int | None = None,
) -> None:
    """Write items 25 at a time; DynamoDB may return some unprocessed, which we resend.

    `all_items` is consumed lazily, one request's worth at a time. `total` is only for
    `progress` (the length of `all_items` when it has one).
    """
    if total is None and isinstance(all_items, Sized):
        total = len(all_items)
    done = 0
    source = iter(all_items)
    while chunk := list(itertools.islice(source, BATCH_LIMIT)):
        _write_chunk(client, table, chunk, sleep, max_rounds)
        done += len(chunk)
        if progress:
            progress(done, total if total is not None else done)


def _write_chunk(
    client: BatchWriter,
    table: str,
    chunk: list[items.Item],
    sleep: Callable[[float], None],
    max_rounds: int,
) -> None:
    pending = [{"PutRequest": {"Item": item}} for item in chunk]
    for round_no in range(max_rounds):
        with translate(table):
            response = client.batch_write_item(RequestItems={table: pending})
        pending = list(response.get("UnprocessedItems", {}).get(table, []))
        if not pending:
            return
        sleep(min(2.0, 0.05 * 2**round_no) * random.random())
    raise AwsError(f"{len(pending)} items still unprocessed after {max_rounds} rounds")


@dataclass(frozen=True)
class LoadResult:
    """What `writer load` wrote, printed as its JSON result."""

    users: int
    orders: int
    updates: int


LOAD_TIME = "2024-01-01T00:00:00.000Z"


def user_id(u: int) -> str:
    """Load users are numbered `LOADU<n>`: easy to tell from real ones and to clean up."""
    return f"LOADU{u:06d}"


def order_id(u: int, o: int) -> str:
    """Load orders are `LOADO<user>-<n>`: the user's number in it keeps them apart."""
    return f"LOADO{u:06d}-{o:04d}"


def generate(users: int, orders_per_user: int, rng: random.Random) -> Iterator[items.Item]:
    """Each user's profile, then its orders, one item at a time."""
    for u in range(users):
        uid = user_id(u)
        yield items.user_item(User(uid, f"Load user {u}", f"{uid.lower()}@example.com", LOAD_TIME))
        for o in range(orders_per_user):
            amount = Decimal(rng.randint(100, 99999)) / 100
            status = OrderStatus.PENDING
            yield items.order_item(Order(uid, order_id(u, o), amount, status, LOAD_TIME, LOAD_TIME))


def load(
    repo: OrderRepository,
    client: BatchWriter,
    users: int,
    orders_per_user: int,
    *,
    updates: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
) -> LoadResult:
    """Synthetic users `LOADU<n>` with orders `LOADO<n>-<m>`, then `updates` legal moves."""
    rng = random.Random(seed)
    total = users * (1 + orders_per_user)
    write_items(
        client, repo.table, generate(users, orders_per_user, rng), progress=progress, total=total
    )
    done = move_some(repo, rng, users, orders_per_user, updates, progress=progress)
    return LoadResult(users, users * orders_per_user, done)


def move_some(
    repo: OrderRepository,
    rng: random.Random,
    users: int,
    orders_per_user: int,
    updates: int,
    *,
    progress: Progress | None = None,
) -> int:
    """`updates` one-step moves (never to Cancelled) on orders drawn at random.

    Only moved orders are remembered. A drawn order that is already Delivered passes to
    the next one that is not, so this ends even when nearly every order is Delivered;
    it stops early when all are (three moves an order at most).
    """
    count = users * orders_per_user
    moved: dict[int, OrderStatus] = {}
    delivered = 0
    done = 0
    while done < updates and delivered < count:
        n = rng.randrange(count)
        while moved.get(n) is OrderStatus.DELIVERED:
            n = (n + 1) % count
        status = moved.get(n, OrderStatus.PENDING)
        target = sorted(ALLOWED_TRANSITIONS[status] - {OrderStatus.CANCELLED})[0]
        u, o = divmod(n, orders_per_user)
        repo.set_status(user_id(u), order_id(u, o), target)
        moved[n] = target
        delivered += target is OrderStatus.DELIVERED
        done += 1
        if progress:
            progress(done, updates)
    return done
