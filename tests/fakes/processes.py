"""Console scripts run as a user runs them, with their JSON log lines collected live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    return str(BIN / name)


class ScriptProcess:
    """A background `worker ...` process; stdout JSON lines are parsed as they arrive."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [script(args[0]), *args[1:]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, False), daemon=True),
        ]
        self.stderr_lines: list[str] = []
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            if not is_stdout:
                self.stderr_lines.append(line.rstrip("\n"))
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.other_lines.append(line)
                continue
            with self._lock:
                self.events.append(event)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.snapshot() if e.get("event") == name]

    def notifications(self) -> list[dict[str, Any]]:
        return self.named("notification")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    def stop(self) -> None:
        """Kill if still running, then close the pipes (pytest treats leaks as errors)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def logged_at(event: dict[str, Any]) -> float:
    """When the process logged `event` (its structlog ISO timestamp), as epoch seconds:
    on the process's own clock, so neither its start-up nor a test's polling counts."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def children_of(pid: int) -> list[int]:
    """Child process ids of `pid`, from /proc (Linux), without a dependency."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command may hold spaces and parentheses: fields resume after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def reader_processes_of(pid: int) -> list[int]:
    """The worker's reader processes: its children but multiprocessing's resource
    tracker, a helper that is no reader and exits only once its parent is gone."""
    readers = []
    for child in children_of(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            readers.append(child)
    return readers


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def default_sigint() -> None:
    """For Popen(preexec_fn=...): Ctrl-C as a terminal delivers it. A shell starts
    background jobs with SIGINT ignored, and a Python child that inherits that never
    raises KeyboardInterrupt: a test of Ctrl-C must not depend on how CI was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
