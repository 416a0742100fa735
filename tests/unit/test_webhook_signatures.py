"""The webhook sink's real requests, as a real receiver on 127.0.0.1 got them, verified
with the `standardwebhooks` package from PyPI: an implementation we did not write, so a
mistake shared by our signer and our tests' own HMAC would still be caught."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.contract import legacy_signature_of, whsec
from tests.fakes.notify import notification
from tests.fakes.receiver import Receiver, Request
from worker.delivery.retrying import RetryPolicy, call_with_retry
from worker.delivery.sinks.signing import Signer, parse_secrets
from worker.delivery.sinks.webhook import WebhookSink

NEW_KEY = b"the-new-key-after-rotation-32by!"
OLD_KEY = b"the-old-key-before-rotation-32b!"
NEW, OLD = whsec(NEW_KEY), whsec(OLD_KEY)
WORKER_PAGE = Path(__file__).resolve().parents[2] / "docs" / "worker.md"


def send_one(receiver: Receiver, secrets: str, *, legacy: bool = False) -> Request:
    signer = Signer(keys=parse_secrets(secrets), legacy=legacy)
    webhook = WebhookSink(receiver.url, signer, timeout_s=2.0)
    try:
        webhook.send(notification("ORD1001", 7, old="Processing", new="Shipped"))
    finally:
        webhook.close()
    (request,) = receiver.requests
    return request


def test_the_reference_implementation_verifies_a_real_request(receiver: Receiver) -> None:
    request = send_one(receiver, NEW)
    body = Webhook(NEW).verify(request.body, request.headers)
    assert body["order_id"] == "ORD1001"
    assert request.header("webhook-id") == body["id"] == request.header("Idempotency-Key")
    assert abs(int(str(request.header("webhook-timestamp"))) - time.time()) < 60


def test_a_request_does_not_verify_tampered_or_with_another_secret(receiver: Receiver) -> None:
    request = send_one(receiver, NEW)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(request.body.replace(b"Shipped", b"Cancelled"), request.headers)
    forged_id = {**request.headers, "webhook-id": "another-id"}
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(request.body, forged_id)


def test_with_two_secrets_each_verifies_alone(receiver: Receiver) -> None:
    """Rotation: receivers still on the old secret and those on the new one both verify."""
    request = send_one(receiver, f"{NEW},{OLD}")
    assert str(request.header("webhook-signature")).count("v1,") == 2
    assert Webhook(NEW).verify(request.body, request.headers)["id"]
    assert Webhook(OLD).verify(request.body, request.headers)["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(b"a-key-that-signed-nothing-here!!")).verify(request.body, request.headers)


def test_the_legacy_header_only_when_asked(receiver: Receiver) -> None:
    plain = send_one(receiver, NEW)
    assert plain.header("X-Orderstream-Signature") is None
    with Receiver() as other:
        legacy = send_one(other, NEW, legacy=True)
    assert legacy.header("X-Orderstream-Signature") == legacy_signature_of(NEW_KEY, legacy.body)
    assert Webhook(NEW).verify(legacy.body, legacy.headers)["id"]  # the standard one too


@pytest.fixture
def ticking() -> Iterator[float]:
    """A clock that moves on 30 s per reading, from now (within the receivers' 5 min)."""
    start = float(int(time.time()))
    return (start + 30 * n for n in itertools.count())


def test_each_attempt_is_signed_at_its_own_time_under_one_id(
    receiver: Receiver, ticking: Iterator[float]
) -> None:
    """A retry carries a fresh timestamp, so a late attempt passes a receiver's age check;
    the id stays, so the receiver can drop a duplicate."""
    webhook = WebhookSink(
        receiver.url,
        Signer(keys=parse_secrets(NEW)),
        timeout_s=2.0,
        clock=lambda: next(ticking),
    )
    receiver.fail_times(2, status=503)
    change = notification()
    try:
        policy = RetryPolicy(3, 0.01, 0.01)
        sleeps: list[float] = []
        result = call_with_retry(
            lambda: webhook.send(change), policy, threading.Event(), {}, sleeps.append
        )
    finally:
        webhook.close()
    assert result.error is None
    requests = receiver.requests
    stamps = [int(str(r.header("webhook-timestamp"))) for r in requests]
    assert len(stamps) == 3
    assert stamps[1] > stamps[0]
    assert stamps[2] > stamps[1]
    assert {r.header("webhook-id") for r in requests} == {change.id}
    assert len({r.header("webhook-signature") for r in requests}) == 3
    for request in requests:
        assert Webhook(NEW).verify(request.body, request.headers)["id"] == change.id


def docs_verifier() -> Callable[..., bool]:
    """The `verified` function of docs/worker.md's "Signatures" section, as a reader copies it."""
    section = WORKER_PAGE.read_text("utf-8").split("\n### Signatures\n", 1)[1]
    source = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - our own docs' example, under test
    verified: Callable[..., bool] = namespace["verified"]
    return verified


def test_the_docs_verifier_accepts_ours_and_refuses_the_rest(receiver: Receiver) -> None:
    verified = docs_verifier()
    request = send_one(receiver, f"{NEW},{OLD}")
    assert verified(request.body, request.headers, NEW)
    assert verified(request.body, request.headers, OLD)
    assert not verified(request.body, request.headers, whsec(b"a-key-that-signed-nothing-here!!"))
    assert not verified(request.body + b" ", request.headers, NEW)
    stale = {**request.headers, "webhook-timestamp": str(int(time.time()) - 600)}
    assert not verified(request.body, stale, NEW)
