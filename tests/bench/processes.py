"""Processes of the benchmark: a safe environment, start and stop, loopback readiness.

Everything binds and talks to 127.0.0.1 only, with dummy credentials and instance
metadata off, so nothing can reach real AWS. `Processes` remembers every child it
starts and stops them all (SIGTERM, then SIGKILL) whatever happened.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

REGION = "us-east-1"
SAFE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
BIN = Path(sys.executable).parent
# The checkout this bench runs from: its children import this code, not whatever the
# venv's editable install points at (another worktree's, when run from a worktree).
ROOT = Path(__file__).resolve().parents[2]


class HarnessError(RuntimeError):
    """The benchmark could not measure honestly (lost records, a dead process, ...)."""


def safe_env(**extra: str) -> dict[str, str]:
    """os.environ without any AWS/ORDERSTREAM/proxy setting, plus the safe ones, and
    PYTHONPATH set to this checkout (console scripts run its code)."""
    dropped = ("AWS_", "ORDERSTREAM_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**env, **SAFE_AWS_ENV, "PYTHONPATH": str(ROOT), **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll until `predicate` returns something truthy; HarnessError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_call(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Processes:
    """Children of this run; `stop_all` ends each one (used in a finally)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._children: list[tuple[str, subprocess.Popen[bytes], list[IO[bytes]]]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], stdout: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = (stdout or self.workdir / f"{name}.out").open("wb")
        err = (self.workdir / f"{name}.err").open("wb")
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=Path.cwd())
        self._children.append((name, process, [out, err]))
        return process

    def check_alive(self, process: subprocess.Popen[bytes], name: str) -> None:
        if process.poll() is not None:
            err = (self.workdir / f"{name}.err").read_text(errors="replace")[-2000:]
            raise HarnessError(f"{name} exited with {process.returncode}: {err.strip()}")

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        """SIGTERM and wait (the graceful path); SIGKILL if it overstays."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise HarnessError(f"pid {process.pid} ignored SIGTERM for {timeout:.0f}s") from None

    def stop_all(self) -> None:
        for _, process, files in reversed(self._children):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            for handle in files:
                handle.close()
        self._children.clear()


def start_moto(procs: Processes, serial: bool = False) -> str:
    """A moto_server; `serial`: with DynamoDB requests one at a time (moto_serial.py)."""
    port = free_port()
    module = "tests.fakes.moto_serial" if serial else "moto.server"
    name = "moto-serial" if serial else "moto"
    argv = [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)]
    process = procs.start(name, argv, safe_env())

    def up() -> bool:
        procs.check_alive(process, name)
        try:
            return http_call(port, "POST", "/moto-api/reset")[0] == 200
        except OSError:
            return False

    wait_until(up, 60, "moto_server to answer")
    return f"http://127.0.0.1:{port}"


def start_canned(procs: Processes, shards: int, records: int, seed: int) -> int:
    """The canned streams server as its own process; returns its port."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.bench.canned_streams"]
    argv += ["--shards", str(shards), "--records", str(records), "--port", str(port)]
    argv += ["--seed", str(seed)]
    process = procs.start("canned", argv, safe_env())

    def up() -> bool:
        procs.check_alive(process, "canned")
        try:
            return http_call(port, "GET", "/stats")[0] == 200
        except OSError:
            return False

    wait_until(up, 120, "the canned streams server to answer")
    return port


def canned_stats(port: int) -> dict[str, int]:
    status, body = http_call(port, "GET", "/stats")
    if status != 200:
        raise HarnessError(f"canned /stats answered {status}")
    return {str(k): int(v) for k, v in json.loads(body).items()}


class JsonLines:
    """Follows a growing JSON-lines file; `events` holds every complete line parsed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self.other: list[str] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict[str, Any]]:
        """Read what was appended since the last poll; returns the new events."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        new: list[dict[str, Any]] = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                self.other.append(line.decode(errors="replace"))
                continue
            if isinstance(event, dict):
                new.append(event)
        self.events.extend(new)
        return new

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]
