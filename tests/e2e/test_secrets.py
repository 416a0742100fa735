"""Security end to end: secrets never reach any output, TLS is verified, http is refused.

- A full session (`worker run` with the webhook and log sinks at debug level, changes,
  a retry, a dead letter, `dlq list`, `dlq redrive`, `status`, the writer, errors of
  configuration and of AWS) with two distinctive webhook secrets (rotation, and the
  legacy header on) and AWS credentials: none appears anywhere in any process's stdout
  or stderr, neither as given (`whsec_...`) nor as its base64 or its key bytes.
- A webhook secret refused at start-up (plain, or not base64) exits 2 with one line
  naming the setting, and does not repeat the secret.
- TLS certificates are verified by default (a self-signed receiver is never posted
  to); ORDERSTREAM_WEBHOOK_VERIFY_TLS=false warns once at start, then delivers.
- `http://` to a non-loopback host without ORDERSTREAM_WEBHOOK_ALLOW_HTTP is refused
  at start-up (exit 2, one line naming the setting) before any connection is made.
- ORDERSTREAM_WEBHOOK_HEADERS values (an Authorization token) are sent, never logged;
  a URL with credentials in it is refused with a hint, never echoed.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.contract import whsec
from tests.fakes.processes import ScriptProcess
from tests.fakes.receiver import Receiver, Reply
from tests.fakes.tls import self_signed_context

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

WEBHOOK_KEY = "WebhookKeyQx7Rk2Vn9Lp4Tz8Wm3Yb6Hd5"  # text, so a leaked bytes repr shows it
WEBHOOK_SECRET = whsec(WEBHOOK_KEY.encode())
OLD_WEBHOOK_KEY = "OldWebhookKeyJs3Fw8Pk1Xo6Ga9Nb2"
OLD_WEBHOOK_SECRET = whsec(OLD_WEBHOOK_KEY.encode())
HEADER_TOKEN = "HdrTokenBn5Ty8Qw2Ez6Rc4"  # sent as `Authorization: Bearer ...`
AWS_SECRET = "AwsSecretKq4Nd8Hs2Jf7Lx5Cv1Bm9Zp3"
AWS_TOKEN = "AwsSessionTokenRt6Gy2Ue8Io4Pa1Sd7"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAORDERSTREAMTEST",
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_SESSION_TOKEN": AWS_TOKEN,
}
SECRETS = (
    WEBHOOK_SECRET,
    WEBHOOK_SECRET.removeprefix("whsec_"),
    WEBHOOK_KEY,
    OLD_WEBHOOK_SECRET.removeprefix("whsec_"),
    OLD_WEBHOOK_KEY,
    AWS_SECRET,
    AWS_TOKEN,
    HEADER_TOKEN,
)


class Transcript:
    """Every byte any process of the session wrote, to be searched for secrets."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []  # (what ran, what it wrote)

    def run(self, run_cli: RunCli, *args: str, env: dict[str, str], check: bool = True) -> Any:
        result = run_cli(*args, extra_env=env, check=check)
        self.outputs.append((" ".join(args), result.stdout + result.stderr))
        return result

    def worker(self, name: str, worker: ScriptProcess) -> None:
        lines = [json.dumps(e, ensure_ascii=False) for e in worker.snapshot()]
        lines += worker.other_lines + worker.stderr_lines
        self.outputs.append((name, "\n".join(lines)))

    def leaks(self) -> list[tuple[str, str]]:
        """(what ran, which secret or a 12-character piece of one) for every leak."""
        found = []
        for name, text in self.outputs:
            for secret in SECRETS:
                for piece in (secret, secret[:12], secret[-12:]):
                    if piece in text:
                        found.append((name, piece))
        return found


