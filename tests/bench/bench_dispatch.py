"""Benchmark (c): webhook dispatch with the default concurrency vs one at a time.

In process: the worker's own Dispatcher and WebhookSink, built as worker/wiring.py builds
them, deliver notifications to a local receiver (tests/fakes/receiver.py) that answers
each POST after a fixed delay. The notifications are many orders' changes interleaved
in sequence order, fed in batches of the reader's chunk size as the processor does.
Both runs must deliver everything once, each order's changes in sequence order.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any

from tests.bench import verify
from tests.bench.processes import REGION
from tests.fakes.receiver import Receiver, Reply
from worker import wiring as app
from worker.aws import Clients
from worker.batch.settle import CHUNK
from worker.core.detect import iso_utc
from worker.core.models import Notification, Outcome
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.settings import WorkerSettings
from writer import logs

STATUSES = ("Pending", "Processing", "Shipped", "Delivered", "Returned")
DEFAULT_CONCURRENCY = WorkerSettings.concurrency  # the worker's default (32)


@dataclass(frozen=True)
class DispatchSetup:
    notifications: int = 1000
    orders: int = 100
    delay_s: float = 0.05
    concurrency: int = DEFAULT_CONCURRENCY
    batch: int = CHUNK
    seed: int = 0


def make_notifications(setup: DispatchSetup) -> list[Notification]:
    """`notifications` changes over `orders` orders, interleaved at random, in sequence order."""
    rng = random.Random(setup.seed)
    per_order = [setup.notifications // setup.orders] * setup.orders
    for i in range(setup.notifications % setup.orders):
        per_order[i] += 1
    slots = [o for o, n in enumerate(per_order) for _ in range(n)]
    rng.shuffle(slots)
    step = [0] * setup.orders
    result = []
    for index, order in enumerate(slots):
        k = step[order]
        step[order] += 1
        result.append(
            Notification(
                id=f"bench-{index:06d}",
                occurred_at=iso_utc(1_704_067_200 + index),
                user_id=f"DU{order // 10:04d}",
                order_id=f"DO{order:05d}",
                old_status=STATUSES[k % len(STATUSES)],
                new_status=STATUSES[(k + 1) % len(STATUSES)],
                amount="42.00",
                shard_id="shardId-bench-dispatch",
                sequence_number=str(10**20 + index),
            )
        )
    return result


def _dispatcher(url: str, concurrency: int) -> Dispatcher:
    """Wired by worker/wiring.py itself for ORDERSTREAM_SINKS=webhook (no DLQ, no dedup)."""
    env = {
        "ORDERSTREAM_SINKS": "webhook",
        "ORDERSTREAM_WEBHOOK_URL": url,
        "ORDERSTREAM_CONCURRENCY": str(concurrency),
        "AWS_DEFAULT_REGION": REGION,
    }
    settings = WorkerSettings.from_env(env)
    sinks = app.build_sinks(settings, Clients(settings.region))
    # No DLQ: a delivery that fails for good is logged and comes back FAILED (reported).
    no_dlq: Any = None
    return app.build_dispatcher(settings, sinks, no_dlq, Stats(), no_dlq)


def _one_run(setup: DispatchSetup, notes: list[Notification], concurrency: int) -> dict[str, Any]:
    with Receiver() as receiver:
        receiver.always(Reply(delay_s=setup.delay_s))
        dispatcher = _dispatcher(receiver.url, concurrency)
        started = time.perf_counter()
        try:
            outcomes = []
            for start in range(0, len(notes), setup.batch):
                outcomes += dispatcher.dispatch(notes[start : start + setup.batch])
            wall_s = time.perf_counter() - started
        finally:
            dispatcher.close()
        bodies = receiver.bodies()
        peak = receiver.max_in_flight
    problems = []
    undelivered = sum(1 for o in outcomes if o is not Outcome.DELIVERED)
    if undelivered:
        problems.append(f"concurrency {concurrency}: {undelivered} not delivered")
    expected = {n.id: n.body() for n in notes}
    ids = [b.get("id") for b in bodies]
    if sorted(ids) != sorted(expected) or any(expected.get(b["id"]) != b for b in bodies):
        problems.append(f"concurrency {concurrency}: the receiver did not get each body once")
    problems += [f"concurrency {concurrency}: {p}" for p in verify.order_kept(bodies)]
    return {
        "wall_s": round(wall_s, 3),
        "per_s": round(len(notes) / wall_s, 1),
        "max_in_flight": peak,
        "problems": problems,
    }


def run(setup: DispatchSetup) -> dict[str, Any]:
    notes = make_notifications(setup)
    with open(os.devnull, "w", encoding="utf-8") as sink_log:
        # The dispatcher logs each delivery as the worker does, rendered as JSON, unseen.
        logs.configure("json", "info", stream=sink_log)
        concurrent = _one_run(setup, notes, setup.concurrency)
        serial = _one_run(setup, notes, 1)
    return {
        "parameters": {
            "notifications": setup.notifications,
            "orders": setup.orders,
            "receiver_delay_s": setup.delay_s,
            "concurrency": setup.concurrency,
            "batch": setup.batch,
        },
        "concurrent": concurrent,
        "one_at_a_time": serial,
        "speedup": round(serial["wall_s"] / concurrent["wall_s"], 2),
        "ideal_speedup": _ideal(setup, notes),
        "problems": [*concurrent.pop("problems"), *serial.pop("problems")],
    }


def _ideal(setup: DispatchSetup, notes: list[Notification]) -> float:
    """The best any dispatcher keeping order per order id could do, batch by batch: each
    batch takes max(longest order chain, changes / concurrency) receiver delays."""
    serial = total = 0.0
    for start in range(0, len(notes), setup.batch):
        batch = notes[start : start + setup.batch]
        chains: dict[str, int] = {}
        for n in batch:
            chains[n.order_id] = chains.get(n.order_id, 0) + 1
        total += max(*chains.values(), -(-len(batch) // setup.concurrency))
        serial += len(batch)
    return round(serial / total, 2)
