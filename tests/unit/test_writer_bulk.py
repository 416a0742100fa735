"""`writer.bulk`: 25-item batches, resending UnprocessedItems, and a load whose memory
does not depend on its size (fake clients, no network)."""

from __future__ import annotations

import gc
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.dynamodb import CountingBatchWriteClient, FakeBatchWriteClient, UnreachableClient
from writer.bulk import LoadResult, load, write_items
from writer.errors import AwsError
from writer.repository import OrderRepository


def make_items(count: int) -> list[dict[str, Any]]:
    return [{"PK": {"S": f"USER#U{n}"}, "SK": {"S": "PROFILE"}} for n in range(count)]


def keys(requests: list[dict[str, Any]]) -> list[str]:
    return [r["PutRequest"]["Item"]["PK"]["S"] for r in requests]


def test_items_are_sent_25_at_a_time() -> None:
    client = FakeBatchWriteClient()
    sleeps: list[float] = []
    write_items(client, "Users", make_items(60), sleep=sleeps.append)
    assert [len(r) for r in client.requests] == [25, 25, 10]
    assert client.written == make_items(60)
    assert sleeps == []


def test_unprocessed_items_are_resent_after_a_backoff() -> None:
    client = FakeBatchWriteClient(unprocessed_rounds=[3])
    sleeps: list[float] = []
    write_items(client, "Users", make_items(10), sleep=sleeps.append)
    first, second = client.requests
    assert keys(second) == keys(first)[-3:]  # only what DynamoDB left, not the whole batch
    assert client.written == make_items(10)  # everything, exactly once
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.05


def test_backoff_grows_between_rounds() -> None:
    client = FakeBatchWriteClient(unprocessed_rounds=[5, 4, 3, 2])
    sleeps: list[float] = []
    write_items(client, "Users", make_items(5), sleep=sleeps.append)
    assert len(client.requests) == 5
    assert sorted(client.written, key=str) == sorted(make_items(5), key=str)
    caps = [0.05, 0.1, 0.2, 0.4]  # full jitter under an exponential cap
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


def test_gives_up_after_max_rounds() -> None:
    client = FakeBatchWriteClient(unprocessed_rounds=[2] * 10)
    with pytest.raises(AwsError, match="2 items still unprocessed after 3 rounds"):
        write_items(client, "Users", make_items(2), sleep=lambda _: None, max_rounds=3)
    assert len(client.requests) == 3
    assert client.written == []


def test_progress_reports_each_finished_batch() -> None:
    seen: list[tuple[int, int]] = []
    write_items(
        FakeBatchWriteClient(),
        "Users",
        make_items(60),
        sleep=lambda _: None,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(25, 60), (50, 60), (60, 60)]


# -- `writer load`: memory does not grow with the size of the load ---------------------


def load_peak(users: int, orders_per_user: int) -> tuple[int, CountingBatchWriteClient]:
    """Peak traced memory of a `load` with no updates against a counting fake client."""
    client = CountingBatchWriteClient()
    repo = OrderRepository(UnreachableClient(), "Users")
    gc.collect()
    tracemalloc.start()
    try:
        result = load(repo, client, users, orders_per_user)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == LoadResult(users, users * orders_per_user, 0)
    return peak, client


def test_load_memory_does_not_grow_with_the_number_of_users() -> None:
    """Ten times the users, the same peak. Before, every item was built first: 30,000
    items peaked at 57 MiB here (the review measured 316 MB for 120,000)."""
    small, _ = load_peak(1_000, 2)
    large, client = load_peak(10_000, 2)
    assert client.items == 30_000
    assert client.requests == 30_000 // 25
    assert large < 1024 * 1024  # about 100 KiB: a few requests' worth, never the load
    assert large < 2 * small + 64 * 1024


def test_load_items_are_written_in_order_and_reproducible() -> None:
    first, second = FakeBatchWriteClient(), FakeBatchWriteClient()
    repo = OrderRepository(UnreachableClient(), "Users")
    load(repo, first, 3, 2, seed=7)
    load(repo, second, 3, 2, seed=7)
    assert first.written == second.written
    keys = [(i["PK"]["S"], i["SK"]["S"]) for i in first.written]
    assert keys[:3] == [
        ("USER#LOADU000000", "PROFILE"),
        ("USER#LOADU000000", "ORDER#LOADO000000-0000"),
        ("USER#LOADU000000", "ORDER#LOADO000000-0001"),
    ]
    assert len(keys) == 9
    amounts = [Decimal(i["Amount"]["N"]) for i in first.written if "Amount" in i]
    assert all(Decimal("1.00") <= a <= Decimal("999.99") for a in amounts)


def test_progress_counts_against_the_whole_load_without_a_list() -> None:
    seen: list[tuple[int, int]] = []
    write_items(
        FakeBatchWriteClient(),
        "Users",
        iter(make_items(30)),
        sleep=lambda _: None,
        progress=lambda done, total: seen.append((done, total)),
        total=30,
    )
    assert seen == [(25, 30), (30, 30)]
