"""`writer.bulk.write_items`: 25-item batches and resending UnprocessedItems (fake client)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.dynamodb import FakeBatchWriteClient
from writer.bulk import write_items
from writer.errors import AwsError


def make_items(count: int) -> list[dict[str, Any]]:
    return [{"PK": {"S": f"USER#U{n}"}, "SK": {"S": "PROFILE"}} for n in range(count)]


def keys(requests: list[dict[str, Any]]) -> list[str]:
    return [r["PutRequest"]["Item"]["PK"]["S"] for r in requests]


def test_items_are_sent_25_at_a_time() -> None:
    client = FakeBatchWriteClient()
    sleeps: list[float] = []
    write_items(client, "Users", make_items(60), sleep=sleeps.append)  # type: ignore[arg-type]
    assert [len(r) for r in client.requests] == [25, 25, 10]
    assert client.written == make_items(60)
    assert sleeps == []


def test_unprocessed_items_are_resent_after_a_backoff() -> None:
    client = FakeBatchWriteClient(unprocessed_rounds=[3])
    sleeps: list[float] = []
    write_items(client, "Users", make_items(10), sleep=sleeps.append)  # type: ignore[arg-type]
    first, second = client.requests
    assert keys(second) == keys(first)[-3:]  # only what DynamoDB left, not the whole batch
    assert client.written == make_items(10)  # everything, exactly once
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.05


def test_backoff_grows_between_rounds() -> None:
    client = FakeBatchWriteClient(unprocessed_rounds=[5, 4, 3, 2])
    sleeps: list[float] = []
    write_items(client, "Users", make_items(5), sleep=sleeps.append)  # type: ignore[arg-type]
    assert len(client.requests) == 5
    assert sorted(client.written, key=str) == sorted(make_items(5), key=str)
    caps = [0.05, 0.1, 0.2, 0.4]  # full jitter under an exponential cap
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


def test_gives_up_after_max_rounds() -> None:
    client = FakeBatchWriteClient(unprocessed_rounds=[2] * 10)
    with pytest.raises(AwsError, match="2 items still unprocessed after 3 rounds"):
        write_items(client, "Users", make_items(2), sleep=lambda _: None, max_rounds=3)  # type: ignore[arg-type]
    assert len(client.requests) == 3
    assert client.written == []


def test_progress_reports_each_finished_batch() -> None:
    seen: list[tuple[int, int]] = []
    write_items(
        FakeBatchWriteClient(),  # type: ignore[arg-type]
        "Users",
        make_items(60),
        sleep=lambda _: None,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(25, 60), (50, 60), (60, 60)]
