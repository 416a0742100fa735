"""The DLQ and dedup stores on the real state table (moto_server), and `worker dlq`."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from tests.conftest import MotoServer
from tests.contract import DLQ_LIST_FIELDS, ISO_UTC
from tests.fakes.notify import notification
from tests.fakes.receiver import Receiver, Reply
from worker import cli
from worker.aws import Clients
from worker.core.models import Notification, Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dedup import DedupStore
from worker.delivery.dispatch import BLOCKED, Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks.log import LogSink
from worker.delivery.sinks.webhook import WebhookSink
from worker.state.dlq import UNPARSEABLE_SINK, DeadLetter, DeadLetterStore
from worker.state.statetable import ensure_state_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE_TABLE = "orderstream-state"
APP = "orderstream"
WORKER = Path(sys.executable).parent / "worker"


@pytest.fixture
def dynamodb(moto_server: MotoServer) -> DynamoDBClient:
    del moto_server  # AWS_ENDPOINT_URL points the worker's clients at it
    client = Clients("us-east-1").dynamodb()
    assert ensure_state_table(client, STATE_TABLE) is True
    return client


@pytest.fixture
def store(dynamodb: DynamoDBClient) -> DeadLetterStore:
    return DeadLetterStore(dynamodb, STATE_TABLE, APP)


def letter(seq: str, order_id: str = "ORD1", sink: str = "webhook", **changes: Any) -> DeadLetter:
    change = dataclasses.replace(notification(order_id), id=f"evt-{seq}", sequence_number=seq)
    base = DeadLetter(
        id=f"{change.id}.{sink}",
        sink=sink,
        error="webhook: HTTP 503",
        attempts=8,
        first_attempt_at="2024-05-01T10:00:00.000Z",
        last_attempt_at="2024-05-01T10:05:00.000Z",
        shard_id=change.shard_id,
        sequence_number=seq,
        order_id=order_id,
        body=change.body(),
    )
    return dataclasses.replace(base, **changes)


# -- DeadLetterStore -------------------------------------------------------------------------


def test_a_dead_letter_round_trips_every_field(store: DeadLetterStore) -> None:
    entry = letter("4900000000000000000123")
    store.put(entry)
    assert list(store.entries()) == [entry]


def test_an_unparseable_record_keeps_the_raw_record(store: DeadLetterStore) -> None:
    entry = letter("77", sink=UNPARSEABLE_SINK, body=None, record='{"eventID":"e"}')
    entry = dataclasses.replace(entry, order_id=None)
    store.put(entry)
    (stored,) = store.entries()
    assert stored == entry
    assert (stored.body, stored.order_id, stored.record) == (None, None, '{"eventID":"e"}')


def test_entries_come_in_numeric_sequence_order(store: DeadLetterStore) -> None:
    """Sequence numbers vary in length: "1000" sorts after "99", not before."""
    for seq in ["1000", "99", "100000000000000000000000000000000001", "990", "5"]:
        store.put(letter(seq))
    assert [e.sequence_number for e in store.entries()] == [
        "5",
        "99",
        "990",
        "1000",
        "100000000000000000000000000000000001",
    ]


def test_putting_the_same_entry_again_is_a_no_op_and_update_overwrites(
    store: DeadLetterStore,
) -> None:
    """A replayed batch must not dead-letter a change twice (nor raise its hold twice)."""
    assert store.put(letter("10", attempts=2)) is True
    assert store.put(letter("10", attempts=5, error="webhook: HTTP 500")) is False
    (entry,) = store.entries()
    assert entry.attempts == 2
    store.update(letter("10", attempts=5, error="webhook: HTTP 500"))
    (entry,) = store.entries()
    assert (entry.attempts, entry.error) == (5, "webhook: HTTP 500")
    assert store.count() == 1


STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/Users/stream/2024-05-01T00:00:00.000"
STREAM_OF_BATCH = ""  # the dispatcher's own hold book when no reader passes one
OTHER_TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/Other/stream/2024-05-01T00:00:00.000"


def test_a_360_kb_non_ascii_body_fits_as_compressed_utf8(store: DeadLetterStore) -> None:
    """Defect 5: `ensure_ascii` stored a status of 120,000 `€` as 720 KB, over the item
    limit, so the entry could not be written and the shard replayed forever."""
    huge = dataclasses.replace(notification("ORD1"), new_status="€" * 120_000)
    entry = dataclasses.replace(letter("7"), body=huge.body(), stream_arn=STREAM)
    assert store.put(entry) is True
    (back,) = store.entries()
    assert back.body == huge.body()  # whole, round-tripped through UTF-8 and zlib


def test_a_body_too_large_even_compressed_leaves_a_minimal_entry(
    store: DeadLetterStore,
) -> None:
    noise = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(200_000))  # ~600 KB
    big = dataclasses.replace(notification("ORD1"), new_status=noise)
    entry = dataclasses.replace(letter("8"), body=big.body(), stream_arn=STREAM)
    assert store.put(entry) is True
    (back,) = store.entries()
    assert back.body is None
    assert back.size is not None
    assert back.size > 400 * 1024
    assert (back.id, back.sink, back.sequence_number, back.order_id) == (
        entry.id,
        "webhook",
        "8",
        "ORD1",
    )


def test_a_dead_letter_holds_its_order_until_it_is_deleted(store: DeadLetterStore) -> None:
    first = dataclasses.replace(letter("1"), stream_arn=STREAM, user_id="USR1")
    second = dataclasses.replace(letter("2"), stream_arn=STREAM, user_id="USR1")
    store.put(first)
    store.put(second)
    store.put(second)  # a replay: no second count
    (hold,) = store.held(STREAM)
    assert (hold.user_id, hold.order_id, hold.sink) == ("USR1", "ORD1", "webhook")
    assert store.held(OTHER_TABLE) == set()  # another table never inherits it
    store.delete(first)
    assert store.held(STREAM) == {hold}
    store.delete(second)
    assert store.held(STREAM) == set()


def test_with_a_ttl_entries_and_their_hold_expire_together(dynamodb: DynamoDBClient) -> None:
    """ORDERSTREAM_DLQ_TTL_DAYS (suspected item of the security review: no retention)."""
    now = [1_714_557_600.0]
    store = DeadLetterStore(dynamodb, STATE_TABLE, APP, ttl_days=14, clock=lambda: now[0])
    store.put(dataclasses.replace(letter("1"), stream_arn=STREAM, user_id="USR1"))
    item = dynamodb.query(
        TableName=STATE_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"APP#{APP}#DLQ"}},
    )["Items"][0]
    assert int(item["expires_at"]["N"]) == int(now[0]) + 14 * 86400
    assert len(store.held(STREAM)) == 1
    now[0] += 15 * 86400  # past the TTL, before DynamoDB got round to deleting it
    assert store.held(STREAM) == set()


def test_a_failed_redrive_keeps_the_entry_s_expiry_and_body(dynamodb: DynamoDBClient) -> None:
    """`update` (a failed `worker dlq redrive`) once rewrote the whole item without its
    expiry: the hold expired and released the order, the dead letter stayed for ever."""
    now = [1_714_557_600.0]
    store = DeadLetterStore(dynamodb, STATE_TABLE, APP, ttl_days=14, clock=lambda: now[0])
    entry = dataclasses.replace(letter("1"), stream_arn=STREAM, user_id="USR1")
    store.put(entry)
    now[0] += 86400
    store.update(dataclasses.replace(entry, attempts=9, error="webhook: HTTP 503"))
    item = dynamodb.query(
        TableName=STATE_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"APP#{APP}#DLQ"}},
    )["Items"][0]
    assert int(item["expires_at"]["N"]) == int(now[0] - 86400) + 14 * 86400
    (back,) = store.entries()
    assert (back.attempts, back.error, back.body) == (9, "webhook: HTTP 503", entry.body)


def test_without_a_ttl_nothing_expires(store: DeadLetterStore, dynamodb: DynamoDBClient) -> None:
    store.put(letter("1"))
    (item,) = dynamodb.query(
        TableName=STATE_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"APP#{APP}#DLQ"}},
    )["Items"]
    assert "expires_at" not in item


def test_delete_and_filter(store: DeadLetterStore) -> None:
    first, second, other = letter("1"), letter("2"), letter("3", order_id="ORD2")
    for entry in (first, second, other):
        store.put(entry)
    assert [e.id for e in store.entries(lambda e: e.order_id == "ORD1")] == [first.id, second.id]
    store.delete(first)
    assert [e.id for e in store.entries()] == [second.id, other.id]


def test_a_long_error_is_truncated(store: DeadLetterStore) -> None:
    store.put(letter("1", error="x" * 5000))
    (entry,) = store.entries()
    assert len(entry.error) == 2000


def test_apps_do_not_see_each_others_entries(
    dynamodb: DynamoDBClient, store: DeadLetterStore
) -> None:
    store.put(letter("1"))
    assert list(DeadLetterStore(dynamodb, STATE_TABLE, "other-app").entries()) == []


# -- DedupStore ------------------------------------------------------------------------------


def test_dedup_store_on_the_state_table(dynamodb: DynamoDBClient) -> None:
    now = [1_700_000_000.0]
    dedup = DedupStore(dynamodb, table=STATE_TABLE, app=APP, ttl_s=3600, clock=lambda: now[0])
    ids = [f"evt-{i}" for i in range(130)]  # 6 writes of at most 25, 2 reads of at most 100
    dedup.remember(ids)
    assert dedup.seen([*ids, "evt-unknown"]) == set(ids)
    item = dynamodb.get_item(
        TableName=STATE_TABLE, Key={"pk": {"S": f"APP#{APP}#DEDUP#evt-0"}, "sk": {"S": "ID"}}
    )["Item"]
    assert item["expires_at"] == {"N": str(1_700_000_000 + 3600)}
    now[0] += 3600
    assert dedup.seen(ids[:3]) == set()  # expired, even if DynamoDB has not deleted it yet


def test_the_state_table_expires_dedup_items_by_ttl(dynamodb: DynamoDBClient) -> None:
    ttl = dynamodb.describe_time_to_live(TableName=STATE_TABLE)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == "expires_at"


def test_dispatch_with_dedup_skips_a_replay(dynamodb: DynamoDBClient, receiver: Receiver) -> None:
    dedup = DedupStore(
        dynamodb, table=STATE_TABLE, app=APP, ttl_s=3600, clock=lambda: 1_700_000_000.0
    )
    dispatcher = make_dispatcher(receiver, DeadLetterStore(dynamodb, STATE_TABLE, APP), dedup)
    batch = [notification("ORD1", i) for i in range(3)]
    try:
        assert dispatcher.dispatch(batch) == [Outcome.DELIVERED] * 3
        assert dispatcher.dispatch(batch) == [Outcome.DUPLICATE] * 3
    finally:
        dispatcher.close()
    assert len(receiver.requests) == 3


# -- dead letters made by the dispatcher, then `worker dlq` ------------------------------------


def make_dispatcher(
    receiver: Receiver, dlq: DeadLetterStore, dedup: DedupStore | None = None
) -> Dispatcher:
    return Dispatcher(
        sinks={"webhook": WebhookSink(receiver.url, None, timeout_s=5.0)},
        rules=parse_rules(None, None, ("webhook",)),
        policy=RetryPolicy(max_attempts=2, base_s=0.001, cap_s=0.005),
        dlq=dlq,
        stats=Stats(),
        concurrency=4,
        dedup=dedup,
        sleep=lambda _: None,
    )


def change(order_id: str, seq: str, old: str | None, new: str) -> Notification:
    return dataclasses.replace(
        notification(order_id, old=old, new=new), id=f"evt-{order_id}-{seq}", sequence_number=seq
    )


# Three orders; ORD1's sequence numbers differ in length, so only a numeric sort is right.
BATCH = [
    change("ORD1", "98", "Pending", "Processing"),
    change("ORD2", "99", None, "Pending"),
    change("ORD1", "990", "Processing", "Shipped"),
    change("ORD3", "995", "Pending", "Cancelled"),
    change("ORD2", "999", "Pending", "Processing"),
    change("ORD1", "1000", "Shipped", "Delivered"),
]
IN_SEQUENCE = sorted(BATCH, key=lambda n: int(n.sequence_number))


@pytest.fixture
def dead_letters(receiver: Receiver, store: DeadLetterStore) -> list[DeadLetter]:
    """The BATCH dead-lettered for real: the receiver answers 503, two attempts each."""
    receiver.always(Reply(503))
    dispatcher = make_dispatcher(receiver, store)
    try:
        assert dispatcher.dispatch(BATCH) == [Outcome.DEAD_LETTERED] * len(BATCH)
    finally:
        dispatcher.close()
    return list(store.entries())


@pytest.fixture
def worker_env(
    cli_env: dict[str, str], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Settings for `worker dlq`, in os.environ (in-process runs) and returned (scripts)."""
    settings = {
        "ORDERSTREAM_SINKS": "webhook",
        "ORDERSTREAM_WEBHOOK_URL": receiver.url,
        "ORDERSTREAM_MAX_ATTEMPTS": "2",
        "ORDERSTREAM_RETRY_BASE_MS": "1",
        "ORDERSTREAM_RETRY_CAP_MS": "5",
        "ORDERSTREAM_RETRY_SCHEDULE": "off",  # the DLQ right after the burst, no lane
        "ORDERSTREAM_LOG_FORMAT": "json",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    yield {**cli_env, **settings}
    structlog.reset_defaults()  # cli.main configured logging on a captured stdout


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def summary(stdout: str) -> dict[str, int]:
    """The redrive's one summary line among the JSON log lines."""
    (line,) = [x for x in map(json.loads, stdout.splitlines()) if "event" not in x]
    return dict(line)


def run_on_a_tty(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the console script with its stdout on a pseudo-terminal, as in a shell."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(WORKER), *argv], stdout=follower, stderr=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode()


def test_the_dispatcher_dead_letters_with_every_field(
    dead_letters: list[DeadLetter], receiver: Receiver
) -> None:
    assert [e.id for e in dead_letters] == [f"{n.id}.webhook" for n in IN_SEQUENCE]
    firsts = {"evt-ORD1-98", "evt-ORD2-99", "evt-ORD3-995"}
    for entry, sent in zip(dead_letters, IN_SEQUENCE, strict=True):
        assert entry.body == sent.body()
        assert (entry.sink, entry.order_id) == ("webhook", sent.order_id)
        assert (entry.shard_id, entry.sequence_number) == (sent.shard_id, sent.sequence_number)
        assert ISO_UTC.match(entry.first_attempt_at)
        assert entry.first_attempt_at <= entry.last_attempt_at
        if sent.id in firsts:
            assert (entry.attempts, entry.error) == (2, "webhook: HTTP 503")
        else:  # held back behind the order's failed change, never sent
            assert (entry.attempts, entry.error) == (0, BLOCKED)
    keys = [r.header("Idempotency-Key") or "" for r in receiver.requests]
    assert sorted(keys) == sorted([*firsts, *firsts])


def test_dlq_list_then_redrive_all_with_the_console_script(
    dead_letters: list[DeadLetter],
    receiver: Receiver,
    store: DeadLetterStore,
    worker_env: dict[str, str],
) -> None:
    failed_keys = [r.header("Idempotency-Key") for r in receiver.requests]
    # `--json` and a terminal side by side, to keep the test fast
    listing = subprocess.Popen(
        [str(WORKER), "dlq", "list", "--json"],
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tty_code, table = run_on_a_tty(["dlq", "list"], worker_env)
    stdout, stderr = listing.communicate(timeout=60)

    assert listing.returncode == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["id"] for r in rows] == [e.id for e in dead_letters]
    for row, entry in zip(rows, dead_letters, strict=True):
        assert set(row) == DLQ_LIST_FIELDS
        assert row == {
            "id": entry.id,
            "sink": "webhook",
            "order_id": entry.order_id,
            "attempts": entry.attempts,
            "error": entry.error,
            "first_attempt_at": entry.first_attempt_at,
            "last_attempt_at": entry.last_attempt_at,
            "shard_id": entry.shard_id,
            "sequence_number": entry.sequence_number,
            "body": entry.body,
        }

    assert tty_code == 0
    lines = table.splitlines()
    assert lines[0].split() == ["id", "sink", "order_id", "attempts", "last_attempt_at", "error"]
    assert [line.split()[0] for line in lines[1:]] == [e.id for e in dead_letters]
    assert "{" not in table  # a table, not JSON

    receiver.always(Reply(200))  # the receiver recovers
    before = len(receiver.requests)
    result = subprocess.run(
        [str(WORKER), "dlq", "redrive", "--all"],
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout) == {"redriven": 6, "failed": 0, "skipped": 0}
    redriven = receiver.requests[before:]
    assert [r.header("Idempotency-Key") for r in redriven] == [n.id for n in IN_SEQUENCE]
    assert [r.json() for r in redriven] == [n.body() for n in IN_SEQUENCE]
    assert set(failed_keys) <= {r.header("Idempotency-Key") for r in redriven}
    assert store.count() == 0


def test_redrive_by_id_sends_only_that_entry(
    dead_letters: list[DeadLetter],
    receiver: Receiver,
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.always(Reply(200))
    before = len(receiver.requests)
    target = next(e for e in dead_letters if e.order_id == "ORD3")  # its order's first
    code, out, _ = run_in_process(["dlq", "redrive", "--id", target.id], capsys)
    assert code == 0
    assert summary(out) == {"redriven": 1, "failed": 0, "skipped": 0}
    assert [r.header("Idempotency-Key") for r in receiver.requests[before:]] == [
        target.body["id"] if target.body else None
    ]
    assert [e.id for e in store.entries()] == [e.id for e in dead_letters if e.id != target.id]


def test_redrive_by_id_never_sends_a_change_before_an_earlier_one_of_its_order(
    dead_letters: list[DeadLetter],
    receiver: Receiver,
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by the second review: `--id` of an order's later change sent it while its
    earlier changes were still in the DLQ."""
    receiver.always(Reply(200))
    before = len(receiver.requests)
    later = [e for e in dead_letters if e.order_id == "ORD1"][1]

    code, out, _ = run_in_process(["dlq", "redrive", "--id", later.id], capsys)

    assert code == 1
    assert summary(out) == {"redriven": 0, "failed": 1, "skipped": 0}
    assert receiver.requests[before:] == []
    assert [e.id for e in store.entries()] == [e.id for e in dead_letters]


def test_redrive_by_order_sends_that_order_in_sequence(
    dead_letters: list[DeadLetter],
    receiver: Receiver,
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.always(Reply(200))
    before = len(receiver.requests)
    code, out, _ = run_in_process(["dlq", "redrive", "--order", "ORD1"], capsys)
    assert code == 0
    assert summary(out) == {"redriven": 3, "failed": 0, "skipped": 0}
    sent = receiver.requests[before:]
    assert [r.header("Idempotency-Key") for r in sent] == [
        "evt-ORD1-98",
        "evt-ORD1-990",
        "evt-ORD1-1000",
    ]
    assert {e.order_id for e in store.entries()} == {"ORD2", "ORD3"}
    assert store.count() == 3
    # The order is released: its hold went with its last entry.
    assert {h.order_id for h in store.held(STREAM_OF_BATCH)} == {
        "ORD2",
        "ORD3",
    }


def test_a_redriven_entry_is_deleted_only_after_its_sink_flushed(
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S4: the entry (and its hold) went before the log sink's buffered line was
    written, so a crash right then lost the notification and its dead letter."""
    store.put(dataclasses.replace(letter("5", sink="log"), stream_arn=STREAM, user_id="USR1"))
    monkeypatch.setenv("ORDERSTREAM_SINKS", "log")
    steps: list[str] = []
    real_flush, real_delete = LogSink.flush, DeadLetterStore.delete

    def flush(self: LogSink) -> None:
        steps.append("flush")
        real_flush(self)

    def delete(self: DeadLetterStore, entry: DeadLetter) -> None:
        steps.append("delete")
        real_delete(self, entry)

    monkeypatch.setattr(LogSink, "flush", flush)
    monkeypatch.setattr(DeadLetterStore, "delete", delete)
    code, out, err = run_in_process(["dlq", "redrive", "--all"], capsys)
    assert code == 0
    assert steps[:2] == ["flush", "delete"]
    assert '"id":"evt-5"' in err.replace(" ", "")  # the log sink writes to the log: stderr
    assert summary(out) == {"redriven": 1, "failed": 0, "skipped": 0}  # stdout: the answer


def test_a_failing_redrive_keeps_the_entry_and_counts_the_attempts(
    dead_letters: list[DeadLetter],
    receiver: Receiver,
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.always(Reply(503))
    before = len(receiver.requests)
    code, out, _ = run_in_process(["dlq", "redrive", "--order", "ORD1"], capsys)
    assert code == 1
    assert summary(out) == {"redriven": 0, "failed": 3, "skipped": 0}
    # the first change was tried twice more; the later two wait behind it, unsent
    sent = receiver.requests[before:]
    assert [r.header("Idempotency-Key") for r in sent] == ["evt-ORD1-98"] * 2
    after = {e.id: e for e in store.entries()}
    assert set(after) == {e.id for e in dead_letters}
    old = {e.id: e for e in dead_letters}
    first = after["evt-ORD1-98.webhook"]
    assert first.attempts == old[first.id].attempts + 2 == 4
    assert first.error == "webhook: HTTP 503"
    assert first.first_attempt_at == old[first.id].first_attempt_at
    assert first.last_attempt_at > old[first.id].last_attempt_at
    assert first.body == old[first.id].body
    for held in ("evt-ORD1-990.webhook", "evt-ORD1-1000.webhook"):
        assert after[held] == old[held]


def test_a_redrive_after_a_400_then_recovery(
    dead_letters: list[DeadLetter],
    receiver: Receiver,
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A permanent answer is tried once; the next redrive, once fixed, empties the DLQ."""
    receiver.always(Reply(200))
    receiver.script(Reply(400))
    before = len(receiver.requests)
    code, _, _ = run_in_process(["dlq", "redrive", "--order", "ORD3"], capsys)
    assert code == 1
    assert len(receiver.requests) == before + 1
    code, _, _ = run_in_process(["dlq", "redrive", "--order", "ORD3"], capsys)
    assert code == 0
    assert {e.order_id for e in store.entries()} == {"ORD1", "ORD2"}


def test_redrive_of_an_unknown_id_exits_2(
    store: DeadLetterStore, worker_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_in_process(["dlq", "redrive", "--id", "nope.webhook"], capsys)
    assert code == 2
    assert err.splitlines() == ["worker: error: --id: no dead letter 'nope.webhook'"]


def test_redrive_needs_the_entries_sinks_configured(
    dead_letters: list[DeadLetter],
    store: DeadLetterStore,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERSTREAM_SINKS", "log")
    code, _, err = run_in_process(["dlq", "redrive", "--all"], capsys)
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("worker: error: ORDERSTREAM_SINKS: ")
    assert store.count() == len(dead_letters)


def test_redrive_all_skips_and_keeps_unparseable_records(
    store: DeadLetterStore,
    receiver: Receiver,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = letter("5", sink=UNPARSEABLE_SINK, body=None, record="{}")
    bad = dataclasses.replace(bad, order_id=None)
    good = letter("6")
    store.put(bad)
    store.put(good)
    code, out, _ = run_in_process(["dlq", "redrive", "--all"], capsys)
    assert code == 0
    assert summary(out) == {"redriven": 1, "failed": 0, "skipped": 1}
    assert [e.id for e in store.entries()] == [bad.id]
    code, out, _ = run_in_process(["dlq", "list", "--json"], capsys)
    (row,) = [json.loads(x) for x in out.splitlines()]
    assert (row["sink"], row["record"], row["body"]) == (UNPARSEABLE_SINK, "{}", None)


def test_dlq_list_without_a_region_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    try:
        code, _, err = run_in_process(["dlq", "list", "--json"], capsys)
    finally:
        structlog.reset_defaults()
    assert code == 2
    (line,) = err.splitlines()
    assert line == "worker: error: no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)"


def test_dlq_list_off_a_terminal_prints_json_lines(
    store: DeadLetterStore, worker_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store.put(letter("7"))
    code, out, _ = run_in_process(["dlq", "list"], capsys)  # no --json; stdout is a pipe
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["id"] == letter("7").id
    assert set(row) == DLQ_LIST_FIELDS


def test_redrive_needs_a_target(
    store: DeadLetterStore, worker_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store.put(letter("7"))
    code, _, err = run_in_process(["dlq", "redrive"], capsys)
    assert code == 2
    (line,) = err.splitlines()
    assert "--id" in line
    assert "--all" in line
    assert store.count() == 1


# -- found by the adversarial review of issue 11 ------------------------------------------


def test_a_hold_for_very_long_ids_still_fits_the_sort_key(store: DeadLetterStore) -> None:
    """A legal item (PK 1 KB, SK 900 B) once made the hold's sort key pass 1,024 bytes:
    every dead-letter write failed and the shard stalled for good."""
    user, order = "u" * 1000, "o" * 900
    entry = dataclasses.replace(letter("1", order_id=order), stream_arn=STREAM, user_id=user)
    assert store.put(entry) is True
    (hold,) = store.held(STREAM)
    assert (hold.user_id, hold.order_id) == (user, order)
    assert len(hold.sort_key.encode()) <= 1024
    (back,) = store.entries()
    assert (back.order_id, back.user_id) == (order, user)  # whole, never truncated
    store.delete(back)
    assert store.held(STREAM) == set()


def test_a_minimal_entry_holds_its_order_in_a_redrive_until_dropped(
    store: DeadLetterStore,
    receiver: Receiver,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A minimal entry (no body) was skipped as 'unparseable' and the order's later
    change sent past it; the hold then stayed forever."""
    minimal = dataclasses.replace(
        letter("1"), stream_arn=STREAM, user_id="USR1", body=None, size=700_000
    )
    later = dataclasses.replace(letter("2"), stream_arn=STREAM, user_id="USR1")
    store.put(minimal)
    store.put(later)
    receiver.always(Reply(200))
    before = len(receiver.requests)

    code, out, _ = run_in_process(["dlq", "redrive", "--order", "ORD1"], capsys)
    assert code == 1
    assert summary(out) == {"redriven": 0, "failed": 2, "skipped": 0}
    assert receiver.requests[before:] == []  # nothing sent past the unsendable one

    code, out, _ = run_in_process(["dlq", "drop", "--id", minimal.id], capsys)
    assert (code, summary(out)) == (0, {"dropped": 1})
    code, out, _ = run_in_process(["dlq", "redrive", "--order", "ORD1"], capsys)
    assert summary(out) == {"redriven": 1, "failed": 0, "skipped": 0}
    assert store.held(STREAM) == set()


def test_a_failed_redrive_updates_the_entry_in_place(
    store: DeadLetterStore,
    receiver: Receiver,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The retried entry lost its stream and user: it was written as a second entry
    under another key (and a bogus hold lowered when that copy was deleted)."""
    store.put(dataclasses.replace(letter("1", attempts=1), stream_arn=STREAM, user_id="USR1"))
    receiver.always(Reply(400))
    code, _, _ = run_in_process(["dlq", "redrive", "--all"], capsys)
    assert code == 1
    (entry,) = store.entries()
    assert (entry.attempts, entry.stream_arn, entry.user_id) == (2, STREAM, "USR1")
    assert len(store.held(STREAM)) == 1


def test_a_300_character_order_id_is_redriven_by_order_and_released(
    store: DeadLetterStore,
    receiver: Receiver,
    worker_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    order = "A" * 300
    store.put(dataclasses.replace(letter("1", order_id=order), stream_arn=STREAM, user_id="U"))
    receiver.always(Reply(200))
    code, out, _ = run_in_process(["dlq", "redrive", "--order", order], capsys)
    assert (code, summary(out)) == (0, {"redriven": 1, "failed": 0, "skipped": 0})
    assert store.held(STREAM) == set()
