"""Hostile stream records through the real read-and-process path (property-based).

Pages of records that other clients, bugs or corruption could produce — missing
images, attributes of the wrong type, 400 KB items, unknown statuses, profiles and
items of other types, random JSON, records without an eventID or a SequenceNumber —
go through `StreamSource.read` (over a one-page fake client) and the real
`BatchProcessor` and `Dispatcher`, with a recording sink that refuses some deliveries
and an in-memory DLQ. Whatever arrives: nothing raises, every record that parses is
resolved, the checkpoint reaches the page's last record, the records docs/design.md
section 5 calls unreadable are dead-lettered with a reason, and every notification
body carries the section 6 fields with their types. The expected verdict of each
record is computed here from the design's rules, not by calling `detect`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.contract import ISO_UTC
from tests.fakes.notify import MemoryDeadLetters, RecordingSink
from tests.fakes.partial import RecordsOnly
from worker.batch.processor import BatchProcessor
from worker.batch.settle import Unreadable
from worker.core.errors import DeliveryError
from worker.core.models import Notification, StreamRecord
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.poller.stream import StreamSource
from worker.state.dlq import UNPARSEABLE_SINK

SHARD = "shardId-00000001714557600000-hostile1"
KNOWN_STATUSES = ("Pending", "Processing", "Shipped", "Delivered", "Cancelled")
HUGE = 400_000  # DynamoDB's item size limit is 400 KB
BODY_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "id": (str,),
    "occurred_at": (str,),
    "user_id": (str,),
    "order_id": (str,),
    "old_status": (str, type(None)),
    "new_status": (str,),
    "amount": (str, type(None)),
    "shard_id": (str,),
    "sequence_number": (str,),
}

# -- strategies --------------------------------------------------------------------------

texts = st.text(max_size=12)
# A 400 KB string is drawn as a short mark and expanded by `materialize` in the test, so
# Hypothesis never prints (or stores) 400 KB reprs of its examples.
HUGE_MARK = re.compile("\ue000HUGE(.)\ue001", re.DOTALL)
huge = st.builds(lambda ch: f"\ue000HUGE{ch}\ue001", st.characters(codec="utf-8"))
mostly_small = st.one_of(*[texts] * 9, huge)  # about one string in ten is 400 KB
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
json_any = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def typed(kind: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda value: {kind: value}, values)


wrong_attr = st.one_of(
    typed("N", texts),  # a number where a string belongs
    typed("S", st.integers() | st.none()),  # "S" holding a non-string
    st.just({"BOOL": True}),
    st.just({"NULL": True}),
    typed("L", st.lists(typed("S", texts), max_size=2)),
    json_any,  # not DynamoDB JSON at all
)
statuses = st.one_of(
    *[st.sampled_from(KNOWN_STATUSES)] * 6,
    st.sampled_from(["Returned", "", "shipped", "Shipped ", "ORDER#1"]),
    texts,
    huge,
)
amounts = st.one_of(
    st.sampled_from(["50", "0", "12.5", "-3", "1E+2", "0.000001", "9" * 38]),
    texts,  # DynamoDB never sends a non-number "N", a bug elsewhere might
)
ids = st.one_of(*[st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)] * 3, texts, huge)
created_at = st.one_of(
    st.floats(min_value=1e9, max_value=2e9),  # epoch seconds
    st.integers(min_value=10**12, max_value=2 * 10**12),  # epoch milliseconds (KCL)
    st.none(),
    texts,
    st.floats(),  # nan, inf, far past or future
    st.integers(),
)


@st.composite
def order_change(draw: st.DrawFn) -> dict[str, Any]:
    """The `dynamodb` section of a plausible order write by any client."""
    user_id, order_id = draw(ids), draw(ids)
    keys = {"PK": {"S": f"USER#{user_id}"}, "SK": {"S": f"ORDER#{order_id}"}}

    def image(status: str) -> dict[str, Any]:
        item: dict[str, Any] = {**keys, "UserID": {"S": user_id}, "Status": {"S": status}}
        if draw(st.booleans()):
            item["Amount"] = {"N": draw(amounts)}
        if draw(st.booleans()):
            item["CreatedAt"] = {"S": "2024-05-01T10:00:00.000Z"}
        if draw(st.integers(0, 9)) == 0:
            item["Blob"] = {"S": draw(huge)}  # a 400 KB item
        return item

    section: dict[str, Any] = {"Keys": keys, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    name = draw(st.sampled_from(["INSERT", "MODIFY", "MODIFY", "REMOVE"]))
    if name != "REMOVE":
        section["NewImage"] = image(draw(statuses))
    if name != "INSERT":
        section["OldImage"] = image(draw(statuses))
    stamp = draw(created_at)
    if stamp is not None:
        section["ApproximateCreationDateTime"] = stamp
    return {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": section}


def _other_item(draw: st.DrawFn, record: dict[str, Any]) -> None:
    sk = draw(st.sampled_from(["PROFILE", "INVOICE#1", "order#1", "ORDER", ""]) | texts)
    pk = draw(st.sampled_from(["USER#U1", "TENANT#9"]) | texts)
    section = record["dynamodb"]
    for part in (section["Keys"], section.get("NewImage"), section.get("OldImage")):
        if part is not None:
            part.update({"PK": {"S": pk}, "SK": {"S": sk}})


def _wrong_types(draw: st.DrawFn, record: dict[str, Any]) -> None:
    places = [("Keys", "PK"), ("Keys", "SK"), ("NewImage", "Status"), ("OldImage", "Status")]
    places += [("NewImage", "Amount"), ("NewImage", "UserID"), ("NewImage", "CreatedAt")]
    for part, name in draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)):
        if isinstance(record["dynamodb"].get(part), dict):
            record["dynamodb"][part][name] = draw(wrong_attr)


def _missing(draw: st.DrawFn, record: dict[str, Any]) -> None:
    part = draw(st.sampled_from(["Keys", "NewImage", "OldImage", "Status", "PK", "SK"]))
    section = record["dynamodb"]
    if part in ("Status", "PK", "SK"):
        for image in (section.get("NewImage"), section.get("Keys")):
            if image is not None:
                image.pop(part, None)
    else:
        section.pop(part, None)


def _garbage_parts(draw: st.DrawFn, record: dict[str, Any]) -> None:
    for part in draw(st.lists(st.sampled_from(["Keys", "NewImage", "OldImage"]), min_size=1)):
        record["dynamodb"][part] = draw(json_any)


def _garbage_section(draw: st.DrawFn, record: dict[str, Any]) -> None:
    record["dynamodb"] = draw(st.dictionaries(texts, json_any, max_size=4))


def _garbage_around(draw: st.DrawFn, record: dict[str, Any]) -> None:
    noise = draw(st.dictionaries(texts, json_any, max_size=3))
    record.update({k: v for k, v in noise.items() if k not in ("eventID", "dynamodb")})
    record["eventName"] = draw(st.sampled_from(["", "UPDATE", "insert"]) | texts)


DEFECTS = {
    "other_item": _other_item,
    "wrong_types": _wrong_types,
    "missing": _missing,
    "garbage_parts": _garbage_parts,
    "garbage_section": _garbage_section,
    "garbage_around": _garbage_around,
}


@st.composite
def stream_record(draw: st.DrawFn, sequence: str) -> Any:
    """One element of GetRecords' `Records`: plausible, or with one kind of defect."""
    defect = draw(st.sampled_from(["none"] * 4 + [*DEFECTS, "not_a_dict", "identity"]))
    if defect == "not_a_dict":
        return draw(json_scalar | st.lists(json_scalar, max_size=2))
    record = draw(order_change())
    if defect in DEFECTS:
        DEFECTS[defect](draw, record)
    record["eventID"] = f"evt-{sequence}"
    if isinstance(record["dynamodb"], dict):
        record["dynamodb"]["SequenceNumber"] = sequence
    if defect == "identity":  # what every stream record has, missing or mistyped
        which = draw(st.sampled_from(["no_id", "bad_id", "no_seq", "bad_seq"]))
        if which == "no_id":
            del record["eventID"]
        elif which == "bad_id":
            record["eventID"] = draw(st.sampled_from(["", 42, None]))
        elif which == "no_seq":
            del record["dynamodb"]["SequenceNumber"]
        else:
            record["dynamodb"]["SequenceNumber"] = draw(st.sampled_from(["", "12a", " 7", 7]))
    return record


