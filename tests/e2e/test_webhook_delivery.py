"""The webhook sink end to end: `worker run` against a real HTTP receiver on 127.0.0.1.

The issue's acceptance scenario, as a user runs it: a receiver that answers 503 twice
then 200 gets exactly three signed POSTs under one `Idempotency-Key`; a receiver that
stays down puts the change in the DLQ, and `worker dlq redrive` delivers it under the
same key once the receiver is back; a restart in the middle of retries loses nothing.
Standard Webhooks signatures are checked twice: with an HMAC-SHA256 written from the
RFC 2104 definition (tests/contract.py), not the `hmac` module the sink uses, and with
the `standardwebhooks` package from PyPI, an implementation we did not write.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import wait_until
from tests.contract import (
    BODY_KEYS,
    DLQ_LIST_FIELDS,
    ISO_UTC,
    legacy_signature_of,
    standard_signature_of,
    whsec,
)
from tests.fakes.processes import ScriptProcess, logged_at
from tests.fakes.receiver import Receiver, Reply, Request

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

KEY = b"e2e-acceptance-key-7Hq2-Z9-32by!"
SECRET = whsec(KEY)


def signed_by(request: Request, key: bytes) -> bool:
    """Both verifiers agree: our RFC 2104 HMAC finds the `v1` signature of `key` among
    the request's, and the `standardwebhooks` package verifies the request with it."""
    msg_id, stamp = str(request.header("webhook-id")), str(request.header("webhook-timestamp"))
    expected = standard_signature_of(key, msg_id, stamp, request.body)
    ours = expected in str(request.header("webhook-signature")).split(" ")
    try:
        Webhook(whsec(key)).verify(request.body, request.headers)
    except WebhookVerificationError:
        theirs = False
    else:
        theirs = True
    assert ours == theirs, (ours, theirs)
    return ours


# -- helpers -----------------------------------------------------------------------------


def webhook_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        "ORDERSTREAM_SINKS": "webhook",
        "ORDERSTREAM_WEBHOOK_URL": receiver.url,
        "ORDERSTREAM_WEBHOOK_SECRET": SECRET,
        "ORDERSTREAM_RETRY_BASE_MS": "20",
        "ORDERSTREAM_RETRY_CAP_MS": "100",
        **extra,
    }


def posts_for(receiver: Receiver, order_id: str, new_status: str) -> list[Request]:
    return [
        r
        for r in receiver.requests
        if r.json()["order_id"] == order_id and r.json()["new_status"] == new_status
    ]


def events_for(worker: ScriptProcess, event: str, notification_id: str) -> list[dict[str, Any]]:
    return [e for e in worker.named(event) if e.get("notification_id") == notification_id]


def started_with_seed_delivered(start_worker: StartWorker, env: dict[str, str]) -> ScriptProcess:
    """A webhook worker that has delivered the seed's three inserts (answered 200)."""
    worker = start_worker(extra_env=env)
    wait_until(lambda: len(worker.named("notification.sent")) == 3, timeout=20)
    return worker


def dlq_entries(run_cli: RunCli) -> list[dict[str, Any]]:
    result = run_cli("worker", "dlq", "list", "--json")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def stop(worker: ScriptProcess) -> None:
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


def check_post(request: Request, key: str) -> dict[str, Any]:
    """One POST as the contract says: JSON, keyed, signed over the raw body."""
    assert request.method == "POST"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Idempotency-Key") == key
    assert request.header("webhook-id") == key
    assert signed_by(request, KEY)
    assert not signed_by(request, KEY[::-1])  # the check can fail
    assert request.header("X-Orderstream-Signature") is None  # legacy: only when asked
    body: dict[str, Any] = request.json()
    assert set(body) == set(BODY_KEYS)
    assert body["id"] == key
    assert ISO_UTC.match(body["occurred_at"])
    return body


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_two_503s_then_200_make_three_signed_posts_under_one_key(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver
) -> None:
    worker = started_with_seed_delivered(start_worker, webhook_env(receiver))
    receiver.fail_times(2)  # the next two requests get 503, then 200 again

    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: len(worker.named("notification.sent")) == 4, timeout=10)

    posts = posts_for(receiver, "ORD1002", "Shipped")
    assert len(posts) == 3
    key = posts[0].header("Idempotency-Key")
    assert key
    bodies = [check_post(post, key) for post in posts]
    assert len({post.body for post in posts}) == 1  # the same bytes on every attempt
    body = bodies[0]
    assert body["type"] == "order.status_changed"
    assert (body["user_id"], body["order_id"]) == ("USR001", "ORD1002")
    assert (body["old_status"], body["new_status"], body["amount"]) == (
        "Processing",
        "Shipped",
        "30",
    )

    retries = events_for(worker, "notification.retry", key)
    assert [e["attempt"] for e in retries] == [1, 2]
    assert all(e["error"] == "webhook: HTTP 503" and e["delay_ms"] >= 0 for e in retries)
    (sent,) = events_for(worker, "notification.sent", key)
    assert sent["attempt"] == 3
    assert sent["sink"] == "webhook"
    assert not worker.named("notification.dead_lettered")
    stop(worker)


