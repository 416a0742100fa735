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
    """Print the one error line on stderr and return the exit code."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
