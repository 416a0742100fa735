"""docs/worker.md's "Try them on moto", run as written: its two scripts, the worker's
command line and the status change, in order, against a moto server; the lines the
page promises must be among what its reading script prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.fakes.processes import ScriptProcess

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### Try them on moto"
FENCED = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)

pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.slow]


def section_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block under the section, up to the next heading."""
    text = (ROOT / "docs" / "worker.md").read_text("utf-8")
    start = text.index(SECTION) + len(SECTION)
    end = text.index("\n##", start)  # a heading (the scripts' comments have one `#`)
    return [(m.group(1), m.group(2)) for m in FENCED.finditer(text[start:end])]


def test_the_email_and_eventbridge_walkthrough_runs_as_written(
    run_cli: RunCli, start_worker: StartWorker, cli_env: dict[str, str], tmp_path: Path
) -> None:
    blocks = section_blocks()
    assert [language for language, _ in blocks] == ["python", "sh", "sh", "python"]
    (_, setup), (_, run), (_, change), (_, read) = blocks

    def python(script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    python(setup)
    *assignments, program, command = shlex.split(run)
    assert (program, command) == ("worker", "run")
    worker = start_worker(extra_env=dict(a.split("=", 1) for a in assignments))
    # The seed's three inserts, each sent to both sinks.
    wait_until(lambda: len(worker.named("notification.sent")) >= 6, timeout=30)
    for line in change.strip().splitlines():
        run_cli(*shlex.split(line))

    # Run the reading script until both promised lines were printed. A message it read
    # stays hidden for the queue's visibility timeout, so every run's lines are kept.
    seen: set[str] = set()

    def promised() -> bool:
        seen.update(python(read).splitlines())
        return {
            "email to alice@email.com - Your order ORD1005 has shipped",
            "event ORD1005 Shipped Alice",
        } <= seen

    wait_until(promised, timeout=30)
