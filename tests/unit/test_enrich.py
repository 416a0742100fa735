"""Profile enrichment: one BatchGetItem per page for its users, a TTL cache, and a
missing profile that is `"user": null`, never a crash (worker/delivery/enrich.py)."""

from __future__ import annotations

import dataclasses

import pytest
from structlog.testing import capture_logs

from tests.fakes.aws_sinks import FakeProfiles
from tests.fakes.clock import VirtualClock
from tests.fakes.notify import RecordingSink, notification
from tests.fakes.statetable import client_error
from worker.core.errors import DeliveryError
from worker.core.models import Notification, UserProfile
from worker.core.stats import Stats
from worker.delivery.enrich import Profiles
from worker.delivery.sinks.enriched import EnrichedSink


def page(users: list[str], per_user: int = 1) -> list[Notification]:
    return [
        notification(order_id=f"ORD-{u}-{i}", user_id=u, seq=n * per_user + i)
        for n, u in enumerate(users)
        for i in range(per_user)
    ]


@pytest.fixture
def table() -> FakeProfiles:
    table = FakeProfiles()
    table.add("USR001", "Alice", "alice@email.com")
    table.add("USR002", "Bob", "bob@email.com")
    return table


def profiles(table: FakeProfiles, clock: VirtualClock | None = None, ttl_s: float = 60) -> Profiles:
    return Profiles(
        client=table, table="Users", ttl_s=ttl_s, clock=clock or VirtualClock(), stats=Stats()
    )


def test_a_page_is_one_read_for_its_distinct_users(table: FakeProfiles) -> None:
    enriched = profiles(table).enrich(page(["USR001", "USR002"], per_user=5))

    assert table.calls == [["USR001", "USR002"]]
    assert {n.user for n in enriched} == {
        UserProfile("USR001", "Alice", "alice@email.com"),
        UserProfile("USR002", "Bob", "bob@email.com"),
    }
    assert all(n.looked_up and not n.user_in_body for n in enriched)
    assert "user" not in enriched[0].body()  # the body stays the contract unless asked


def test_cached_users_are_not_read_again_until_the_ttl_passes(table: FakeProfiles) -> None:
    clock = VirtualClock()
    cache = profiles(table, clock, ttl_s=60)
    cache.enrich(page(["USR001"]))
    clock.advance(59)
    cache.enrich(page(["USR001", "USR002"]))
    assert table.calls == [["USR001"], ["USR002"]]

    clock.advance(2)  # USR001 read at 0 expires at 60
    table.add("USR001", "Alice Liddell", "alice@email.com")
    (renamed,) = cache.enrich(page(["USR001"]))
    assert table.calls[-1] == ["USR001"]
    assert renamed.user is not None
    assert renamed.user.name == "Alice Liddell"


def test_a_missing_profile_is_none_counted_and_logged_once_per_ttl(table: FakeProfiles) -> None:
    stats = Stats()
    cache = Profiles(client=table, table="Users", ttl_s=60, clock=VirtualClock(), stats=stats)
    with capture_logs() as logs:
        first = cache.enrich(page(["USR404"], per_user=3))
        cache.enrich(page(["USR404"]))

    assert [n.user for n in first] == [None, None, None]
    assert all(n.looked_up for n in first)
    body = dataclasses.replace(first[0], user_in_body=True).body()
    assert body["user"] is None
    assert [e["event"] for e in logs] == ["enrich.profile_missing"]
    assert logs[0]["users"] == ["USR404"]
    assert stats.counts()["profiles_missing"] == 1
    assert len(table.calls) == 1  # the absence is cached too


def test_an_enriched_body_carries_the_profile(table: FakeProfiles) -> None:
    (change,) = profiles(table).enrich(page(["USR001"]))
    body = dataclasses.replace(change, user_in_body=True).body()
    assert body["user"] == {"user_id": "USR001", "name": "Alice", "email": "alice@email.com"}
    assert Notification.from_body(body).user == change.user  # a DLQ entry keeps it


def test_unprocessed_keys_are_asked_for_again() -> None:
    table = FakeProfiles(unprocessed=1)
    for n in range(5):
        table.add(f"U{n}", f"name{n}", f"u{n}@example.com")
    enriched = profiles(table).enrich(page([f"U{n}" for n in range(5)]))

    assert [len(c) for c in table.calls] == [5, 1]  # the left-over key, asked again
    assert all(n.user is not None for n in enriched)


def test_more_than_100_users_take_one_call_per_100() -> None:
    table = FakeProfiles()
    users = [f"U{n:03d}" for n in range(250)]
    profiles(table).enrich(page(users))
    assert [len(c) for c in table.calls] == [100, 100, 50]


def test_read_units_come_from_consumed_capacity(table: FakeProfiles) -> None:
    cache = profiles(table)
    cache.enrich(page(["USR001", "USR002", "USR003"], per_user=10))
    assert cache.read_units == 1.5  # 3 keys x 0.5: eventually consistent, under 4 KB
    assert cache.keys_read == 3


def test_a_failed_read_leaves_the_page_unenriched_and_the_sink_reads_again() -> None:
    table = FakeProfiles()
    table.add("USR001", "Alice", "alice@email.com")
    table.fault = lambda _request: client_error("BatchGetItem", "InternalServerError", "", 500)
    cache = profiles(table)
    with capture_logs() as logs:
        (change,) = cache.enrich(page(["USR001"]))
    assert not change.looked_up
    assert [e["event"] for e in logs] == ["enrich.read_failed"]

    with pytest.raises(DeliveryError) as caught:
        cache.complete(change)
    assert caught.value.transient  # retried, then the retry lane: never dead-lettered for it

    table.fault = None
    assert cache.complete(change).user == UserProfile("USR001", "Alice", "alice@email.com")


def test_the_enriched_sink_puts_the_user_in_its_body_only(table: FakeProfiles) -> None:
    cache = profiles(table)
    plain, with_user = RecordingSink("webhook"), RecordingSink("eventbridge")
    (change,) = page(["USR001"])  # not looked up: a change from the lane or a redrive
    EnrichedSink(sink=plain, profiles=cache, in_body=False).send(change)
    EnrichedSink(sink=with_user, profiles=cache, in_body=True).send(change)

    assert "user" not in plain.delivered[0].body()
    assert with_user.delivered[0].body()["user"]["name"] == "Alice"
    assert len(table.calls) == 1  # the second sink read from the cache