@st.composite
def pages(draw: st.DrawFn) -> list[list[Any]]:
    """A few GetRecords pages; well-formed sequence numbers rise across them."""
    counter = itertools.count(draw(st.integers(1, 10**21)), draw(st.integers(1, 10**6)))
    count = draw(st.integers(1, 3))
    return [
        [draw(stream_record(str(next(counter)))) for _ in range(draw(st.integers(0, 8)))]
        for _ in range(count)
    ]


def materialize(value: Any) -> Any:
    """The drawn value with every huge mark expanded to its 400 KB string."""
    if isinstance(value, str):
        return HUGE_MARK.sub(lambda match: match.group(1) * HUGE, value)
    if isinstance(value, list):
        return [materialize(item) for item in value]
    if isinstance(value, dict):
        return {key: materialize(item) for key, item in value.items()}
    return value


# -- the oracle: docs/design.md section 5, written out independently -----------------------


@dataclass(frozen=True)
class Expected:
    verdict: str  # notify, skip, reject
    event_id: str = ""
    order_id: str = ""
    user_id: str = ""
    old_status: str | None = None
    new_status: str = ""
    amount: str | None = None


def _s(image: Any, name: str) -> str | None:
    value = image.get(name) if isinstance(image, dict) else None
    inner = value.get("S") if isinstance(value, dict) else None
    return inner if isinstance(inner, str) else None