@pytest.mark.slow
@pytest.mark.usefixtures("seeded")
def test_no_secret_appears_in_any_output_of_a_full_session(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver
) -> None:
    transcript = Transcript()
    env = {
        **CREDENTIALS,
        "ORDERSTREAM_SINKS": "webhook,log",
        "ORDERSTREAM_WEBHOOK_URL": receiver.url,
        "ORDERSTREAM_WEBHOOK_SECRET": f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
        "ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE": "true",
        "ORDERSTREAM_WEBHOOK_HEADERS": json.dumps(
            {"Authorization": f"Bearer {HEADER_TOKEN}", "X-Tenant": "acme"}
        ),
        "ORDERSTREAM_LOG_LEVEL": "debug",
        "ORDERSTREAM_MAX_ATTEMPTS": "2",
        "ORDERSTREAM_RETRY_BASE_MS": "20",
        "ORDERSTREAM_RETRY_CAP_MS": "50",
    }
    worker = start_worker(extra_env=env)
    wait_until(lambda: len(worker.named("notification.sent")) == 3, timeout=20)

    receiver.fail_times(1)  # one retry
    transcript.run(run_cli, "writer", "set-status", "USR001", "ORD1002", "Shipped", env=env)
    wait_until(lambda: len(worker.named("notification.sent")) == 4, timeout=10)
    receiver.script(Reply(400))  # permanent: straight to the DLQ
    transcript.run(run_cli, "writer", "put-order", "USR002", "ORD2001", "--amount", "9", env=env)
    wait_until(lambda: worker.named("notification.dead_lettered"), timeout=10)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    transcript.worker("worker run", worker)

    transcript.run(run_cli, "writer", "orders", "USR001", env=env)
    transcript.run(run_cli, "worker", "status", "--json", env=env)
    listed = transcript.run(run_cli, "worker", "dlq", "list", "--json", env=env)
    transcript.run(run_cli, "worker", "dlq", "list", env=env)  # the table, too
    transcript.run(run_cli, "worker", "dlq", "redrive", "--all", env=env)
    bad_config = transcript.run(
        run_cli, "worker", "run", env={**env, "ORDERSTREAM_RETRY_CAP_MS": "1"}, check=False
    )
    console = {**env, "ORDERSTREAM_LOG_FORMAT": "console", "ORDERSTREAM_CONCURRENCY": "0"}
    bad_console = transcript.run(run_cli, "worker", "run", env=console, check=False)
    no_aws = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    aws_down = transcript.run(run_cli, "worker", "dlq", "list", env=no_aws, check=False)
    bad_writer = transcript.run(run_cli, "writer", "orders", "bad#id", env=env, check=False)
    # A header setting refused for its value (a line break) or its name names neither value.
    injected = json.dumps({"Authorization": f"Bearer {HEADER_TOKEN}\r\nX-Evil: 1"})
    bad_header = transcript.run(
        run_cli, "worker", "run", env={**env, "ORDERSTREAM_WEBHOOK_HEADERS": injected}, check=False
    )
    reserved = json.dumps({"Idempotency-Key": HEADER_TOKEN})
    bad_name = transcript.run(
        run_cli, "worker", "run", env={**env, "ORDERSTREAM_WEBHOOK_HEADERS": reserved}, check=False
    )

    # The session did what it should, so there was something to leak.
    assert worker.named("notification.retry")
    assert worker.named("record.skipped")  # debug level was on: the profiles
    (started,) = worker.named("worker.started")
    assert started["webhook_secret"] == "***"
    assert started["webhook_url"] == receiver.url
    assert started["webhook_headers"] == "Authorization,X-Tenant"  # the names only
    assert worker.named("webhook.legacy_signature_on")
    assert all(r.header("X-Orderstream-Signature") for r in receiver.requests)
    assert all(str(r.header("webhook-signature")).count("v1,") == 2 for r in receiver.requests)
    assert {r.header("Authorization") for r in receiver.requests} == {f"Bearer {HEADER_TOKEN}"}
    assert len(listed.stdout.splitlines()) == 1
    assert (bad_config.returncode, bad_console.returncode) == (2, 2)
    assert aws_down.returncode != 0
    assert bad_writer.returncode == 2
    assert (bad_header.returncode, bad_name.returncode) == (2, 2)
    assert "ORDERSTREAM_WEBHOOK_HEADERS" in bad_header.stderr
    assert "Idempotency-Key" in bad_name.stderr
    assert len(transcript.outputs) == 14

    assert transcript.leaks() == []


@pytest.mark.usefixtures("seeded")
def test_a_token_in_the_webhook_query_string_is_used_but_not_logged(
    start_worker: StartWorker, receiver: Receiver
) -> None:
    token = "UrlTokenMw3Xc7Vb1Nq"
    url = f"{receiver.url}?token={token}"
    worker = start_worker(
        extra_env={
            "ORDERSTREAM_SINKS": "webhook",
            "ORDERSTREAM_WEBHOOK_URL": url,
            "ORDERSTREAM_WEBHOOK_VERIFY_TLS": "false",  # one more event that names the URL
        }
    )
    wait_until(lambda: len(worker.named("notification.sent")) == 3, timeout=20)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    assert receiver.requests[0].path == f"/hook?token={token}"  # the URL was used as given
    (started,) = worker.named("worker.started")
    assert started["webhook_url"] == f"{receiver.url}?***"
    assert worker.named("webhook.tls_verification_off")
    lines = [json.dumps(e) for e in worker.snapshot()] + worker.other_lines + worker.stderr_lines
    assert token not in "\n".join(lines)


