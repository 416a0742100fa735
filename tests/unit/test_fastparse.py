"""The fast GetRecords parser hands pages it cannot read to botocore's (suspected S3)."""

from __future__ import annotations

import json
from typing import Any

from worker.fastparse import _parse_get_records

RECORD = {
    "eventID": "e1",
    "eventName": "INSERT",
    "dynamodb": {"SequenceNumber": "101", "Keys": {"PK": {"S": "USER#U1"}}},
}


def test_a_page_orjson_reads_is_parsed_and_botocore_skips_the_body() -> None:
    response: dict[str, Any] = {"status_code": 200, "body": json.dumps({"Records": [RECORD]})}
    parsed: dict[str, Any] = {}
    _parse_get_records(response, parsed)
    assert parsed["Records"] == [RECORD]
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
    _parse_get_records(response, {})
    assert response["body"] == body.encode()
