"""Benchmark (a): drain a backlog of S closed shards, the worker vs a naive boto3 loop.

Both consumers read the same canned stream (its own process) and write their state to
the same moto server; each runs alone, one after the other. A rate is changes per
second from the first to the last notification, so process start-up, lease and
state-table set-up are not counted, and every run is verified in full before its rate
is reported (see verify.py).
"""

from __future__ import annotations

import http.client
import json
import re
import resource
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3

from tests.bench import dataset, proctree, verify
from tests.bench.naive_consumer import CHECKPOINT_TABLE
from tests.bench.processes import (
    BIN,
    REGION,
    HarnessError,
    JsonLines,
    Processes,
    canned_stats,
    safe_env,
    wait_until,
)

APP = "bench-drain"
STATE_TABLE = "bench-drain-state"
NOTIFICATION_LINE = re.compile(rb'"event": ?"notification"[,}]')


@dataclass(frozen=True)
class DrainSetup:
    shards: int
    records: int
    seed: int
    moto_url: str
    canned_port: int
    processes: str = "auto"  # ORDERSTREAM_PROCESSES for the worker
    tag: str = "0"  # names this run's processes, logs and checkpoints (fresh every run)

    @property
    def app(self) -> str:
        return f"{APP}-{self.tag}"

    @property
    def canned_url(self) -> str:
        return f"http://127.0.0.1:{self.canned_port}"

    @property
    def total(self) -> int:
        return self.shards * self.records

    @property
    def deadline_s(self) -> float:
        return 60 + self.total / 250  # generous: a consumer at 250 changes/s still finishes

    def expected(self) -> list[dataset.Change]:
        return dataset.all_changes(self.shards, self.records, self.seed)

    def last_sequences(self) -> dict[str, str]:
        last = max(self.records - 1, 0)
        return {dataset.shard_id(s): dataset.sequence_number(s, last) for s in range(self.shards)}


