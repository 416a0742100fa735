"""Console scripts on a pseudo-terminal, as a person at a terminal runs them.

stdout and stderr share one terminal (as on a screen), so a message shown twice, a
console log line or a progress bar is seen exactly as the user sees it.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable

from tests.fakes.processes import default_sigint, script

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours: the text is what the screen shows


class TtyProcess:
    """A script with stdin, stdout and stderr on one pseudo-terminal; `text` is the screen."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        main, secondary = pty.openpty()
        self._main = main
        self.process = subprocess.Popen(
            [script(args[0]), *args[1:]],
            env={**env, "TERM": "dumb"},
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            close_fds=True,
            preexec_fn=default_sigint,  # noqa: PLW1509 - a test's child, no threads to mind
        )
        os.close(secondary)
        self._chunks: list[bytes] = []

    @property
    def text(self) -> str:
        text = b"".join(self._chunks).decode("utf-8", "replace").replace("\r\n", "\n")
        return ANSI.sub("", text)

    def read_until(self, done: Callable[[str], bool], timeout: float) -> bool:
        """Read output until `done(text)` or the process ends or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not done(self.text):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([self._main], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self._main, 65536)
            except OSError:  # EIO: every writer is gone
                return done(self.text)
            if not chunk:
                return done(self.text)
            self._chunks.append(chunk)
        return True

    def wait(self, timeout: float) -> int:
        """Drain the output and wait for the exit code."""
        self.read_until(lambda _: False, timeout)
        code = self.process.wait(timeout=5)
        os.close(self._main)
        return code

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT, as the terminal sends it to the foreground process."""
        self.process.send_signal(signal.SIGINT)


def run_on_tty(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    proc = TtyProcess(args, env)
    code = proc.wait(timeout)
    return code, proc.text