def _n(image: Any, name: str) -> str | None:
    value = image.get(name) if isinstance(image, dict) else None
    inner = value.get("N") if isinstance(value, dict) else None
    return inner if isinstance(inner, str) else None


def parses(raw: Any) -> bool:
    """What every stream record has: a dynamodb section, a numeric sequence, an eventID."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("dynamodb"), Mapping):
        return False
    sequence = raw["dynamodb"].get("SequenceNumber")
    event_id = raw.get("eventID")
    return (
        isinstance(sequence, str)
        and sequence.isdigit()
        and bool(event_id)
        and (isinstance(event_id, str))
    )


def expected(raw: dict[str, Any]) -> Expected:  # noqa: PLR0911 - one exit per rule
    section = raw["dynamodb"]
    keys, new, old = section.get("Keys"), section.get("NewImage"), section.get("OldImage")
    pk, sk = _s(keys, "PK"), _s(keys, "SK")
    name = raw.get("eventName")
    if pk is None or sk is None:
        return Expected("reject")  # no order key
    if not sk.startswith("ORDER#"):
        return Expected("skip")  # a profile or another item type
    if name == "REMOVE":
        return Expected("skip")
    if name not in ("INSERT", "MODIFY") or not isinstance(new, dict) or sk == "ORDER#":
        return Expected("reject")  # not a change we understand, no NewImage, no order id
    new_status = _s(new, "Status")
    if new_status is None:
        return Expected("reject")  # a missing or non-string Status
    old_status = _s(old, "Status") if name == "MODIFY" else None
    if old_status == new_status:
        return Expected("skip")
    user_id = pk.removeprefix("USER#") if pk.startswith("USER#") else _s(new, "UserID") or ""
    return Expected(
        "notify",
        raw["eventID"],
        sk.removeprefix("ORDER#"),
        user_id,
        old_status,
        new_status,
        _n(new, "Amount"),
    )


# -- the rig -----------------------------------------------------------------------------


class OnePageClient(RecordsOnly):
    """Stands in for the Streams client: GetRecords answers with the given records."""

    def __init__(self, records: list[Any]) -> None:
        self._records = records

    def get_records(self, *, ShardIterator: str, Limit: int = 0) -> dict[str, Any]:  # noqa: N803
        assert Limit == 1000
        return {"Records": self._records, "NextShardIterator": f"{ShardIterator}+"}


@dataclass
class Rig:
    sink: RecordingSink
    dlq: MemoryDeadLetters
    dispatcher: Dispatcher
    processor: BatchProcessor
    stats: Stats


@st.composite
def refusals(draw: st.DrawFn) -> frozenset[int]:
    """Sequence numbers (mod 7) whose delivery the sink refuses, permanently."""
    return frozenset(draw(st.sets(st.integers(0, 6), max_size=2)))


def rig(refuse: frozenset[int]) -> Rig:
    def fail(notification: Notification, attempt: int) -> DeliveryError | None:
        del attempt
        if int(notification.sequence_number) % 7 in refuse:
            return DeliveryError("hook: HTTP 400", transient=False)
        return None

    sink = RecordingSink("hook", fail)
    dlq = MemoryDeadLetters()
    stats = Stats()
    dispatcher = Dispatcher(
        sinks={"hook": sink},
        rules=parse_rules(None, None, ("hook",)),
        policy=RetryPolicy(max_attempts=1, base_s=0.0, cap_s=0.0),
        dlq=dlq,
        stats=stats,
        concurrency=4,
        sleep=lambda _: None,
    )
    processor = BatchProcessor(dispatcher, dlq, stats, lambda: 1_714_557_600.0)
    return Rig(sink, dlq, dispatcher, processor, stats)


def check_body(notification: Notification, want: Expected, sequence: str) -> None:
    body = notification.body()
    assert set(body) == set(BODY_TYPES)
    for field, types in BODY_TYPES.items():
        assert isinstance(body[field], types), (field, body[field])
    assert body["type"] == "order.status_changed"
    assert ISO_UTC.match(body["occurred_at"])
    assert (body["id"], body["shard_id"], body["sequence_number"]) == (
        want.event_id,
        SHARD,
        sequence,
    )
    assert (body["order_id"], body["user_id"], body["amount"]) == (
        want.order_id,
        want.user_id,
        want.amount,
    )
    assert (body["old_status"], body["new_status"]) == (want.old_status, want.new_status)
    json.dumps(body)  # serialisable as it is, for every sink


# -- the property ------------------------------------------------------------------------


@pytest.mark.slow
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(all_pages=pages(), refuse=refusals())
def test_hostile_pages_never_raise_and_every_record_is_resolved(
    all_pages: list[list[Any]], refuse: frozenset[int]
) -> None:
    test_rig = rig(refuse)
    try:
        for raws in materialize(all_pages):
            check_page(test_rig, raws, refuse)
    finally:
        test_rig.dispatcher.close()


def check_page(test_rig: Rig, raws: list[Any], refuse: frozenset[int]) -> None:
    source = StreamSource(OnePageClient(raws))
    sent_before = len(test_rig.sink.delivered)
    letters_before = len(test_rig.dlq.letters)
    read_before = test_rig.stats.counts().get("records", 0)
    with capture_logs() as logs:
        page = source.read(SHARD, "iterator")
        records = [r for r in page.records if isinstance(r, StreamRecord)]
        result = test_rig.processor.process(records)

    well_formed = [raw for raw in raws if parses(raw)]
    assert [r.sequence_number for r in records] == [
        raw["dynamodb"]["SequenceNumber"] for raw in well_formed
    ]
    # The rest stay in their place, as Unreadable, for the settling core to dead-letter.
    assert len(page.records) - len(records) == len(raws) - len(well_formed)
    assert all(isinstance(r, Unreadable) for r in page.records if r not in records)
    assert page.next_iterator == "iterator+"

    # Every parsed record is resolved, and the checkpoint reaches the last one.
    assert test_rig.stats.counts().get("records", 0) - read_before == len(records)
    assert result.unresolved == 0
    assert result.checkpoint == (records[-1].sequence_number if records else None)

    wants = {
        raw["dynamodb"]["SequenceNumber"]: replace(expected(raw), event_id=raw["eventID"])
        for raw in well_formed
    }
    delivered = test_rig.sink.delivered[sent_before:]
    letters = test_rig.dlq.letters[letters_before:]
    sent = {n.sequence_number: n for n in delivered}
    refused = {x.sequence_number: x for x in letters if x.sink == "hook"}
    rejected = {x.sequence_number: x for x in letters if x.sink == UNPARSEABLE_SINK}
    assert len(sent) == len(delivered)  # each record delivered at most once
    assert len(refused) + len(rejected) == len(letters)  # and dead-lettered at most once

    by_verdict = Counter(want.verdict for want in wants.values())
    for verdict in by_verdict:
        event(verdict)
    assert len(sent) + len(refused) == by_verdict["notify"]  # one outcome per notification
    for sequence, want in wants.items():
        if want.verdict == "notify":
            assert (sequence in sent) != (sequence in refused), sequence
            if int(sequence) % 7 in refuse:
                assert sequence in refused  # refused by the sink: dead-lettered, not lost
            notification = sent.get(sequence)
            if notification is not None:
                check_body(notification, want, sequence)
            else:
                assert refused[sequence].body is not None
                assert refused[sequence].error
        elif want.verdict == "reject":
            letter = rejected[sequence]  # dead-lettered with the reason and the raw record
            assert letter.error.strip()
            assert letter.record
            assert letter.id == f"{want.event_id}.{UNPARSEABLE_SINK}"
        else:
            assert sequence not in sent
            assert sequence not in refused
            assert sequence not in rejected
    assert set(rejected) == {s for s, w in wants.items() if w.verdict == "reject"}

    rejected_logged = [e for e in logs if e["event"] == "record.rejected"]
    assert sorted(e["sequence_number"] for e in rejected_logged) == sorted(rejected)
    assert all(e["event_id"] and e["reason"] for e in rejected_logged)
    unknown = [e for e in logs if e["event"] == "status.unknown"]
    notified_unknown = [
        s for s, w in wants.items() if w.verdict == "notify" and w.new_status not in KNOWN_STATUSES
    ]
    assert len(unknown) == len(notified_unknown)
