"""The fast GetRecords parser hands pages it cannot read to botocore's (suspected S3)."""

from __future__ import annotations

import json
from typing import Any

from worker.core.records import TypedRecord
from worker.poller.fastparse import RAW_PAGE, _parse_get_records

RECORD = {
    "eventID": "e1",
    "eventName": "INSERT",
    "dynamodb": {"SequenceNumber": "101", "Keys": {"PK": {"S": "USER#U1"}}},
}


def test_a_well_formed_page_is_decoded_typed_and_botocore_skips_the_body() -> None:
    body = json.dumps({"Records": [RECORD], "NextShardIterator": "it-2"}).encode()
    response: dict[str, Any] = {"status_code": 200, "body": body}
    parsed: dict[str, Any] = {}
    _parse_get_records(response, parsed)
    (record,) = parsed["Records"]
    assert isinstance(record, TypedRecord)
    assert (record.event_id, record.dynamodb.SequenceNumber) == ("e1", "101")
    assert parsed["NextShardIterator"] == "it-2"
    assert parsed[RAW_PAGE].body == body  # for the full images of a rejected record
    assert response["body"] == b"{}"


def test_a_page_typed_decoding_refuses_is_parsed_by_orjson_and_botocore_skips_it() -> None:
    """`{"S": 5}` is no Struct's: the page goes to orjson's dicts, exactly as before."""
    record = {**RECORD, "dynamodb": {"SequenceNumber": "101", "Keys": {"PK": {"S": 5}}}}
    response: dict[str, Any] = {"status_code": 200, "body": json.dumps({"Records": [record]})}
    parsed: dict[str, Any] = {}
    _parse_get_records(response, parsed)
    assert parsed["Records"] == [record]
    assert RAW_PAGE not in parsed
    assert response["body"] == b"{}"


def test_a_lone_surrogate_escape_falls_back_to_botocores_parser() -> None:
    """orjson rejects `\\ud800` (valid JSON, invalid Unicode): the page used to raise a
    JSONDecodeError that crash-looped the reader; now botocore parses it."""
    body = '{"Records": [{"eventID": "e1", "dynamodb": {"SequenceNumber": "101"}, "x": "\\ud800"}]}'
    response: dict[str, Any] = {"status_code": 200, "body": body.encode()}
    parsed: dict[str, Any] = {}
    _parse_get_records(response, parsed)  # no exception
    assert parsed == {}
    assert response["body"] == body.encode()  # left whole for botocore
    assert json.loads(body)["Records"][0]["x"] == "\ud800"  # which the json module reads


def test_nesting_deeper_than_orjson_allows_falls_back_too() -> None:
    deep = "[" * 1100 + "]" * 1100
    body = '{"Records": [], "deep": ' + deep + "}"
    response: dict[str, Any] = {"status_code": 200, "body": body.encode()}
    parsed: dict[str, Any] = {}
    _parse_get_records(response, parsed)
    assert parsed == {}
    assert response["body"] == body.encode()
