"""One run of the lane benchmark: its table, queue, receiver and worker processes.

`LaneSetup` holds the parameters; `make_rig` creates a fresh orders table (with its
users and orders: the inserts), an SQS queue on the moto server and the worker's
environment (webhook and SQS sinks, `/metrics` on a free loopback port per worker).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from tests.bench import lane_checks as checks
from tests.bench.lane_rig import SqsDrain, Webhook, Write
from tests.bench.processes import (
    BIN,
    REGION,
    HarnessError,
    JsonLines,
    Processes,
    free_port,
    safe_env,
    wait_until,
)
from tests.bench.verify import epoch_of
from tests.fakes.receiver import Receiver
from writer import OrderRepository

USERS = 4


@dataclass(frozen=True)
class LaneSetup:
    moto_url: str
    outage_s: float = 60.0
    rate: float = 8.0  # status changes per second, during the outage
    orders: int = 20
    # Short first steps, so a change whose try failed late in the outage is due again
    # soon after the return (the default's second step is 5 minutes).
    schedule: str = "5s,10s,20s,30s,30s,30s,30s,30s"
    poison_schedule: str = "1s,1s,1s"
    poison_s: float = 20.0
    lease_s: int = 3  # the kill run: the standby takes over once the lease lapses
    recovery_timeout_s: float = 240.0
    seed: int = 0


@dataclass
class Rig:
    """One run's table, queue, receiver and workers."""

    name: str
    procs: Processes
    setup: LaneSetup
    repo: OrderRepository
    queue_url: str
    env: dict[str, str]
    webhook: Webhook
    drain: SqsDrain
    inserts: dict[str, Write]
    workers: list[tuple[str, subprocess.Popen[bytes], JsonLines, int]]

    def start_worker(self, suffix: str) -> None:
        port = free_port()
        name = f"lane-{self.name}-{suffix}"
        log = JsonLines(self.procs.workdir / f"{name}.jsonl")
        env = {**self.env, "ORDERSTREAM_HTTP_PORT": str(port)}
        process = self.procs.start(name, [str(BIN / "worker"), "run"], env, stdout=log.path)
        self.workers.append((name, process, log, port))

    def cli(self, *args: str) -> list[dict[str, Any]]:
        argv = [str(BIN / "worker"), *args, "--json"]
        done = subprocess.run(argv, env=self.env, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise HarnessError(f"worker {' '.join(args)} exited {done.returncode}: {done.stderr!r}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def acquired(self, index: int) -> float | None:
        name, process, log, _ = self.workers[index]
        self.procs.check_alive(process, name)
        log.poll()
        got = log.named("lease.acquired")
        return epoch_of(got[0]["timestamp"]) if got else None

    def stop_workers(self) -> list[str]:
        problems = []
        for name, process, _, _ in self.workers:
            if process.poll() is None:
                code = self.procs.stop(process)
                if code != 0:
                    problems.append(f"{name} exited {code} after SIGTERM")
        return problems


def _client(service: str, moto_url: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make_rig(
    procs: Processes, setup: LaneSetup, name: str, receiver: Receiver, **extra: str
) -> Rig:
    table = f"BenchLane{name.title()}"
    repo = OrderRepository(_client("dynamodb", setup.moto_url), table=table)
    repo.create_table()
    orders = [(f"LNU{i % USERS:02d}", f"LN{name[:2].upper()}{i:03d}") for i in range(setup.orders)]
    for user in sorted({u for u, _ in orders}):
        repo.put_user(user, f"Bench {user}", f"{user.lower()}@example.com")
    inserts = {}
    for user, order in orders:
        repo.put_order(user, order, "19.90")
        inserts[order] = Write(order, "Pending", time.time())
    sqs = _client("sqs", setup.moto_url)
    queue_url = sqs.create_queue(QueueName=f"bench-lane-{name}")["QueueUrl"]
    webhook = Webhook()
    receiver.respond_with(webhook)
    env = safe_env(
        AWS_ENDPOINT_URL_DYNAMODB=setup.moto_url,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=setup.moto_url,
        AWS_ENDPOINT_URL_SQS=setup.moto_url,
        ORDERSTREAM_TABLE=table,
        ORDERSTREAM_APP=f"bench-lane-{name}",
        ORDERSTREAM_STATE_TABLE=f"bench-lane-{name}-state",
        ORDERSTREAM_LOG_FORMAT="json",
        ORDERSTREAM_SINKS="webhook,sqs",
        ORDERSTREAM_WEBHOOK_URL=receiver.url,
        ORDERSTREAM_SQS_QUEUE_URL=queue_url,
        ORDERSTREAM_HTTP_HOST="127.0.0.1",
        ORDERSTREAM_STATS_INTERVAL_S="1",
        **{"ORDERSTREAM_RETRY_SCHEDULE": setup.schedule, **extra},
    )
    drain = SqsDrain(sqs, queue_url)
    return Rig(name, procs, setup, repo, queue_url, env, webhook, drain, inserts, [])


def orders_of(rig: Rig) -> list[tuple[str, str]]:
    return [(f"LNU{i % USERS:02d}", order) for i, order in enumerate(rig.inserts)]


def warm(rig: Rig) -> None:
    """The inserts delivered to both sinks: the worker is reading and delivering."""
    expected = {order: [write] for order, write in rig.inserts.items()}

    def delivered() -> bool:
        rig.acquired(0)  # alive?
        hook = checks.webhook(rig.webhook.answers(), expected)
        queue = checks.sqs(rig.drain.messages(), expected)
        want = len(rig.inserts)
        return len(hook.delivered_at) == want and len(queue.delivered_at) == want

    wait_until(delivered, 120, "the inserts on both sinks", 0.2)


def wait_all(
    rig: Rig,
    expected: checks.Expected,
    what: str,
    more: Callable[[], bool],
    hook_expected: checks.Expected | None = None,
) -> None:
    """Until both sinks have every expected change (the webhook `hook_expected`, when
    given) and `more()` holds; the deadline is a harness error saying what was missing."""
    hook_expected = expected if hook_expected is None else hook_expected
    want = (sum(len(w) for w in hook_expected.values()), sum(len(w) for w in expected.values()))

    def counts() -> tuple[checks.Seen, checks.Seen]:
        return (
            checks.webhook(rig.webhook.answers(), hook_expected),
            checks.sqs(rig.drain.messages(), expected),
        )

    def done() -> bool:
        hook, queue = counts()
        return (len(hook.delivered_at), len(queue.delivered_at)) == want and more()

    try:
        wait_until(done, rig.setup.recovery_timeout_s, what, 0.2)
    except HarnessError as exc:
        hook, queue = counts()
        raise HarnessError(
            f"{exc}: webhook {len(hook.delivered_at)} of {want[0]}, sqs "
            f"{len(queue.delivered_at)} of {want[1]}; {(hook.problems + queue.problems)[:3]}"
        ) from None
