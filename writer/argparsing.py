"""An argparse parser whose usage errors are one line and exit 2 (shared by both CLIs)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class UsageError(Exception):
    """Raised instead of argparse's two-line usage dump."""


class OneLineArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def exit_with(prog: str, message: str, code: int) -> int:
    """Print the one error line on stderr and return the exit code.

    argparse echoes arguments as given, so a newline (or another control character) in
    one is escaped here: the error stays one line.
    """
    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    print(f"{prog}: error: {line}", file=sys.stderr)
    return code
