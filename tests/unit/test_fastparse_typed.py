"""Typed GetRecords decoding (msgspec) changes nothing the worker sees (issue 15).

For generated pages, plausible and hostile, sent as JSON bytes through the `before-parse`
hook: the typed path and the orjson path give the same records (what `detect` reads of
them and its decisions), the same unreadable records, the same next iterator and the
same dead-letter JSON; a page the typed decoding refuses takes the orjson path itself,
and one orjson refuses too is left whole for botocore's parser, as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fakes.notify import MemoryDeadLetters
from tests.fakes.partial import RecordsOnly
from tests.unit.test_hostile_records import SHARD, materialize, pages, rig
from worker.batch.settle import Item, Unreadable
from worker.core.detect import detect
from worker.core.models import StreamRecord
from worker.core.records import number_attr, string_attr
from worker.poller.fastparse import RAW_PAGE, _parse_get_records, _parse_untyped
from worker.poller.stream import Page, StreamSource
from worker.state.dlq import UNPARSEABLE_SINK

NOW = 1_714_557_600.0
# The attributes the worker reads (detect.py), and so all typed decoding keeps.
READ = {"Keys": ("PK", "SK"), "NewImage": ("Status", "Amount", "UserID"), "OldImage": ("Status",)}


class ParsedClient(RecordsOnly):
    """Stands in for the Streams client: GetRecords answers with a parsed response."""

    def __init__(self, parsed: dict[str, Any]) -> None:
        self._parsed = parsed

    def get_records(self, *, ShardIterator: str, Limit: int = 0) -> dict[str, Any]:  # noqa: N803
        del ShardIterator, Limit
        return self._parsed


def hooked(body: bytes, *, typed: bool) -> tuple[dict[str, Any], bytes]:
    """The parsed response the hook hands botocore, and the body it leaves it."""
    response: dict[str, Any] = {"status_code": 200, "body": body}
    parsed: dict[str, Any] = {}
    if typed:
        _parse_get_records(response, parsed)
    else:
        _parse_untyped(response, parsed)  # the path before typed decoding
    return parsed, response["body"]


def read(parsed: dict[str, Any]) -> Page:
    return StreamSource(ParsedClient(parsed)).read(SHARD, "iterator")


def seen(item: Item) -> Any:
    """All the worker reads of an item: fields, attributes, verdict and dead letter."""
    if isinstance(item, Unreadable):
        return item
    reads = ((item.keys, READ["Keys"]), (item.new_image, READ["NewImage"]))
    reads += ((item.old_image, READ["OldImage"]),)
    attrs = [
        (f(image, name), image is None, image is not None and "Status" in image)
        for image, names in reads
        for f in (string_attr, number_attr)
        for name in names
    ]
    fields = (item.shard_id, item.event_id, item.event_name, item.sequence_number)
    letter = json.dumps(item.full_images(), default=str)
    return fields, item.created_at_s, attrs, detect(item, NOW), letter


def assert_same_as_orjson(body: bytes) -> str:
    """Which path the page took: typed, orjson, or botocore."""
    typed, typed_left = hooked(body, typed=True)
    plain, plain_left = hooked(body, typed=False)
    if not plain:  # orjson refuses: so must the typed decoding, for botocore's parser
        assert typed == {}
        assert typed_left == body
        return "botocore"
    assert typed_left == plain_left == b"{}"
    mine, theirs = read(typed), read(plain)
    assert mine.next_iterator == theirs.next_iterator
    assert [seen(item) for item in mine.records] == [seen(item) for item in theirs.records]
    return "typed" if RAW_PAGE in typed else "orjson"


# -- strategies: hostile pages, and the JSON only bytes can carry ----------------------------

AWKWARD_JSON = [
    '"\\ud800"',  # a lone surrogate escape: orjson refuses, and so must msgspec
    "[" * 1100 + "]" * 1100,  # nesting past orjson's limit
    "[" * 900 + "]" * 900,
    "123456789012345678901234567890",  # beyond 64 bits
    "-0.0",
    "1e308",
    "null",
    "true",
    '{"S": 5}',
    '[{"S": "x"}]',
    '{"S": "x", "N": "1", "BOOL": true, "L": [], "M": {}}',
]
_SLOTS = (
    '{"eventID": "e1", "dynamodb": {"SequenceNumber": "7", %s}}',
    '{"eventID": "e1", "eventName": %s, "dynamodb": {"SequenceNumber": "7"}}',
    '{"eventID": %s, "dynamodb": {"SequenceNumber": "7"}}',
    '{"eventID": "e1", "dynamodb": %s}',
    "%s",
)
_PLACES = (
    '"ApproximateCreationDateTime": %s',
    '"Keys": {"PK": {"S": "USER#U1"}, "SK": %s}',
    '"Keys": %s',
    '"NewImage": {"Status": %s, "PK": {"S": "x"}}',
    '"NewImage": {"Status": {"S": "Shipped"}, "Other": %s}',
    '"OldImage": %s',
    '"SequenceNumber": %s',
    '"Unread": %s',
)


@st.composite
def awkward_records(draw: st.DrawFn) -> str:
    value = draw(st.sampled_from(AWKWARD_JSON))
    slot = draw(st.sampled_from(_SLOTS))
    if slot.startswith('{"eventID": "e1", "dynamodb": {'):
        return slot % (draw(st.sampled_from(_PLACES)) % value)
    return slot % value


@st.composite
def awkward_page(draw: st.DrawFn) -> bytes:
    """A page of plain records with one record of awkward JSON among them."""
    plain = draw(pages())[0]
    at = draw(st.integers(0, len(plain)))
    texts = [json.dumps(r) for r in materialize(plain)]
    texts.insert(at, draw(awkward_records()))
    return ('{"Records": [' + ", ".join(texts) + '], "NextShardIterator": "it"}').encode()


# -- the properties ----------------------------------------------------------------------


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(all_pages=pages())
def test_typed_and_orjson_paths_agree_on_hostile_pages(all_pages: list[list[Any]]) -> None:
    for raws in materialize(all_pages):
        body = {"Records": raws, "NextShardIterator": "it"}
        event(assert_same_as_orjson(json.dumps(body).encode()))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=awkward_page())
def test_typed_and_orjson_paths_agree_on_awkward_json(body: bytes) -> None:
    event(assert_same_as_orjson(body))


def test_a_plausible_page_is_decoded_typed() -> None:
    record = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1714557600.5,
            "Keys": {"PK": {"S": "USER#U1"}, "SK": {"S": "ORDER#O1"}},
            "NewImage": {"Status": {"S": "Shipped"}, "Amount": {"N": "12.5"}},
            "OldImage": {"Status": {"S": "Pending"}},
            "SequenceNumber": "101",
        },
    }
    body = json.dumps({"Records": [record, 5]}).encode()  # 5: not a record, untyped
    assert RAW_PAGE not in hooked(body, typed=True)[0]
    body = json.dumps({"Records": [record]}).encode()
    parsed, _ = hooked(body, typed=True)
    assert RAW_PAGE in parsed
    assert assert_same_as_orjson(body) == "typed"


def test_a_rejected_typed_record_is_dead_lettered_with_its_full_images() -> None:
    """The typed decoding skips `Note` and `Tags`; the DLQ entry still carries them."""
    unread = {"Note": {"S": "kept"}, "Tags": {"L": [{"S": "a"}]}, "Blob": {"B": "AAE="}}
    records = [
        {
            "eventID": f"e{sequence}",
            "eventName": "MODIFY",
            "dynamodb": {
                "ApproximateCreationDateTime": 1714557600,
                "Keys": {"PK": {"S": "USER#U1"}, "SK": {"S": f"ORDER#O{sequence}"}},
                "NewImage": {"PK": {"S": "USER#U1"}, **unread, **status},
                "OldImage": {"Status": {"S": "Pending"}, **unread},
                "SequenceNumber": str(sequence),
            },
        }
        for sequence, status in ((101, {"Status": {"S": "Shipped"}}), (102, {}))
    ]
    parsed, _ = hooked(json.dumps({"Records": records}).encode(), typed=True)
    assert RAW_PAGE in parsed
    page = read(parsed)
    test_rig = rig(frozenset())
    try:
        assert isinstance(test_rig.dlq, MemoryDeadLetters)
        test_rig.processor.process([r for r in page.records if isinstance(r, StreamRecord)])
    finally:
        test_rig.dispatcher.close()
    (letter,) = [x for x in test_rig.dlq.letters if x.sink == UNPARSEABLE_SINK]
    assert letter.sequence_number == "102"
    stored = json.loads(letter.record)
    assert stored["Keys"] == records[1]["dynamodb"]["Keys"]
    assert stored["NewImage"] == records[1]["dynamodb"]["NewImage"]
    assert stored["OldImage"]["Note"] == {"S": "kept"}


def test_json_orjson_refuses_but_msgspec_reads_is_read_typed_with_the_same_fields() -> None:
    """An unread 1e400 (orjson: out of range) went to botocore's parser before; typed
    decoding reads the page, and a reject's full images come back through `json`."""
    record = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"PK": {"S": "USER#U1"}, "SK": {"S": "ORDER#O1"}},
            "NewImage": {"Huge": {"N": "1"}},
            "SequenceNumber": "101",
        },
    }
    body = json.dumps({"Records": [record]}).replace('"1"}', "1e400}").encode()
    assert hooked(body, typed=False)[0] == {}  # orjson refuses
    (item,) = read(hooked(body, typed=True)[0]).records
    assert isinstance(item, StreamRecord)
    assert detect(item, NOW).reason == "no Status attribute"
    assert item.full_images()[1] == {"Huge": {"N": float("inf")}}


def test_escaped_names_are_read_as_orjson_reads_them() -> None:
    r"""`"New\u0049mage"` is `NewImage`: a decoder matching raw bytes would skip it."""
    body = (
        rb'{"Records": [{"event\u0049D": "e1", "eventName": "INSERT", "dynamodb": {'
        rb'"SequenceNumber": "7", "Keys": {"PK": {"S": "USER#U1"}, "S\u004b": {"S": "ORDER#1"}},'
        rb'"New\u0049mage": {"St\u0061tus": {"\u0053": "Shipped"}}}}]}'
    )
    assert assert_same_as_orjson(body) == "typed"
    (item,) = read(hooked(body, typed=True)[0]).records
    assert isinstance(item, StreamRecord)
    assert detect(item, NOW).notification is not None
