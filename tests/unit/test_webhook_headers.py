"""ORDERSTREAM_WEBHOOK_HEADERS: a JSON object of extra headers, checked, never logged."""

from __future__ import annotations

import json

import pytest

from worker.core.errors import ConfigError
from worker.delivery.sinks.webhook_headers import RESERVED, WebhookHeadersError, parse_headers
from worker.settings import WorkerSettings

SETTING = "ORDERSTREAM_WEBHOOK_HEADERS"
TOKEN = "Bearer TokHdr9Qm2Xv7Lp4"


def test_a_json_object_becomes_the_headers() -> None:
    text = json.dumps({"Authorization": TOKEN, "X-Tenant": "acme; region=eu, 2"})
    assert parse_headers(text) == {"Authorization": TOKEN, "X-Tenant": "acme; region=eu, 2"}


@pytest.mark.parametrize("text", ["", "  ", "{}"])
def test_empty_means_no_extra_headers(text: str) -> None:
    assert parse_headers(text) == {}


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        "content-type",
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Idempotency-Key",
        "IDEMPOTENCY-KEY",
        "X-Orderstream-Signature",
        "webhook-id",
        "Webhook-Timestamp",
        "webhook-signature",
        "User-Agent",
        "Connection",
    ],
)
def test_headers_the_sink_sets_cannot_be_overridden(name: str) -> None:
    with pytest.raises(WebhookHeadersError, match="cannot be overridden"):
        parse_headers(json.dumps({name: "x"}))
    assert name.lower() in RESERVED


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"X-A": "1\\r\\nX-Evil: 1"}', "CR, LF or NUL"),
        ('{"X-A": "1\\nX-Evil: 1"}', "CR, LF or NUL"),
        ('{"X-A": "1\\r"}', "CR, LF or NUL"),
        ('{"X-A": "1\\u0000"}', "CR, LF or NUL"),
        ('{"X-A": "\\u001b[2J"}', "printable ASCII"),
        ('{"X-A": "caf\\u00e9"}', "printable ASCII"),
        ('{"X-A": 1}', "must be a string"),
        ('{"X-A": null}', "must be a string"),
        ('{"X A": "1"}', "not a valid header name"),
        ('{"X-A:": "1"}', "not a valid header name"),
        ('{"": "1"}', "not a valid header name"),
        ('{"X-A": "1", "x-a": "2"}', "given twice"),
        ('{"X-A": "1", "X-A": "2"}', "given twice"),
        ('["X-A", "1"]', "must be a JSON object"),
        ('"X-A: 1"', "must be a JSON object"),
        ("X-A: 1", "not a JSON object"),
        ('{"X-A": "' + "a" * 8193 + '"}', "over 8192 characters"),
    ],
)
def test_bad_headers_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(WebhookHeadersError) as caught:
        parse_headers(text)
    assert reason in str(caught.value)


def test_too_many_headers_are_refused() -> None:
    with pytest.raises(WebhookHeadersError, match="at most 32"):
        parse_headers(json.dumps({f"X-H{n}": "v" for n in range(33)}))


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"Authorization": TOKEN + "\r\nX: 1"}),  # bad value
        json.dumps({"Content-Type": TOKEN}),  # reserved name
        '{"Authorization": "' + TOKEN + '",}',  # bad JSON right after the value
        json.dumps({"Authorization": [TOKEN]}),
    ],
)
def test_no_error_repeats_a_value(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({SETTING: text})
    assert caught.value.setting == SETTING
    assert "TokHdr9Qm2Xv7Lp4" not in str(caught.value)


def test_the_start_up_summary_shows_names_not_values() -> None:
    settings = WorkerSettings.from_env(
        {
            SETTING: json.dumps({"Authorization": TOKEN}),
            "ORDERSTREAM_SINKS": "webhook",
            "ORDERSTREAM_WEBHOOK_URL": "http://127.0.0.1:8000/hook",
        }
    )
    assert settings.webhook_headers == {"Authorization": TOKEN}
    summary = settings.safe_summary()
    assert summary["webhook_headers"] == "Authorization"  # the names, one line of text
    assert "TokHdr9Qm2Xv7Lp4" not in json.dumps(summary, default=str)
