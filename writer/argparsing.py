"""An argparse parser whose usage errors are one line and exit 2 (shared by both CLIs)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn


class UsageError(Exception):
    """Raised instead of argparse's two-line usage dump."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are raised, so each CLI prints one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        """Raise UsageError instead of printing the usage and exiting."""
        raise UsageError(f"{self.prog}: {message}")


def exit_with(prog: str, message: str, code: int) -> int:
    """Print the one error line on stderr and return the exit code.

    argparse echoes arguments as given, so a newline (or another control character) in
    one is escaped here: the error stays one line.
    """
    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    print(f"{prog}: error: {line}", file=sys.stderr)
    return code


def quiet_after_closed_stdout() -> int:
    """The reader of stdout went away (`| head`): say nothing more, exit 0. stdout is
    pointed at /dev/null so the interpreter's own final flush does not fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0