def dynamodb(moto_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# -- the canned server's own speed ---------------------------------------------------------


def _post(connection: http.client.HTTPConnection, operation: str, body: dict[str, Any]) -> bytes:
    headers = {
        "X-Amz-Target": f"DynamoDBStreams_20120810.{operation}",
        "Content-Type": "application/x-amz-json-1.0",
    }
    connection.request("POST", "/", body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise HarnessError(f"canned {operation} answered {response.status}: {data[:200]!r}")
    return data


def _drain_once(connection: http.client.HTTPConnection, shards: int) -> tuple[int, int]:
    pages = size = 0
    for shard in range(shards):
        answer = _post(
            connection,
            "GetShardIterator",
            {
                "StreamArn": dataset.STREAM_ARN,
                "ShardId": dataset.shard_id(shard),
                "ShardIteratorType": "TRIM_HORIZON",
            },
        )
        iterator: str | None = json.loads(answer)["ShardIterator"]
        while iterator:
            page = _post(connection, "GetRecords", {"ShardIterator": iterator, "Limit": 1000})
            pages, size = pages + 1, size + len(page)
            found = re.search(rb'"NextShardIterator":"([^"]+)"', page[-200:])
            iterator = found.group(1).decode() if found else None
    return pages, size


def serving_rate(setup: DrainSetup, min_s: float = 1.0) -> dict[str, float]:
    """Every page through one keep-alive connection, read but not parsed, repeated for at
    least `min_s`: the most the server can give a single consumer."""
    connection = http.client.HTTPConnection("127.0.0.1", setup.canned_port, timeout=30)
    passes = pages = size = 0
    started = time.perf_counter()
    try:
        while passes < 1 or time.perf_counter() - started < min_s:
            got = _drain_once(connection, setup.shards)
            passes, pages, size = passes + 1, pages + got[0], size + got[1]
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    return {
        "records_per_s": round(passes * setup.total / elapsed),
        "pages_per_s": round(pages / elapsed, 1),
        "mb_per_s": round(size / elapsed / 1e6, 1),
        "passes": passes,
        "seconds": round(elapsed, 3),
    }


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the worker ----------------------------------------------------------------------------


class DrainWindow:
    """The worker tree's CPU between the first sample that saw a notification and the
    one that saw them all, over the changes delivered in between: start-up, imports and
    table set-up are left out. Peak RSS is each process's own high-water mark."""

    def __init__(self, sampler: proctree.TreeSampler) -> None:
        self._sampler = sampler
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None

    def observe(self, count: int) -> None:
        if count <= 0 or not proctree.available():
            return
        cpu = self._sampler.sample()
        if self._first is None:
            self._first = (count, cpu)
        self._last = (count, cpu)

    def figures(self) -> dict[str, Any]:
        peaks = sorted(self._sampler.peak_mb.values(), reverse=True)
        figures: dict[str, Any] = {
            "processes_seen": len(self._sampler.cpu),
            "peak_rss_mb_max": round(peaks[0], 1) if peaks else None,
            "peak_rss_mb_each": [round(p, 1) for p in peaks],
        }
        if self._first is None or self._last is None or self._last[0] <= self._first[0]:
            return {**figures, "cpu_us_per_change": None}
        changes = self._last[0] - self._first[0]
        cpu = self._last[1] - self._first[1]
        return {
            **figures,
            "cpu_us_per_change": round(cpu * 1e6 / changes, 1),
            "cpu_window_changes": changes,
            "cpu_window_s": round(cpu, 3),
        }


class LineCounter:
    """Counts notification lines in a growing file, reading only what is new (cheap:
    the worker being measured shares the machine)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self.count = 0

    def poll(self) -> int:
        if self._path.exists():
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(complete)
            self.count += len(NOTIFICATION_LINE.findall(complete))
        return self.count


def _state_items(moto_url: str, table: str, pk: str) -> dict[str, dict[str, Any]]:
    pages = (
        dynamodb(moto_url)
        .get_paginator("query")
        .paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
    )
    items: dict[str, dict[str, Any]] = {}
    for page in pages:
        for item in page["Items"]:
            plain = {k: next(iter(v.values())) for k, v in item.items()}
            # The worker's checkpoints are keyed CHECKPOINT#<stream arn>#<shard> and
            # carry the shard id; the naive loop's are keyed by the shard id alone.
            items[str(plain.get("shard_id") or plain["sk"])] = plain
    return items


def run_worker(procs: Processes, setup: DrainSetup) -> dict[str, Any]:
    env = safe_env(
        AWS_ENDPOINT_URL_DYNAMODB=setup.moto_url,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=setup.canned_url,
        ORDERSTREAM_STREAM_ARN=dataset.STREAM_ARN,
        ORDERSTREAM_TABLE=dataset.TABLE,
        ORDERSTREAM_APP=setup.app,
        ORDERSTREAM_STATE_TABLE=STATE_TABLE,
        ORDERSTREAM_LOG_FORMAT="json",
        ORDERSTREAM_SINKS="log",
        ORDERSTREAM_PROCESSES=setup.processes,
    )
    name = f"drain-worker-{setup.tag}"
    log_path = procs.workdir / f"{name}.jsonl"
    calls_before = canned_stats(setup.canned_port)
    cpu_before = _cpu_of_children()
    process = procs.start(name, [str(BIN / "worker"), "run"], env, stdout=log_path)

    counter = LineCounter(log_path)
    window = DrainWindow(proctree.TreeSampler(process.pid))

    def done() -> bool:
        procs.check_alive(process, name)
        count = counter.poll()
        window.observe(count)
        return count >= setup.total

    # Polled often: the CPU window is as precise as the first and last samples.
    wait_until(done, setup.deadline_s, f"{setup.total} worker notifications", interval=0.05)
    exit_code = procs.stop(process)
    cpu_s = _cpu_of_children() - cpu_before
    calls = _calls_since(calls_before, canned_stats(setup.canned_port))
    log = JsonLines(log_path)
    log.poll()
    lines = log.named("notification")
    per_s, span = verify.rate([verify.epoch_of(e["timestamp"]) for e in lines])
    found = _state_items(setup.moto_url, STATE_TABLE, f"APP#{setup.app}")
    problems = _problems(lines, setup, found, need_finished=True)
    if exit_code != 0:
        problems.append(f"worker exited {exit_code} after SIGTERM")
    stopped = (log.named("worker.stopped") or [{}])[-1]
    levels = {
        lvl: sum(1 for e in log.events if e.get("level") == lvl) for lvl in ("warning", "error")
    }
    return {
        "changes_per_s": round(per_s, 1),
        "span_s": round(span, 3),
        "notifications": len(lines),
        "get_records_calls": calls.get("GetRecords", 0),
        "checkpoints_written": stopped.get("checkpoints"),
        "process_cpu_s": round(cpu_s, 2),
        "process_cpu_us_per_change": round(cpu_s * 1e6 / max(len(lines), 1), 1),
        **window.figures(),
        "log_lines": len(log.events),
        "log_warnings": levels["warning"],
        "log_errors": levels["error"],
        "exit_code": exit_code,
        "problems": problems,
    }


def _calls_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def _problems(
    lines: list[dict[str, Any]],
    setup: DrainSetup,
    checkpoints: dict[str, dict[str, Any]],
    need_finished: bool,
) -> list[str]:
    return [
        *verify.notifications_match(lines, setup.expected()),
        *verify.order_kept(lines),
        *verify.checkpoints_at_end(checkpoints, setup.last_sequences(), need_finished),
    ]


# -- the naive consumer ----------------------------------------------------------------------


def _create_checkpoint_table(moto_url: str) -> None:
    """A fresh table per run, so each run's checkpoints are its own."""
    client = dynamodb(moto_url)
    if CHECKPOINT_TABLE in client.list_tables()["TableNames"]:
        client.delete_table(TableName=CHECKPOINT_TABLE)
        client.get_waiter("table_not_exists").wait(TableName=CHECKPOINT_TABLE)
    client.create_table(
        TableName=CHECKPOINT_TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=CHECKPOINT_TABLE)


def run_naive(procs: Processes, setup: DrainSetup) -> dict[str, Any]:
    _create_checkpoint_table(setup.moto_url)
    name = f"drain-naive-{setup.tag}"
    env = safe_env(
        AWS_ENDPOINT_URL_DYNAMODB=setup.moto_url,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=setup.canned_url,
    )
    out = procs.workdir / f"{name}.jsonl"
    calls_before = canned_stats(setup.canned_port)
    cpu_before = _cpu_of_children()
    argv = [sys.executable, "-m", "tests.bench.naive_consumer"]
    argv += ["--stream-arn", dataset.STREAM_ARN, "--out", str(out)]
    process = procs.start(name, argv, env)
    wait_until(lambda: process.poll() is not None, setup.deadline_s, "the naive consumer")
    cpu_s = _cpu_of_children() - cpu_before
    if process.returncode != 0:
        procs.check_alive(process, name)  # raises with its stderr
    calls = _calls_since(calls_before, canned_stats(setup.canned_port))
    lines = JsonLines(out)
    lines.poll()
    per_s, span = verify.rate([float(e["ts"]) for e in lines.events])
    found = _state_items(setup.moto_url, CHECKPOINT_TABLE, "naive")
    summary = json.loads((procs.workdir / f"{name}.out").read_text() or "{}")
    return {
        "changes_per_s": round(per_s, 1),
        "span_s": round(span, 3),
        "notifications": len(lines.events),
        "get_records_calls": calls.get("GetRecords", 0),
        "checkpoints_written": summary.get("checkpoints"),
        "process_cpu_s": round(cpu_s, 2),
        "process_cpu_us_per_change": round(cpu_s * 1e6 / max(len(lines.events), 1), 1),
        "problems": _problems(lines.events, setup, found, need_finished=False),
    }


def compare(procs: Processes, setup: DrainSetup, runs: int) -> dict[str, Any]:
    """`runs` rounds of the worker, then the naive loop, on the same records (each on a
    fresh app name, so nothing is resumed): the median round in full, and the spread."""
    rounds = []
    for index in range(runs):
        tagged = replace(setup, tag=f"{setup.shards}s-{setup.processes}-{index}")
        rounds.append((run_worker(procs, tagged), run_naive(procs, tagged)))
    ratios = [w["changes_per_s"] / n["changes_per_s"] if n["changes_per_s"] else 0.0
              for w, n in rounds]  # fmt: skip
    median = sorted(range(runs), key=lambda i: ratios[i])[runs // 2]
    worker, naive = rounds[median]
    problems = [p for w, n in rounds for p in (*w.pop("problems"), *n.pop("problems"))]
    return {
        "parameters": {
            "shards": setup.shards,
            "records_per_shard": setup.records,
            "processes": setup.processes,
            "runs": runs,
        },
        "worker": worker,
        "naive": naive,
        "ratio": round(ratios[median], 2),
        "ratio_min": round(min(ratios), 2),
        "ratio_max": round(max(ratios), 2),
        "rounds": [_round(w, n, r) for (w, n), r in zip(rounds, ratios, strict=True)],
        "problems": problems,
    }


def _round(worker: dict[str, Any], naive: dict[str, Any], ratio: float) -> dict[str, Any]:
    return {
        "worker_changes_per_s": worker["changes_per_s"],
        "naive_changes_per_s": naive["changes_per_s"],
        "ratio": round(ratio, 2),
        "worker_cpu_us_per_change": worker.get("cpu_us_per_change"),
        "worker_peak_rss_mb_max": worker.get("peak_rss_mb_max"),
    }


def run(procs: Processes, setup: DrainSetup, one_shard: DrainSetup, runs: int) -> dict[str, Any]:
    """The headline drain at the defaults (median of `runs`), and one shard alone."""
    serving = serving_rate(setup)
    main = compare(procs, setup, runs)
    single = compare(procs, one_shard, runs)
    fastest = max(main["worker"]["changes_per_s"], main["naive"]["changes_per_s"])
    return {
        **main,
        "canned_server": serving,
        "server_headroom": round(serving["records_per_s"] / max(fastest, 1.0), 1),
        "one_shard": {k: v for k, v in single.items() if k != "problems"},
        "problems": [*main["problems"], *single["problems"]],
    }


SCALING_SHARDS = (1, 2, 4, 8, 16)
SCALING_PROCESSES = ("1", "auto")


def scaling(procs: Processes, setups: dict[int, DrainSetup]) -> dict[str, Any]:
    """How cost grows with work: each shard count drained by the worker with one process
    and with `auto`, and by the naive loop, one run each."""
    table = []
    problems: list[str] = []
    for shards, setup in setups.items():
        naive = run_naive(procs, replace(setup, tag=f"scale-{shards}s-naive"))
        problems += naive.pop("problems")
        row: dict[str, Any] = {"shards": shards, "naive_changes_per_s": naive["changes_per_s"]}
        for processes in SCALING_PROCESSES:
            tagged = replace(setup, processes=processes, tag=f"scale-{shards}s-{processes}")
            worker = run_worker(procs, tagged)
            problems += worker.pop("problems")
            row[processes] = {
                "changes_per_s": worker["changes_per_s"],
                "ratio": round(worker["changes_per_s"] / max(naive["changes_per_s"], 1.0), 2),
                "cpu_us_per_change": worker.get("cpu_us_per_change"),
                "peak_rss_mb_max": worker.get("peak_rss_mb_max"),
                "processes_seen": worker.get("processes_seen"),
            }
        table.append(row)
    return {"records_per_shard": next(iter(setups.values())).records, "table": table,
            "problems": problems}  # fmt: skip
