"""410 Gone -> disabled in the real state table (moto server) -> `worker sink enable`.

The sink is a real WebhookSink against a real HTTP receiver; the operator commands run
as the console script, as a user runs them.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from tests.conftest import MotoServer
from tests.fakes.clock import VirtualClock
from tests.fakes.notify import notification
from tests.fakes.processes import script
from tests.fakes.receiver import Receiver, Reply
from worker.aws import Clients
from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.delivery.breaker import BreakerPolicy, CircuitBreaker
from worker.delivery.sinks.guarded import GuardedSink
from worker.delivery.sinks.webhook import WebhookSink
from worker.state.sinkstate import SinkState, SinkStateStore
from worker.state.statetable import ensure_state_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE_TABLE = "orderstream-state"
APP = "orderstream"


@pytest.fixture
def dynamodb(moto_server: MotoServer) -> DynamoDBClient:
    del moto_server  # AWS_ENDPOINT_URL points the clients at it
    client = Clients("us-east-1").dynamodb()
    assert ensure_state_table(client, STATE_TABLE) is True
    return client


@pytest.fixture
def store(dynamodb: DynamoDBClient) -> SinkStateStore:
    return SinkStateStore(
        client=dynamodb, table=STATE_TABLE, app=APP, scope="Users", clock=lambda: 1.7e9
    )


def worker(cli_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **cli_env,
        "ORDERSTREAM_SINKS": "log,webhook",
        "ORDERSTREAM_WEBHOOK_URL": "http://127.0.0.1:9/hook",
    }
    return subprocess.run(
        [script("worker"), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def listed(cli_env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = worker(cli_env, "sink", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {row["sink"]: row for row in rows if "event" not in row}


def test_410_disables_the_sink_until_worker_sink_enable(
    store: SinkStateStore, receiver: Receiver, cli_env: dict[str, str]
) -> None:
    clock = VirtualClock()
    guarded = GuardedSink(
        sink=WebhookSink(receiver.url, None, 5.0),
        breaker=CircuitBreaker(policy=BreakerPolicy(), clock=clock),
        states=store,
        clock=clock,
        refresh_s=10,
    )
    receiver.always(Reply(410))
    with capture_logs() as logs, pytest.raises(DeliveryError) as caught:
        guarded.send(notification())
    assert caught.value.gone
    assert [(e["event"], e["log_level"]) for e in logs] == [("sink.disabled", "error")]
    assert store.read("webhook").disabled

    row = listed(cli_env)["webhook"]
    assert (row["disabled"], row["reason"], row["breaker"]) == (
        True,
        "webhook: HTTP 410 Gone",
        "closed",
    )
    assert row["since"]

    receiver.always(Reply(200))
    with pytest.raises(SinkUnavailableError):
        guarded.send(notification(seq=2))
    assert len(receiver.requests) == 1  # refused without a request

    enabled = worker(cli_env, "sink", "enable", "webhook")
    assert enabled.returncode == 0, enabled.stderr
    events = [json.loads(line) for line in enabled.stderr.splitlines()]  # its log: stderr
    assert [e["sink"] for e in events if e.get("event") == "sink.enable_requested"] == ["webhook"]
    lines = [json.loads(line) for line in enabled.stdout.splitlines()]  # the answer alone
    assert lines == [
        {
            "enabled": "webhook",
            "was_disabled": True,
            "reason": "webhook: HTTP 410 Gone",
        }
    ]
    assert listed(cli_env)["webhook"]["disabled"] is False

    clock.advance(10)  # the running worker re-reads the flag: no restart
    guarded.send(notification(seq=3))
    assert len(receiver.requests) == 2


def test_each_orders_table_has_its_own_sink_flags(
    store: SinkStateStore, dynamodb: DynamoDBClient
) -> None:
    """Found by an attack on issue 17: one app name on two tables shared the flag, so a
    410 from one table's webhook disabled the other table's healthy one."""
    other = SinkStateStore(
        client=dynamodb, table=STATE_TABLE, app=APP, scope="Archive", clock=lambda: 1.7e9
    )
    store.disable("webhook", "HTTP 410 Gone")
    store.publish_breaker("webhook", "open")
    assert store.read("webhook").disabled
    assert other.read("webhook") == SinkState(name="webhook")
    assert other.states() == {}


def test_the_breaker_state_is_published_on_transitions(
    store: SinkStateStore, receiver: Receiver, cli_env: dict[str, str]
) -> None:
    clock = VirtualClock()
    guarded = GuardedSink(
        sink=WebhookSink(receiver.url, None, 5.0),
        breaker=CircuitBreaker(policy=BreakerPolicy(failures=2), clock=clock),
        states=store,
        clock=clock,
    )
    receiver.always(Reply(503))
    for _ in range(2):
        with pytest.raises(DeliveryError):
            guarded.send(notification())
    assert listed(cli_env)["webhook"]["breaker"] == "open"
    assert store.read("webhook").breaker == "open"


def test_an_unknown_sink_is_one_line_and_exit_2(
    store: SinkStateStore, cli_env: dict[str, str]
) -> None:
    del store
    result = worker(cli_env, "sink", "enable", "webhok")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "worker: error: NAME: 'webhok' is not a sink with endpoint health: "
        "choose from webhook, sns, sqs, email, eventbridge"
    ]


def test_operator_commands_never_create_the_state_table(cli_env: dict[str, str]) -> None:
    client = Clients("us-east-1").dynamodb()
    result = worker(cli_env, "sink", "enable", "webhook")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    rows = listed(cli_env)
    assert rows["webhook"]["disabled"] is False
    assert client.list_tables()["TableNames"] == []