@pytest.mark.parametrize(
    "secret",
    [
        "PlainSecretVm4Kd9Ws2Hq7Lc",  # not the whsec_ form
        "whsec_PlainSecretVm4Kd9Ws2Hq7Lc!",  # not base64
        f"{WEBHOOK_SECRET},PlainSecretVm4Kd9Ws2Hq7Lc",  # the second of two
    ],
)
def test_a_refused_webhook_secret_names_the_setting_not_the_secret(
    run_cli: RunCli, receiver: Receiver, secret: str
) -> None:
    result = run_cli(
        "worker",
        "run",
        extra_env={
            "ORDERSTREAM_SINKS": "webhook",
            "ORDERSTREAM_WEBHOOK_URL": receiver.url,
            "ORDERSTREAM_WEBHOOK_SECRET": secret,
        },
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("worker: error: ORDERSTREAM_WEBHOOK_SECRET: secret ")
    output = result.stdout + result.stderr
    for piece in ("PlainSecretVm4", "Kd9Ws2Hq7Lc", WEBHOOK_SECRET[6:18], WEBHOOK_KEY[:12]):
        assert piece not in output
    assert receiver.requests == []


@pytest.mark.parametrize("userinfo", ["hook:UrlPassw0rdHk5Fj8Lq2@", "UrlPassw0rdHk5Fj8Lq2@"])
def test_credentials_in_the_webhook_url_are_refused_with_a_hint_not_echoed(
    run_cli: RunCli, receiver: Receiver, userinfo: str
) -> None:
    """urllib3 never sends URL userinfo: basic auth would fail with no error. Refused at
    start-up, with the way to send it, and without repeating the password."""
    url = receiver.url.replace("http://", f"http://{userinfo}")
    result = run_cli(
        "worker",
        "run",
        extra_env={"ORDERSTREAM_SINKS": "webhook", "ORDERSTREAM_WEBHOOK_URL": url},
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("worker: error: ORDERSTREAM_WEBHOOK_URL: credentials in the URL")
    assert "ORDERSTREAM_WEBHOOK_HEADERS" in line
    assert "UrlPassw0rdHk5Fj8Lq2" not in result.stdout + result.stderr
    assert receiver.requests == []


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tls=self_signed_context(tmp_path)) as server:
        yield server


def tls_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    assert receiver.url.startswith("https://127.0.0.1:")
    return {
        "ORDERSTREAM_SINKS": "webhook",
        "ORDERSTREAM_WEBHOOK_URL": receiver.url,
        "ORDERSTREAM_MAX_ATTEMPTS": "2",
        "ORDERSTREAM_RETRY_BASE_MS": "20",
        "ORDERSTREAM_RETRY_CAP_MS": "50",
        "ORDERSTREAM_RETRY_SCHEDULE": "off",  # the DLQ right after the burst, no lane
        **extra,
    }


@pytest.mark.usefixtures("seeded")
def test_tls_certificates_are_verified_by_default(
    start_worker: StartWorker, tls_receiver: Receiver
) -> None:
    worker = start_worker(extra_env=tls_env(tls_receiver))
    wait_until(lambda: len(worker.named("notification.dead_lettered")) == 3, timeout=20)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    retries = worker.named("notification.retry")
    assert len(retries) == 3  # one per seed change: retried as a transient failure
    assert all("CERTIFICATE_VERIFY_FAILED" in e["error"] for e in retries)
    assert not worker.named("notification.sent")
    assert not worker.named("webhook.tls_verification_off")
    assert tls_receiver.requests == []  # no request ever went to the unverified host


@pytest.mark.usefixtures("seeded")
def test_tls_verification_off_warns_at_start_then_delivers(
    start_worker: StartWorker, tls_receiver: Receiver
) -> None:
    worker = start_worker(extra_env=tls_env(tls_receiver, ORDERSTREAM_WEBHOOK_VERIFY_TLS="false"))
    wait_until(lambda: len(worker.named("notification.sent")) == 3, timeout=20)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    (warning,) = worker.named("webhook.tls_verification_off")
    assert warning["level"] == "warning"
    events = [e["event"] for e in worker.snapshot()]
    assert events.index("webhook.tls_verification_off") < events.index("worker.started")
    assert len(tls_receiver.requests) == 3
    assert not worker.named("notification.retry")


# -- http to a remote host -----------------------------------------------------------------


class ConnectionCounter:
    """A TCP listener that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.connections = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def __enter__(self) -> ConnectionCounter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.10:8080/hook",  # TEST-NET-1: nothing answers there
        "http://hooks.example.com/orders",
        "http://[2001:db8::1]/hook",
        "http://10.1.2.3/hook",
    ],
)
def test_http_to_a_remote_host_is_refused_before_any_connection(run_cli: RunCli, url: str) -> None:
    with ConnectionCounter() as aws:
        started = time.monotonic()
        result = run_cli(
            "worker",
            "run",
            extra_env={
                "AWS_ENDPOINT_URL": aws.url,  # any AWS call would show up here
                "ORDERSTREAM_SINKS": "webhook",
                "ORDERSTREAM_WEBHOOK_URL": url,
            },
            check=False,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("worker: error: ORDERSTREAM_WEBHOOK_URL")
    assert "https" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert aws.connections == 0
    assert elapsed < 5  # no connect timeout was waited out


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/hook",
        "http://127.0.0.1:port/hook",
        "https://[::1/hook",
        "http://attacker.invalid\\@localhost/orders",  # urllib3 would send to attacker.invalid
    ],
)
def test_a_malformed_webhook_url_is_a_configuration_error(run_cli: RunCli, url: str) -> None:
    result = run_cli(
        "worker",
        "run",
        extra_env={"ORDERSTREAM_SINKS": "webhook", "ORDERSTREAM_WEBHOOK_URL": url},
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("worker: error: ORDERSTREAM_WEBHOOK_URL")
