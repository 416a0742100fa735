"""What a stream record means (docs/design.md section 5), and parsing raw records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.records import n, order_record, profile_record, recorded_page, s
from worker.core.detect import Verdict, detect
from worker.core.models import StreamRecord
from worker.core.records import RecordFormatError, parse_record

RECEIVED_AT = 1_714_560_000.0  # 2024-05-01T10:40:00Z


def parsed(raw: dict[str, Any], sequence: str = "101", event_id: str = "ev-1") -> StreamRecord:
    raw = {**raw, "eventID": raw.get("eventID", event_id)}
    raw["dynamodb"] = {**raw["dynamodb"], "SequenceNumber": sequence}
    return parse_record(raw, "shardId-1")


def decide(raw: dict[str, Any]) -> Any:
    return detect(parsed(raw), RECEIVED_AT)


# -- notify ---------------------------------------------------------------------------


def test_insert_notifies_with_no_old_status() -> None:
    decision = decide(order_record("INSERT", "USR001", "ORD1001", "Pending", amount="50"))

    assert decision.verdict is Verdict.NOTIFY
    assert decision.warning is None
    assert decision.notification.body() == {
        "type": "order.status_changed",
        "id": "ev-1",
        "occurred_at": "2024-05-01T10:00:00.000Z",
        "user_id": "USR001",
        "order_id": "ORD1001",
        "old_status": None,
        "new_status": "Pending",
        "amount": "50",
        "shard_id": "shardId-1",
        "sequence_number": "101",
    }


def test_modify_with_a_different_status_notifies_old_and_new() -> None:
    decision = decide(order_record("MODIFY", "USR001", "ORD1001", "Shipped", "Processing"))

    assert decision.verdict is Verdict.NOTIFY
    assert (decision.notification.old_status, decision.notification.new_status) == (
        "Processing",
        "Shipped",
    )


def test_modify_without_an_old_image_notifies_with_the_old_status_unknown() -> None:
    raw = order_record("MODIFY", "USR001", "ORD1001", "Shipped", "Processing")
    del raw["dynamodb"]["OldImage"]

    decision = decide(raw)

    assert decision.verdict is Verdict.NOTIFY
    assert decision.notification.old_status is None


def test_the_id_is_the_event_id_so_a_replay_carries_the_same_id() -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending", event_id="abc123")
    first: Any = detect(parsed(raw), RECEIVED_AT)
    again: Any = detect(parsed(raw), RECEIVED_AT + 3600)  # replayed an hour later

    assert first.notification.id == again.notification.id == "abc123"
    assert first.notification == again.notification


def test_a_record_without_creation_time_is_stamped_with_the_receive_time() -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending", created_at_s=None)

    assert decide(raw).notification.occurred_at == "2024-05-01T10:40:00.000Z"


# -- items written by other clients are first-class -------------------------------------


def test_missing_created_at_still_notifies() -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending")
    del raw["dynamodb"]["NewImage"]["CreatedAt"]

    assert decide(raw).verdict is Verdict.NOTIFY


@pytest.mark.parametrize(
    "amount", ["0", "50", "49.99", "12.3456", "1E+3", "0.000001", "98765432109876543210.1234567"]
)
def test_a_numeric_amount_of_any_scale_notifies_with_the_exact_digits(amount: str) -> None:
    decision = decide(order_record("INSERT", "USR001", "ORD1001", "Pending", amount=amount))

    assert decision.verdict is Verdict.NOTIFY
    assert decision.notification.amount == amount


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_amount_passes_through_unchanged(amount: Decimal) -> None:
    decision = decide(order_record("INSERT", "U1", "O1", "Pending", amount=str(amount)))

    assert decision.notification.amount == str(amount)


def test_a_missing_amount_still_notifies_with_no_amount() -> None:
    decision = decide(order_record("INSERT", "USR001", "ORD1001", "Pending", amount=None))

    assert decision.verdict is Verdict.NOTIFY
    assert decision.notification.amount is None


def test_an_unknown_status_notifies_with_a_warning() -> None:
    decision = decide(order_record("MODIFY", "USR001", "ORD1001", "Returned", "Delivered"))

    assert decision.verdict is Verdict.NOTIFY
    assert decision.notification.new_status == "Returned"
    assert decision.warning is not None
    assert "Returned" in decision.warning


def test_the_user_id_comes_from_the_item_when_the_pk_is_not_a_user_key() -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending")
    raw["dynamodb"]["Keys"]["PK"] = s("TENANT#acme")

    assert decide(raw).notification.user_id == "USR001"


# -- skip ---------------------------------------------------------------------------------


def test_modify_with_the_same_status_is_skipped() -> None:
    raw = order_record("MODIFY", "USR001", "ORD1001", "Processing", "Processing", amount="55")

    decision = decide(raw)

    assert decision.verdict is Verdict.SKIP
    assert decision.notification is None


def test_remove_is_skipped() -> None:
    assert decide(order_record("REMOVE", "USR001", "ORD1001", old_status="Pending")).verdict is (
        Verdict.SKIP
    )


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY", "REMOVE"])
def test_profile_items_are_skipped(event_name: str) -> None:
    assert decide(profile_record(event_name, "USR001")).verdict is Verdict.SKIP


# -- reject ---------------------------------------------------------------------------------


def _no_sk(raw: dict[str, Any]) -> None:
    del raw["dynamodb"]["Keys"]["SK"]


def _numeric_sk(raw: dict[str, Any]) -> None:
    raw["dynamodb"]["Keys"]["SK"] = n("7")


def _no_keys(raw: dict[str, Any]) -> None:
    del raw["dynamodb"]["Keys"]


def _empty_order_id(raw: dict[str, Any]) -> None:
    raw["dynamodb"]["Keys"]["SK"] = s("ORDER#")


def _no_new_image(raw: dict[str, Any]) -> None:
    del raw["dynamodb"]["NewImage"]


def _no_status(raw: dict[str, Any]) -> None:
    del raw["dynamodb"]["NewImage"]["Status"]


def _numeric_status(raw: dict[str, Any]) -> None:
    raw["dynamodb"]["NewImage"]["Status"] = n("2")


def _null_status(raw: dict[str, Any]) -> None:
    raw["dynamodb"]["NewImage"]["Status"] = {"NULL": True}


def _list_status(raw: dict[str, Any]) -> None:
    raw["dynamodb"]["NewImage"]["Status"] = {"L": [s("Pending")]}


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
@pytest.mark.parametrize(
    "damage",
    [
        _no_sk,
        _numeric_sk,
        _no_keys,
        _empty_order_id,
        _no_new_image,
        _no_status,
        _numeric_status,
        _null_status,
        _list_status,
    ],
)
def test_records_that_cannot_be_understood_are_rejected_with_a_reason(
    event_name: str, damage: Any
) -> None:
    raw = order_record(event_name, "USR001", "ORD1001", "Shipped", "Processing")
    damage(raw)

    decision = decide(raw)

    assert decision.verdict is Verdict.REJECT
    assert decision.reason
    assert decision.notification is None


def test_an_unknown_event_name_is_rejected() -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending")
    raw["eventName"] = "UPSERT"

    assert decide(raw).verdict is Verdict.REJECT


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),  # botocore
        1_714_557_600,  # JSON, epoch seconds
        1_714_557_600_000,  # the KCL adapter, epoch milliseconds
    ],
)
def test_creation_time_is_read_in_every_shape_it_arrives_in(stamp: Any) -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending")
    raw["dynamodb"]["ApproximateCreationDateTime"] = stamp

    assert parsed(raw).created_at_s == 1_714_557_600.0


def test_sequence_numbers_compare_as_integers() -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending")
    short, long = parsed(raw, sequence="999"), parsed(raw, sequence="1000")

    assert short.sequence < long.sequence
    assert short.sequence_number > long.sequence_number  # as strings they would not


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("eventID"), "eventID"),
        (lambda r: r["dynamodb"].pop("SequenceNumber"), "SequenceNumber"),
        (lambda r: r["dynamodb"].update(SequenceNumber="12ab"), "SequenceNumber"),
        (lambda r: r.pop("dynamodb"), "dynamodb"),
    ],
)
def test_a_record_without_id_or_sequence_is_a_format_error(change: Any, message: str) -> None:
    raw = order_record("INSERT", "USR001", "ORD1001", "Pending", event_id="ev-1")
    raw["dynamodb"]["SequenceNumber"] = "101"
    change(raw)

    with pytest.raises(RecordFormatError, match=message):
        parse_record(raw, "shardId-1")


def test_a_recorded_page_decides_record_by_record() -> None:
    page = recorded_page("get_records_orders.json")

    decisions: list[Any] = [
        detect(parse_record(r, "shardId-1"), RECEIVED_AT) for r in page["Records"]
    ]

    assert [d.verdict for d in decisions] == [
        Verdict.NOTIFY,  # INSERT Pending
        Verdict.SKIP,  # a profile
        Verdict.NOTIFY,  # Pending -> Processing
        Verdict.SKIP,  # the amount changed, the status did not
        Verdict.NOTIFY,  # another client's order: no CreatedAt, 4 decimals, "Returned"
        Verdict.SKIP,  # REMOVE
    ]
    other_client = decisions[4]
    assert other_client.notification.amount == "12.3456"
    assert other_client.notification.new_status == "Returned"
    assert other_client.warning is not None
    assert decisions[2].notification.occurred_at == "2024-05-01T10:01:00.000Z"


def test_a_recorded_page_of_unreadable_records() -> None:
    records = recorded_page("get_records_unreadable.json")["Records"]

    decisions = [detect(parse_record(r, "shardId-1"), RECEIVED_AT) for r in records[:3]]

    assert [d.verdict for d in decisions] == [Verdict.REJECT] * 3
    with pytest.raises(RecordFormatError):
        parse_record(records[3], "shardId-1")
