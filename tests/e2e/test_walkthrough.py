"""README's "Run it locally", run as written: its shell blocks, in order, in terminals
of their own (a block that says "leave it running" stays in the background).

Only the two port numbers (5000 for moto, 8000 for the receiver) are replaced by free
ones. The steps between the blocks ("wait for terminal 3 to print ...") are what the
prose says a reader sees, so they are checked here before the next block runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until
from tests.fakes.processes import default_sigint

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Run it locally"
BLOCK = re.compile(r"^( *)```sh\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def walkthrough_blocks(markdown: str) -> list[str]:
    """The section's ```sh blocks, dedented, in order."""
    section = markdown.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [textwrap.dedent(match.group(2)) for match in BLOCK.finditer(section)]


class Terminal:
    """One block in bash, in its own process group (Ctrl-C reaches all of it)."""

    def __init__(self, script: str, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=default_sigint,  # noqa: PLW1509 - a test's child, no threads to mind
        )
        self.lines: list[str] = []
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, prefix: str) -> int:
        return sum(1 for line in list(self.lines) if line.startswith(prefix))

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=30)
        self._pump.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A fresh folder holding `.venv` (this suite's), where the reader's shell starts."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    return tmp_path


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        if terminal.process.poll() is None:
            os.killpg(terminal.process.pid, signal.SIGKILL)
            terminal.process.wait(timeout=10)
        if terminal.process.stdout:
            terminal.process.stdout.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_walkthrough_runs_as_written(folder: Path, terminals: list[Terminal]) -> None:
    moto_port, hook_port = free_port(), free_port()
    text = (ROOT / "README.md").read_text("utf-8")
    text = re.sub(r"\b5000\b", str(moto_port), re.sub(r"\b8000\b", str(hook_port), text))
    blocks = walkthrough_blocks(text)
    assert len(blocks) == 10, blocks
    setup, moto, table, receiver, worker, shipped, broken, delivered, listing, redrive = blocks
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ORDERSTREAM_"))}
    base["PATH"] = "/usr/bin:/bin"  # only what the setup block's activate adds

    def start(block: str) -> Terminal:
        assert "leave it running" in block.splitlines()[0]
        terminal = Terminal(f"{setup}\n{block}", folder, base)
        terminals.append(terminal)
        return terminal

    def run(block: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", f"set -e\n{setup}\n{block}"],
            cwd=folder,
            env=base,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (block, result.stdout, result.stderr)
        return result

    start(moto)
    wait_until(lambda: listening(moto_port), timeout=30)
    run(table)
    hook = start(receiver)
    wait_until(lambda: listening(hook_port), timeout=15)
    work = start(worker)
    wait_until(lambda: hook.count("verified ") == 3, timeout=30)

    run(shipped)
    wait_until(lambda: hook.count("verified ") == 4, timeout=15)
    assert any('"new_status":"Shipped"' in line for line in hook.lines), hook.lines

    hook.ctrl_c()
    hook = start(broken)
    wait_until(lambda: listening(hook_port), timeout=15)
    run(delivered)
    wait_until(lambda: hook.count("REJECTED ") == 1, timeout=15)
    wait_until(lambda: any("notification.dead_lettered" in line for line in work.lines), 15)
    (entry,) = [json.loads(line) for line in run(listing).stdout.splitlines() if '"sink"' in line]
    assert (entry["order_id"], entry["sink"]) == ("ORD1001", "webhook")

    hook.ctrl_c()
    hook = start(receiver.splitlines()[0] + "\n" + receiver.rstrip().splitlines()[-1])
    wait_until(lambda: listening(hook_port), timeout=15)
    summary = run(redrive).stdout.splitlines()[-1]  # after the log's `dlq.redriven`
    assert json.loads(summary) == {"redriven": 1, "failed": 0, "skipped": 0}
    wait_until(lambda: hook.count("verified ") == 1, timeout=15)
    assert any('"new_status":"Delivered"' in line for line in hook.lines), hook.lines

    assert work.ctrl_c() == 0  # a graceful stop
    hook.ctrl_c()
    terminals[0].ctrl_c()
