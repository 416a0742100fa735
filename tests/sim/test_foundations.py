"""The simulation's own foundations: the state-table fake and the seeded runtime.

If these lie, the oracle's verdicts mean nothing, so they are tested against what
DynamoDB documents and what a crash must mean.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fakes.statetable import FakeDynamoDB
from tests.sim.runtime import Crashed, Process, ProcessRuntime, Scheduler, SimulationError
from worker.core.errors import LeaseLostError
from worker.state.checkpoints import Checkpoint, DynamoCheckpointStore
from worker.state.dlq import DeadLetter, DeadLetterStore
from worker.state.lease import Lease

T = "state"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_conditions_names_values_and_boolean_logic() -> None:
    db = FakeDynamoDB()
    db.put_item(TableName=T, Item={**_key("a", "1"), "n": {"N": "5"}, "o": {"S": "me"}})
    condition = "(#n > :low AND NOT #o <> :me) OR attribute_not_exists(pk)"
    names, values = {"#n": "n", "#o": "o"}, {":low": {"N": "4"}, ":me": {"S": "me"}}
    db.put_item(
        TableName=T,
        Item={**_key("a", "1"), "n": {"N": "6"}},
        ConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    with pytest.raises(ClientError) as refused:
        db.put_item(
            TableName=T,
            Item=_key("a", "1"),
            ConditionExpression="n BETWEEN :a AND :b",
            ExpressionAttributeValues={":a": {"N": "7"}, ":b": {"N": "9"}},
        )
    assert _code(refused) == "ConditionalCheckFailedException"


def test_update_set_add_remove_and_query_paging() -> None:
    db = FakeDynamoDB(page_items=2)
    for i in range(5):
        db.update_item(
            TableName=T,
            Key=_key("p", f"CHECKPOINT#{i}"),
            UpdateExpression="SET v = if_not_exists(v, :zero) + :one ADD c :one REMOVE gone",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
    db.put_item(TableName=T, Item=_key("p", "LEASE"))
    seen, kwargs = (
        [],
        {
            "TableName": T,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :c)",
            "ExpressionAttributeValues": {":p": {"S": "p"}, ":c": {"S": "CHECKPOINT#"}},
        },
    )
    while True:
        page = db.query(**kwargs)
        seen += [(i["sk"]["S"], i["v"]["N"], i["c"]["N"]) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert seen == [(f"CHECKPOINT#{i}", "1", "1") for i in range(5)]


def test_transaction_is_all_or_nothing_with_reasons() -> None:
    db = FakeDynamoDB()
    db.put_item(TableName=T, Item={**_key("a", "LEASE"), "owner": {"S": "other"}})
    with pytest.raises(ClientError) as cancelled:
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": T, "Item": _key("a", "X")}},
                {
                    "ConditionCheck": {
                        "TableName": T,
                        "Key": _key("a", "LEASE"),
                        "ConditionExpression": "#o = :me",
                        "ExpressionAttributeNames": {"#o": "owner"},
                        "ExpressionAttributeValues": {":me": {"S": "me"}},
                    }
                },
            ]
        )
    assert _code(cancelled) == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
    ]
    assert db.get_item(TableName=T, Key=_key("a", "X")) == {}


def test_item_size_limit_refuses_a_too_large_item_and_a_dead_letter_fits() -> None:
    db = FakeDynamoDB()
    with pytest.raises(ClientError) as refused:
        db.put_item(TableName=T, Item={**_key("a", "big"), "x": {"S": "€" * 140_000}})
    assert "Item size has exceeded" in str(refused.value)
    store = DeadLetterStore(db, T, "app")
    letter = DeadLetter(
        "e.webhook", "webhook", "413", 1, "t", "t", "s", "1", "o", {"x": "€" * 140_000}
    )
    assert store.put(letter) is True  # UTF-8 and compressed: it fits


def test_real_lease_and_fenced_checkpoints_run_on_the_fake() -> None:
    db: Any = FakeDynamoDB()
    now = [1000.0]
    mine, theirs = (Lease(db, T, "app", o, 10.0, clock=lambda: now[0]) for o in ("me", "them"))
    store = DynamoCheckpointStore(db, T, "app", mine, lambda: now[0])
    assert mine.try_acquire()
    assert not theirs.try_acquire()
    store.save("arn", Checkpoint("shard-1", "42", False))
    assert store.load_all("arn")["shard-1"].sequence_number == "42"
    now[0] += 11
    assert theirs.try_acquire()
    with pytest.raises(LeaseLostError):
        store.save("arn", Checkpoint("shard-1", "43", False))
    assert store.load_all("arn")["shard-1"].sequence_number == "42"


def test_a_crashed_process_writes_nothing_even_in_finally() -> None:
    sched = Scheduler(seed=1)
    process = Process("w")
    runtime = ProcessRuntime(sched, process)
    written: list[str] = []

    def worker() -> None:
        try:
            runtime.io(5.0)
            written.append("before crash")  # never reached: the crash comes at t=1
        finally:
            runtime.io(0.0)  # a fake call in a finally: raises Crashed
            written.append("in finally")

    def killer() -> None:
        sched.sleep(1.0)
        process.crashed = True
        sched.kill(process)

    sched.spawn("worker", process, worker)
    sched.spawn("killer", None, killer)
    sched.run(lambda: not any(t.alive for t in sched.tasks))
    assert written == []
    assert sched.now == 1.0


def test_a_task_waiting_forever_is_a_deadlock() -> None:
    sched = Scheduler(seed=1)
    process = Process("w")
    runtime = ProcessRuntime(sched, process)
    sched.spawn("stuck", process, lambda: runtime.event().wait())
    with pytest.raises(SimulationError, match="deadlock"):
        sched.run(lambda: False)
    process.exited = True
    sched.kill(process)
    sched.run(lambda: not any(t.alive for t in sched.tasks))


def test_crashed_is_not_an_exception() -> None:
    assert not issubclass(Crashed, Exception)
