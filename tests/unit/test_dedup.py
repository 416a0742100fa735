"""The dedup store over a fake DynamoDB client: bulk reads and writes, TTL, unprocessed keys."""

from __future__ import annotations

import pytest

from tests.fakes.notify import FakeDedupClient
from worker.delivery.dedup import DedupStore

TABLE = "orderstream-state"
TTL_S = 3600


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(client: FakeDedupClient, clock: Clock, sleeps: list[float] | None = None) -> DedupStore:
    waits = sleeps if sleeps is not None else []
    return DedupStore(client, table=TABLE, app="app1", ttl_s=TTL_S, clock=clock, sleep=waits.append)


def test_remembered_ids_are_seen_and_others_are_not() -> None:
    client, clock = FakeDedupClient(), Clock()
    dedup = store(client, clock)
    dedup.remember(["a", "b"])
    assert dedup.seen(["a", "b", "c"]) == {"a", "b"}


def test_items_carry_the_ttl_and_are_keyed_under_the_app() -> None:
    client, clock = FakeDedupClient(), Clock(1000.0)
    store(client, clock).remember(["evt-1"])
    (item,) = client.items.values()
    assert item == {
        "pk": {"S": "APP#app1#DEDUP#evt-1"},
        "sk": {"S": "ID"},
        "expires_at": {"N": str(1000 + TTL_S)},
    }


def test_an_expired_id_is_not_seen_even_before_dynamodb_deletes_it() -> None:
    """DynamoDB's TTL deletes items lazily (up to days later): the store checks itself."""
    client, clock = FakeDedupClient(), Clock()
    dedup = store(client, clock)
    dedup.remember(["a"])
    clock.now += TTL_S - 1
    assert dedup.seen(["a"]) == {"a"}
    clock.now += 1
    assert dedup.seen(["a"]) == set()


def test_another_app_does_not_see_the_ids() -> None:
    client, clock = FakeDedupClient(), Clock()
    store(client, clock).remember(["a"])
    other = DedupStore(client, table=TABLE, app="app2", ttl_s=TTL_S, clock=clock)
    assert other.seen(["a"]) == set()


def test_reads_go_100_keys_to_a_call_and_writes_25() -> None:
    client, clock = FakeDedupClient(), Clock()
    dedup = store(client, clock)
    ids = [f"evt-{i}" for i in range(250)]
    dedup.remember(ids)
    assert client.write_calls == [25] * 10
    assert dedup.seen(ids) == set(ids)
    assert client.get_calls == [100, 100, 50]


def test_duplicate_ids_are_sent_once() -> None:
    client, clock = FakeDedupClient(), Clock()
    dedup = store(client, clock)
    dedup.remember(["a", "a", "b"])  # the fake rejects duplicate keys in one request
    assert client.write_calls == [2]
    assert dedup.seen(["a", "b", "a"]) == {"a", "b"}
    assert client.get_calls == [2]


def test_nothing_to_do_makes_no_call() -> None:
    client, clock = FakeDedupClient(), Clock()
    dedup = store(client, clock)
    dedup.remember([])
    assert dedup.seen([]) == set()
    assert (client.get_calls, client.write_calls) == ([], [])


def test_unprocessed_writes_are_sent_again_after_a_pause() -> None:
    client, clock, sleeps = FakeDedupClient(unprocessed=[10, 3]), Clock(), list[float]()
    dedup = store(client, clock, sleeps)
    ids = [f"evt-{i}" for i in range(25)]
    dedup.remember(ids)
    assert client.write_calls == [25, 10, 3]
    assert len(sleeps) == 2
    assert all(s > 0 for s in sleeps)
    assert dedup.seen(ids) == set(ids)


def test_unprocessed_reads_are_asked_again() -> None:
    client, clock, sleeps = FakeDedupClient(), Clock(), list[float]()
    dedup = store(client, clock, sleeps)
    ids = [f"evt-{i}" for i in range(40)]
    dedup.remember(ids)
    client.unprocessed = [15]
    assert dedup.seen(ids) == set(ids)
    assert client.get_calls == [40, 15]
    assert len(sleeps) == 1


@pytest.mark.parametrize("count", [1, 99, 100, 101])
def test_chunk_edges(count: int) -> None:
    client, clock = FakeDedupClient(), Clock()
    dedup = store(client, clock)
    ids = [f"evt-{i}" for i in range(count)]
    dedup.remember(ids)
    assert sum(client.write_calls) == count
    assert dedup.seen(ids) == set(ids)
    assert len(client.get_calls) == -(-count // 100)
