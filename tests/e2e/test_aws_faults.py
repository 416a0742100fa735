"""AWS faults between the worker and moto: the worker keeps going and loses nothing.

Every AWS call of `worker run` goes through tests/fakes/faultproxy.py; the writer talks
to moto directly. Faults are injected more times than botocore's own retries absorb
(5 attempts), so the worker's handling is what is tested.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import MotoServer, wait_until
from tests.fakes.faultproxy import FaultProxy
from tests.fakes.processes import ScriptProcess

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]
BEYOND_BOTOCORE = 6  # botocore standard mode makes 5 attempts

pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.slow]


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def worker(start_worker: StartWorker, proxy: FaultProxy) -> Iterator[ScriptProcess]:
    process = start_worker(extra_env={"AWS_ENDPOINT_URL": proxy.url})
    wait_until(lambda: len(process.notifications()) == 3, timeout=20)  # the seed
    yield process
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def _moves(worker: ScriptProcess) -> list[tuple[str, str | None, str]]:
    return [(n["order_id"], n["old_status"], n["new_status"]) for n in worker.notifications()]


@pytest.mark.parametrize(
    ("operation", "kind", "times", "event"),
    [
        ("GetRecords", "throttle", BEYOND_BOTOCORE, "stream.backoff"),
        ("GetRecords", "5xx", BEYOND_BOTOCORE, "stream.backoff"),
        ("GetRecords", "reset", BEYOND_BOTOCORE, "stream.backoff"),
        ("GetRecords", "expired", 1, "iterator.expired"),
        ("TransactWriteItems", "5xx", BEYOND_BOTOCORE, "stream.backoff"),
        ("GetRecords", "slow", 1, None),
    ],
)
def test_the_worker_rides_out_a_fault_and_delivers_every_change_once(
    run_cli: RunCli,
    proxy: FaultProxy,
    worker: ScriptProcess,
    *,
    operation: str,
    kind: str,
    times: int,
    event: str | None,
) -> None:
    proxy.inject(operation, kind, times, delay_s=2.0)
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: proxy.pending(operation) == 0, timeout=30)
    wait_until(lambda: ("ORD1002", "Processing", "Shipped") in _moves(worker), timeout=30)
    run_cli("writer", "set-status", "USR001", "ORD1001", "Delivered")
    wait_until(lambda: ("ORD1001", "Shipped", "Delivered") in _moves(worker), timeout=30)

    assert len(proxy.injected) == times
    ids = [n["id"] for n in worker.notifications()]
    assert len(ids) == len(set(ids)) == 5  # nothing lost, nothing sent twice
    if event is not None:
        logged = worker.named(event)
        assert len(logged) == 1  # logged once, with its context
        assert logged[0]["shard_id"].startswith("shardId-")
        assert logged[0].get("error") or logged[0].get("after_sequence")
    assert not worker.named("shard.crashed")


def test_a_trimmed_range_is_declared_as_data_loss_and_reading_goes_on(
    run_cli: RunCli, proxy: FaultProxy, worker: ScriptProcess
) -> None:
    proxy.inject("GetRecords", "trimmed", 1)
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: ("ORD1002", "Processing", "Shipped") in _moves(worker), timeout=30)

    losses = worker.named("data_loss")
    assert len(losses) == 1
    assert losses[0]["level"] == "error"
    assert losses[0]["reason"] == "trimmed"
    assert losses[0]["shard_id"].startswith("shardId-")
    assert "after_sequence" in losses[0]
    assert "before_sequence" in losses[0]
    # moto never really trims, so the replay from TRIM_HORIZON re-sends the seed under
    # the same ids: at-least-once, never a new id for an old change.
    by_id: dict[str, tuple[str, str | None, str]] = {}
    for n in worker.notifications():
        change = (n["order_id"], n["old_status"], n["new_status"])
        assert by_id.setdefault(n["id"], change) == change
