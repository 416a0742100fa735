"""The webhook sink against a real HTTP receiver on 127.0.0.1 (tests/fakes/receiver.py)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.contract import BODY_KEYS, legacy_signature_of, whsec
from tests.fakes.flood import FRAMINGS, FloodReceiver
from tests.fakes.notify import notification
from tests.fakes.receiver import Receiver, Reply
from tests.fakes.tls import self_signed_context
from worker.core.errors import DeliveryError
from worker.delivery.retrying import RetryPolicy, call_with_retry
from worker.delivery.sinks.signing import Signer, parse_secrets
from worker.delivery.sinks.webhook import MAX_RESPONSE_BYTES, WebhookSink, retry_after_seconds

KEY = b"sink-unit-test-key-of-32-bytes!!"
SECRET = whsec(KEY)
SIGNER = Signer(keys=parse_secrets(SECRET))


@pytest.fixture
def sink(receiver: Receiver) -> Iterator[WebhookSink]:
    webhook = WebhookSink(receiver.url, SIGNER, timeout_s=2.0)
    yield webhook
    webhook.close()


def test_post_carries_the_design_body_and_headers(receiver: Receiver, sink: WebhookSink) -> None:
    change = notification("ORD1001", 7, old="Processing", new="Shipped")
    sink.send(change)
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Idempotency-Key") == change.id
    body = request.json()
    assert tuple(body) == BODY_KEYS
    assert body == {
        "type": "order.status_changed",
        "id": change.id,
        "occurred_at": "2024-05-01T10:00:00.000Z",
        "user_id": "USR1",
        "order_id": "ORD1001",
        "old_status": "Processing",
        "new_status": "Shipped",
        "amount": "50",
        "shard_id": "shardId-000001",
        "sequence_number": "1007",
    }


def test_an_insert_has_a_null_old_status(receiver: Receiver, sink: WebhookSink) -> None:
    sink.send(notification(old=None, new="Pending"))
    assert receiver.requests[0].json()["old_status"] is None


def test_no_signature_header_without_a_secret(receiver: Receiver) -> None:
    webhook = WebhookSink(receiver.url, None, timeout_s=2.0)
    try:
        webhook.send(notification())
    finally:
        webhook.close()
    (request,) = receiver.requests
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert request.header(name) is None
    assert request.header("X-Orderstream-Signature") is None
    assert request.header("Idempotency-Key") == notification().id


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(receiver: Receiver, sink: WebhookSink, status: int) -> None:
    receiver.always(Reply(status, body=b""))
    sink.send(notification())
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_transient(
    receiver: Receiver, sink: WebhookSink, status: int
) -> None:
    receiver.always(Reply(status))
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert caught.value.transient
    assert f"HTTP {status}" in str(caught.value)


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 410, 413, 422])
def test_other_statuses_are_permanent(receiver: Receiver, sink: WebhookSink, status: int) -> None:
    receiver.always(Reply(status))
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert not caught.value.transient
    assert caught.value.retry_after_s is None
    assert caught.value.gone is (status == 410)


def test_410_says_the_endpoint_is_gone(receiver: Receiver, sink: WebhookSink) -> None:
    receiver.always(Reply(410))
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert caught.value.gone
    assert "HTTP 410 Gone" in str(caught.value)


def test_429_carries_retry_after_in_seconds(receiver: Receiver, sink: WebhookSink) -> None:
    receiver.script(Reply(429, retry_after="7"))
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert caught.value.transient
    assert caught.value.retry_after_s == 7.0


def test_503_carries_retry_after_as_an_http_date(receiver: Receiver, sink: WebhookSink) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    receiver.script(Reply(503, retry_after=format_datetime(when, usegmt=True)))
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert caught.value.retry_after_s == pytest.approx(30, abs=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("Wed, 01 May 2024 10:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 09:59:00 GMT", 0.0),  # a date in the past: no wait
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    now = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC).timestamp()
    assert retry_after_seconds(value, now) == expected


def test_a_receiver_that_hangs_past_the_read_timeout_is_a_transient_error(
    receiver: Receiver,
) -> None:
    receiver.script(Reply(200, delay_s=30))
    webhook = WebhookSink(receiver.url, None, timeout_s=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError) as caught:
            webhook.send(notification())
    finally:
        webhook.close()
    assert caught.value.transient
    assert "Timeout" in str(caught.value)
    assert time.monotonic() - started < 5
    assert len(receiver.requests) == 1  # it did arrive: only the answer was late


def test_a_refused_connection_is_a_transient_error() -> None:
    webhook = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", None, timeout_s=1.0)
    try:
        with pytest.raises(DeliveryError) as caught:
            webhook.send(notification())
    finally:
        webhook.close()
    assert caught.value.transient
    assert caught.value.__cause__ is not None


def test_connections_are_pooled_and_reused(receiver: Receiver, sink: WebhookSink) -> None:
    for seq in range(5):
        sink.send(notification(seq=seq))
    requests = receiver.requests
    assert len(requests) == 5
    assert len({r.client_port for r in requests}) == 1


def test_concurrent_sends_share_a_bounded_pool(receiver: Receiver) -> None:
    """Ten threads, each sending three times over a pool of four: ports are reused."""
    webhook = WebhookSink(receiver.url, None, timeout_s=2.0, pool_size=4)
    gate = threading.Barrier(10)

    def send_three(worker: int) -> None:
        gate.wait()
        for seq in range(3):
            webhook.send(notification(f"ORD{worker}", seq))

    threads = [threading.Thread(target=send_three, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    webhook.close()
    requests = receiver.requests
    assert len(requests) == 30
    assert len({r.client_port for r in requests}) < 30


def test_fail_n_times_then_succeed_under_the_retry_policy(
    receiver: Receiver, sink: WebhookSink
) -> None:
    """The receiver fails three times; the fourth attempt lands, with the same key."""
    receiver.fail_times(3, status=503)
    sleeps: list[float] = []
    change = notification()
    result = call_with_retry(
        lambda: sink.send(change), RetryPolicy(5, 0.05, 1.0), threading.Event(), {}, sleeps.append
    )
    assert (result.count, result.error) == (4, None)
    assert len(sleeps) == 3
    requests = receiver.requests
    assert len(requests) == 4
    assert {r.header("Idempotency-Key") for r in requests} == {change.id}
    assert {r.header("webhook-id") for r in requests} == {change.id}
    assert len({r.body for r in requests}) == 1  # the same bytes each attempt


def test_429_retry_after_drives_the_wait_up_to_the_cap(
    receiver: Receiver, sink: WebhookSink
) -> None:
    receiver.script(Reply(429, retry_after="2"), Reply(429, retry_after="120"))
    sleeps: list[float] = []
    result = call_with_retry(
        lambda: sink.send(notification()),
        RetryPolicy(5, 0.01, 10.0),
        threading.Event(),
        {},
        sleeps.append,
    )
    assert result.error is None
    assert sleeps == [2.0, 10.0]


def test_400_is_given_up_at_once(receiver: Receiver, sink: WebhookSink) -> None:
    receiver.always(Reply(400, body=b'{"error":"bad"}'))
    sleeps: list[float] = []
    result = call_with_retry(
        lambda: sink.send(notification()), RetryPolicy(8), threading.Event(), {}, sleeps.append
    )
    assert result.count == 1
    assert result.error is not None
    assert not result.error.transient
    assert "HTTP 400" in str(result.error)
    assert sleeps == []
    assert len(receiver.requests) == 1


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tls=self_signed_context(tmp_path)) as server:
        yield server


def test_tls_certificates_are_verified_by_default(tls_receiver: Receiver) -> None:
    assert tls_receiver.url.startswith("https://")
    webhook = WebhookSink(tls_receiver.url, SIGNER, timeout_s=2.0)
    try:
        with pytest.raises(DeliveryError) as caught:
            webhook.send(notification())
    finally:
        webhook.close()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert tls_receiver.requests == []  # nothing was sent to an unverified host


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_turned_off(tls_receiver: Receiver) -> None:
    webhook = WebhookSink(tls_receiver.url, SIGNER, timeout_s=2.0, verify_tls=False)
    try:
        webhook.send(notification())
    finally:
        webhook.close()
    (request,) = tls_receiver.requests
    assert json.loads(request.body)["id"] == notification().id


# -- what the receiver sends back --------------------------------------------------------

MB = 1024 * 1024


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_huge_response_body_is_never_read(framing: str) -> None:
    """A receiver answering 200 with 300 MB: the sink reads at most MAX_RESPONSE_BYTES,
    drops the connection, and the delivery counts. Before, the whole body was read into
    memory (300 MB per delivery in flight)."""
    with FloodReceiver(body_bytes=300 * MB, framing=framing) as flood:
        webhook = WebhookSink(flood.url, None, timeout_s=10.0)
        tracemalloc.start()
        try:
            webhook.send(notification())  # no error: the status said delivered
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            webhook.close()
        assert flood.finished.acquire(timeout=60)
    assert MAX_RESPONSE_BYTES <= 64 * 1024  # the documented bound
    # What the kernel buffered before the hang-up (a few MB at most), never the body.
    assert flood.sent[0] < 64 * MB
    assert peak < 4 * MB


def test_an_error_status_with_a_huge_body_is_still_read_as_a_status() -> None:
    with FloodReceiver(status=503, body_bytes=300 * MB, framing="content-length") as flood:
        webhook = WebhookSink(flood.url, None, timeout_s=10.0)
        try:
            with pytest.raises(DeliveryError) as first:
                webhook.send(notification())
            assert flood.finished.acquire(timeout=60)
            with pytest.raises(DeliveryError) as second:  # the dropped connection is replaced
                webhook.send(notification())
        finally:
            webhook.close()
    assert first.value.transient
    assert "HTTP 503" in str(second.value)
    assert len(flood.sent) == 2  # a new connection for the second request
    assert max(flood.sent) < 64 * MB


def test_a_small_body_up_to_the_bound_keeps_the_connection(receiver: Receiver) -> None:
    receiver.always(Reply(200, body=b"x" * MAX_RESPONSE_BYTES))
    webhook = WebhookSink(receiver.url, None, timeout_s=2.0)
    try:
        for seq in range(3):
            webhook.send(notification(seq=seq))
    finally:
        webhook.close()
    assert len({r.client_port for r in receiver.requests}) == 1


def test_extra_headers_are_sent_and_never_replace_ours(receiver: Receiver) -> None:
    webhook = WebhookSink(
        receiver.url,
        Signer(keys=SIGNER.keys, legacy=True),
        timeout_s=2.0,
        headers={"Authorization": "Bearer t0k", "X-Tenant": "acme"},
    )
    try:
        webhook.send(notification())
    finally:
        webhook.close()
    (request,) = receiver.requests
    assert request.header("Authorization") == "Bearer t0k"
    assert request.header("X-Tenant") == "acme"
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Orderstream-Signature") == legacy_signature_of(KEY, request.body)
    assert request.header("webhook-id") == notification().id


def test_the_sinks_own_headers_win_over_extra_ones(receiver: Receiver) -> None:
    """Settings refuse these names; the sink does not rely on that alone."""
    webhook = WebhookSink(
        receiver.url,
        None,
        timeout_s=2.0,
        headers={
            "content-type": "text/plain",
            "Idempotency-Key": "forged",
            "x-orderstream-signature": "sha256=forged",
            "Webhook-Signature": "v1,forged",
            "webhook-id": "forged",
        },
    )
    try:
        webhook.send(notification())
    finally:
        webhook.close()
    (request,) = receiver.requests
    assert request.header("Content-Type") == "application/json"  # once, not joined
    assert request.header("Idempotency-Key") == notification().id
    assert request.header("X-Orderstream-Signature") is None  # no secret, no signature
    assert request.header("webhook-signature") is None
    assert request.header("webhook-id") is None
