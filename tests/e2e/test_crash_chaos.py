"""Crash chaos: kill -9 the worker again and again during a burst; nothing is lost.

A burst of 2,000 order changes is written while the worker is killed with SIGKILL at
random moments and restarted, at least five times. Afterwards every change in the
stream was delivered at least once, each under exactly one id, and the test reports
how many were sent more than once (what was in flight at each kill).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.conftest import MotoServer, wait_until
from tests.fakes.processes import ScriptProcess, script
from worker.batch.settle import CHUNK

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]
USERS, ORDERS_PER_USER, UPDATES = 10, 100, 1000  # 1,000 inserts + 1,000 moves
KILLS = 6

pytestmark = pytest.mark.slow


def _expected_changes(moto: MotoServer) -> dict[str, tuple[str, str | None, str]]:
    """Every status change in the stream, read straight from it: eventID -> change."""
    session = boto3.session.Session(region_name="us-east-1")
    dynamodb = session.client("dynamodb", endpoint_url=moto.url)
    streams = session.client("dynamodbstreams", endpoint_url=moto.url)
    arn = dynamodb.describe_table(TableName="Users")["Table"]["LatestStreamArn"]
    changes: dict[str, tuple[str, str | None, str]] = {}
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator: Any = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                image = record["dynamodb"]
                sk = image["Keys"]["SK"]["S"]
                if not sk.startswith("ORDER#") or record["eventName"] == "REMOVE":
                    continue
                new = image["NewImage"]["Status"]["S"]
                old = image.get("OldImage", {}).get("Status", {}).get("S")
                if old != new:
                    changes[record["eventID"]] = (sk[6:], old, new)
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return changes


@pytest.mark.timeout(300)
def test_kill_9_during_a_burst_loses_nothing_and_keeps_ids_stable(
    run_cli: RunCli, start_worker: StartWorker, cli_env: dict[str, str], moto_server: MotoServer
) -> None:
    run_cli("writer", "create-table")
    rng = random.Random(7)
    burst = subprocess.Popen(
        [
            script("writer"),
            "load",
            "--users",
            str(USERS),
            "--orders-per-user",
            str(ORDERS_PER_USER),
            "--updates",
            str(UPDATES),
        ],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs: list[ScriptProcess] = []
    try:
        for _ in range(KILLS):
            worker = start_worker()
            runs.append(worker)
            wait_until(lambda w=worker: w.named("shard.started"), timeout=20)
            time.sleep(rng.uniform(0.3, 1.5))  # the chaos itself: a random moment to die
            worker.kill()
        assert burst.wait(timeout=180) == 0, burst.stderr.read() if burst.stderr else ""
    finally:
        if burst.poll() is None:
            burst.kill()
        if burst.stderr:
            burst.stderr.close()

    expected = _expected_changes(moto_server)
    assert len(expected) == USERS * ORDERS_PER_USER + UPDATES
    last = start_worker()
    runs.append(last)

    def delivered_ids() -> set[str]:
        return {n["id"] for run in runs for n in run.notifications()}

    wait_until(lambda: set(expected) <= delivered_ids(), timeout=120, interval=0.2)

    ids_per_change: dict[tuple[str, str | None, str], set[str]] = defaultdict(set)
    sends: dict[str, int] = defaultdict(int)
    for run in runs:
        for n in run.notifications():
            ids_per_change[(n["order_id"], n["old_status"], n["new_status"])].add(n["id"])
            sends[n["id"]] += 1
            assert expected[n["id"]] == (n["order_id"], n["old_status"], n["new_status"])
    assert all(len(ids) == 1 for ids in ids_per_change.values())
    resent = sum(count - 1 for count in sends.values())
    print(f"\ncrash chaos: {len(expected)} changes, {KILLS} kills, {resent} re-sent")
    assert resent <= KILLS * CHUNK  # at most the batch (page) in flight at each kill