@pytest.mark.usefixtures("seeded")
def test_a_change_that_exhausts_its_attempts_is_dead_lettered_then_redriven_under_its_key(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver
) -> None:
    env = webhook_env(receiver, ORDERSTREAM_MAX_ATTEMPTS="2", ORDERSTREAM_RETRY_SCHEDULE="off")
    worker = started_with_seed_delivered(start_worker, env)
    receiver.always(Reply(503))  # the receiver is down

    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: worker.named("notification.dead_lettered"), timeout=10)
    stop(worker)

    failed = posts_for(receiver, "ORD1002", "Shipped")
    assert len(failed) == 2  # MAX_ATTEMPTS
    key = failed[0].header("Idempotency-Key")
    assert key
    body = check_post(failed[1], key)

    (entry,) = dlq_entries(run_cli)
    assert set(entry) >= DLQ_LIST_FIELDS
    assert entry["id"] == f"{key}.webhook"
    assert (entry["sink"], entry["order_id"], entry["attempts"]) == ("webhook", "ORD1002", 2)
    assert entry["error"] == "webhook: HTTP 503"
    assert ISO_UTC.match(entry["first_attempt_at"])
    assert ISO_UTC.match(entry["last_attempt_at"])
    assert entry["first_attempt_at"] <= entry["last_attempt_at"]
    assert entry["shard_id"] == body["shard_id"]
    assert entry["sequence_number"] == body["sequence_number"]
    assert entry["body"] == body  # the whole notification is kept, not a pointer

    receiver.always(Reply(200))  # back up
    result = run_cli("worker", "dlq", "redrive", "--all", extra_env=env)
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary == {"redriven": 1, "failed": 0, "skipped": 0}

    posts = posts_for(receiver, "ORD1002", "Shipped")
    assert len(posts) == 3
    assert check_post(posts[-1], key) == body  # the same notification, the same key
    assert dlq_entries(run_cli) == []


@pytest.mark.usefixtures("seeded")
def test_a_restart_in_the_middle_of_retries_loses_nothing_and_keeps_the_key(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver
) -> None:
    shutdown_s = 5
    env = webhook_env(
        receiver, ORDERSTREAM_MAX_ATTEMPTS="100", ORDERSTREAM_SHUTDOWN_S=str(shutdown_s)
    )
    first = started_with_seed_delivered(start_worker, env)
    receiver.always(Reply(503))  # down for good, as far as this worker lives

    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: first.named("notification.retry"), timeout=10)
    key = first.named("notification.retry")[0]["notification_id"]

    signalled = time.time()  # just before the signal: an early bound on its instant
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=shutdown_s + 15) == 0  # a safety net: the budget is below
    # the summary line, the worker's last act, on its own clock (not this test's)
    (stopped,) = first.named("worker.stopped")
    assert logged_at(stopped) - signalled < shutdown_s
    assert events_for(first, "notification.interrupted", key)
    assert not first.named("notification.dead_lettered")
    assert dlq_entries(run_cli) == []  # interrupted is not given up on

    seen_before = len(receiver.requests)
    receiver.always(Reply(200))
    second = start_worker(extra_env=env)
    wait_until(lambda: second.named("notification.sent"), timeout=20)

    (sent,) = second.named("notification.sent")
    assert sent["notification_id"] == key
    assert sent["attempt"] == 1
    (redelivered,) = receiver.requests[seen_before:]  # only this one: the seed stays done
    body = check_post(redelivered, key)
    assert (body["order_id"], body["new_status"]) == ("ORD1002", "Shipped")
    stop(second)


@pytest.mark.usefixtures("seeded")
def test_rotation_signs_with_every_secret_and_legacy_only_when_asked(
    start_worker: StartWorker, receiver: Receiver
) -> None:
    """Two secrets: each alone verifies every request (receivers on the old secret and
    on the new one both accept). The legacy header, asked for, is the first key's."""
    old_key = b"e2e-the-old-key-being-retired-32"
    env = webhook_env(
        receiver,
        ORDERSTREAM_WEBHOOK_SECRET=f"{SECRET},{whsec(old_key)}",
        ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE="true",
    )
    worker = started_with_seed_delivered(start_worker, env)
    stop(worker)

    (warning,) = worker.named("webhook.legacy_signature_on")
    assert warning["level"] == "warning"
    requests = receiver.requests
    assert len(requests) == 3
    for request in requests:
        assert str(request.header("webhook-signature")).count("v1,") == 2
        assert signed_by(request, KEY)
        assert signed_by(request, old_key)
        assert not signed_by(request, b"e2e-a-key-that-signed-nothing!!!")
        assert request.header("X-Orderstream-Signature") == legacy_signature_of(KEY, request.body)
