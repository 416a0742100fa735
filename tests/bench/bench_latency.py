"""Benchmark (b): propagation latency and the read cost of an idle stream, on moto.

`worker run` reads a fresh moto table's stream through a counting proxy. Once it is
polling and has caught up, an idle window counts its GetRecords calls per second per
shard; then status changes are written at random intervals and each is matched to its
notification (by order id and new status). Latency is the notification line's
timestamp minus the time the write returned, both from this machine's clock.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3

from tests.bench.counting_proxy import CountingProxy
from tests.bench.processes import (
    BIN,
    REGION,
    HarnessError,
    JsonLines,
    Processes,
    safe_env,
    wait_until,
)
from tests.bench.verify import epoch_of
from writer import OrderRepository, OrderStatus

APP = "bench-latency"
STATE_TABLE = "bench-latency-state"
TABLE = "BenchLatency"
STEPS = (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED)
SETTLE_S = 2.0  # after catching up, let the idle backoff reach its longest wait


@dataclass(frozen=True)
class LatencySetup:
    moto_url: str
    changes: int = 40
    idle_window_s: float = 5.0
    seed: int = 0
    min_gap_s: float = 0.1
    max_gap_s: float = 0.6


def _client(service: str, moto_url: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _plan(setup: LatencySetup) -> tuple[list[tuple[str, str]], list[tuple[str, str, OrderStatus]]]:
    """Orders to create, and `changes` legal moves interleaved at random across them."""
    rng = random.Random(setup.seed)
    orders = [(f"LATU{i % 4:02d}", f"LATO{i:03d}") for i in range(-(-setup.changes // 3))]
    remaining = {order: list(STEPS) for order in orders}
    moves: list[tuple[str, str, OrderStatus]] = []
    while len(moves) < setup.changes:
        order = rng.choice([o for o, steps in remaining.items() if steps])
        moves.append((*order, remaining[order].pop(0)))
    return orders, moves


def _prepare(repo: OrderRepository, orders: list[tuple[str, str]]) -> None:
    repo.create_table()
    for user in sorted({u for u, _ in orders}):
        repo.put_user(user, f"Bench {user}", f"{user.lower()}@example.com")
    for user, order in orders:
        repo.put_order(user, order, "19.90")


def _shard_count(moto_url: str) -> int:
    arn = _client("dynamodb", moto_url).describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    streams = _client("dynamodbstreams", moto_url)
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    count = len([s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]])
    if not count:
        raise HarnessError(f"the stream of {TABLE} has no open shard")
    return count


def _percentile(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _write(
    repo: OrderRepository, moves: list[tuple[str, str, OrderStatus]], setup: LatencySetup
) -> dict[tuple[str, str], float]:
    rng = random.Random(setup.seed + 1)
    written: dict[tuple[str, str], float] = {}
    for user, order, status in moves:
        time.sleep(rng.uniform(setup.min_gap_s, setup.max_gap_s))
        repo.set_status(user, order, status)
        written[(order, status.value)] = time.time()
    return written


def run(procs: Processes, setup: LatencySetup) -> dict[str, Any]:
    repo = OrderRepository(_client("dynamodb", setup.moto_url), table=TABLE)
    orders, moves = _plan(setup)
    _prepare(repo, orders)
    proxy = CountingProxy(int(urlsplit(setup.moto_url).port or 0))
    try:
        return _measure(procs, setup, repo, proxy, orders=orders, moves=moves)
    finally:
        proxy.close()


def _measure(
    procs: Processes,
    setup: LatencySetup,
    repo: OrderRepository,
    proxy: CountingProxy,
    *,
    orders: list[tuple[str, str]],
    moves: list[tuple[str, str, OrderStatus]],
) -> dict[str, Any]:
    env = safe_env(
        AWS_ENDPOINT_URL_DYNAMODB=setup.moto_url,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=proxy.url,
        ORDERSTREAM_TABLE=TABLE,
        ORDERSTREAM_APP=APP,
        ORDERSTREAM_STATE_TABLE=STATE_TABLE,
        ORDERSTREAM_LOG_FORMAT="json",
        ORDERSTREAM_SINKS="log",
    )
    log = JsonLines(procs.workdir / "latency-worker.jsonl")
    process = procs.start("latency-worker", [str(BIN / "worker"), "run"], env, stdout=log.path)

    def caught_up() -> bool:
        procs.check_alive(process, "latency-worker")
        log.poll()
        return len(log.named("notification")) >= len(orders) and proxy.count("GetRecords") > 0

    wait_until(caught_up, 90, "the worker to notify the inserts and poll")
    time.sleep(SETTLE_S)
    shards = _shard_count(setup.moto_url)
    idle_from = time.monotonic()
    time.sleep(setup.idle_window_s)
    idle_calls = proxy.count("GetRecords", idle_from, time.monotonic())
    busy_from = time.monotonic()
    written = _write(repo, moves, setup)
    busy_s = time.monotonic() - busy_from
    busy_calls = proxy.count("GetRecords", busy_from, time.monotonic())

    def notified() -> dict[tuple[str, str], float]:
        log.poll()
        seen = {(e["order_id"], e["new_status"]): e for e in log.named("notification")}
        if not all(key in seen for key in written):
            return {}
        return {key: epoch_of(seen[key]["timestamp"]) for key in written}

    try:
        arrived = wait_until(notified, 30, "a notification for every status change", 0.05)
    except HarnessError as exc:
        log.poll()
        got = {(e["order_id"], e["new_status"]) for e in log.named("notification")}
        raise HarnessError(f"{exc}; missing {sorted(set(written) - got)[:5]}") from None
    exit_code = procs.stop(process)
    log.poll()
    return _figures(
        setup,
        log,
        written,
        arrived,
        shards=shards,
        idle_calls=idle_calls,
        busy_calls=busy_calls,
        busy_s=busy_s,
        exit_code=exit_code,
    )


def _figures(
    setup: LatencySetup,
    log: JsonLines,
    written: dict[tuple[str, str], float],
    arrived: dict[tuple[str, str], float],
    *,
    shards: int,
    idle_calls: int,
    busy_calls: int,
    busy_s: float,
    exit_code: int,
) -> dict[str, Any]:
    latencies = sorted(arrived[key] - written[key] for key in written)
    problems = []
    keys = [(e["order_id"], e["new_status"]) for e in log.named("notification")]
    repeated = {k for k in keys if keys.count(k) > 1}
    if repeated:
        problems.append(f"{len(repeated)} changes notified more than once: {sorted(repeated)[:5]}")
    if exit_code != 0:
        problems.append(f"worker exited {exit_code} after SIGTERM")
    return {
        "parameters": {
            "changes": setup.changes,
            "gap_s": [setup.min_gap_s, setup.max_gap_s],
            "idle_window_s": setup.idle_window_s,
        },
        "p50_s": round(_percentile(latencies, 50), 3),
        "p99_s": round(_percentile(latencies, 99), 3),
        "min_s": round(latencies[0], 3),
        "max_s": round(latencies[-1], 3),
        "mean_s": round(statistics.fmean(latencies), 3),
        "shards": shards,
        "idle_get_records_per_s_per_shard": round(idle_calls / setup.idle_window_s / shards, 2),
        "busy_get_records_per_s_per_shard": round(busy_calls / busy_s / shards, 2),
        "exit_code": exit_code,
        "problems": problems,
    }
