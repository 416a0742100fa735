"""Shared fixtures: safe AWS environment and a real moto_server process over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

SAFE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never ask the instance-metadata address for credentials or a region.
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `predicate` until it returns truthy; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]  # typed `object`: any zero-argument callable
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {predicate}")


@dataclass
class MotoServer:
    """A `moto_server` process on 127.0.0.1; `reset()` wipes its state between tests."""

    url: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def env(self) -> dict[str, str]:
        return {**SAFE_AWS_ENV, "AWS_ENDPOINT_URL": self.url}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs a CLI in-process configures structlog (a level filter above
    info included): put back what was there, so a later test's capture_logs sees info."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _safe_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SAFE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    for key in list(os.environ):
        if key.startswith(("ORDERSTREAM_", "AWS_ENDPOINT_URL", "AWS_PROFILE")):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def moto_process() -> Iterator[MotoServer]:
    port = free_port()
    env = {**os.environ, **SAFE_AWS_ENV}
    process = subprocess.Popen(
        # moto_server with DynamoDB's per-table isolation of transactions restored
        # (tests/fakes/moto_serial.py): moto's own lets a failed condition undo
        # concurrent writes, which DynamoDB never does.
        [sys.executable, "-m", "tests.fakes.moto_serial", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    server = MotoServer(f"http://127.0.0.1:{port}", process)

    def up() -> bool:
        try:
            server.reset()
        except OSError:
            return False
        return True

    try:
        wait_until(up, timeout=30)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def moto_server(moto_process: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A clean moto server for this test, with AWS_ENDPOINT_URL pointing at it."""
    moto_process.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_process.url)
    return moto_process


@pytest.fixture
def cli_env(moto_server: MotoServer) -> dict[str, str]:
    """Environment for console scripts run as a user would, against the moto server."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTREAM_")}
    return {**base, **moto_server.env(), "PATH": path, "ORDERSTREAM_LOG_FORMAT": "json"}


from tests.fakes.receiver import Receiver  # noqa: E402 (appended with the fixture below)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 standing in for a webhook endpoint (closed after)."""
    with Receiver() as server:
        yield server
