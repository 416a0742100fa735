"""Benchmark (e): what profile enrichment costs, on a moto server.

100 users with a PROFILE item each, 10 status changes each (1,000 notifications),
shuffled into pages of 100 as a stream page would carry them, and enriched by the
worker's own `Profiles` (one BatchGetItem per page for the users not cached, a 60 s
TTL), exactly as the batch processor calls it before dispatch.

Read units: DynamoDB bills an eventually consistent read of an item of up to 4 KB at
half a unit, in BatchGetItem too, so the cost is 0.5 x the keys read (a profile is
~100 bytes); that is the figure with the target. What the server reports in
`ConsumedCapacity` is shown beside it: moto reports a whole unit per key, so its
figure is twice DynamoDB's. Latency: the time `enrich()` adds to each page, cold (the
first pages, whose users are read) and warm (every user cached: no call at all).
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import boto3

from tests.fakes.notify import notification
from worker.core.models import Notification
from worker.delivery.enrich import Profiles
from writer.repository import OrderRepository

USERS = 100
CHANGES_PER_USER = 10
PAGE = 100
READ_UNIT_PER_KEY = 0.5  # eventually consistent, item <= 4 KB


@dataclass(frozen=True)
class EnrichSetup:
    moto_url: str
    users: int = USERS
    changes_per_user: int = CHANGES_PER_USER
    page: int = PAGE
    seed: int = 0


def _pages(setup: EnrichSetup) -> list[list[Notification]]:
    changes = [
        notification(order_id=f"O{u}-{c}", user_id=f"B{u:04d}", seq=u * 100 + c)
        for u in range(setup.users)
        for c in range(setup.changes_per_user)
    ]
    random.Random(setup.seed).shuffle(changes)
    return [changes[i : i + setup.page] for i in range(0, len(changes), setup.page)]


def _ms(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(seconds) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


def run(setup: EnrichSetup) -> dict[str, Any]:
    dynamodb: Any = boto3.client("dynamodb", endpoint_url=setup.moto_url)
    table = "BenchEnrich"
    repo = OrderRepository(dynamodb, table)
    repo.create_table()
    for u in range(setup.users):
        repo.put_user(f"B{u:04d}", f"Bench User {u}", f"bench{u}@example.com")
    profiles = Profiles(client=dynamodb, table=table, ttl_s=60, clock=time.monotonic)
    pages = _pages(setup)
    cold: list[float] = []
    problems: list[str] = []
    for page in pages:
        started = time.perf_counter()
        enriched = profiles.enrich(page)
        cold.append(time.perf_counter() - started)
        if any(n.user is None or n.user.user_id != n.user_id for n in enriched):
            problems.append("a change was enriched with no profile or the wrong one")
    keys_first_pass = profiles.keys_read
    warm: list[float] = []
    for page in pages:  # the same changes again, every user cached
        started = time.perf_counter()
        profiles.enrich(page)
        warm.append(time.perf_counter() - started)
    notifications = sum(len(p) for p in pages)
    if profiles.keys_read != keys_first_pass:
        problems.append("the warm pass read profiles again")
    if keys_first_pass != setup.users:
        problems.append(f"{keys_first_pass} keys read for {setup.users} users")
    units = READ_UNIT_PER_KEY * profiles.keys_read
    return {
        "notifications": notifications,
        "users": setup.users,
        "pages": len(pages),
        "keys_read": profiles.keys_read,
        "read_units": units,
        "read_units_per_notification": round(units / notifications, 4),
        "reported_read_units_per_notification": round(profiles.read_units / notifications, 4),
        "cold_page": _ms(cold),
        "warm_page": _ms(warm),
        "added_ms_per_notification": round(sum(cold) * 1000 / notifications, 3),
        "problems": problems,
    }
