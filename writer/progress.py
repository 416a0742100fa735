"""The progress bar of `writer load` on a TTY: one labelled line per phase, rate and ETA.

`bulk.load` reports `(done, total)` for its phases one after the other (the items, then
the status updates) through one callback; a phase ends when `done` reaches `total`, so
the bar moves on to the next label then. The clock is injected for the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """Draws `label [####....] done/total  rate/s  ETA m:ss` with carriage returns."""

    def __init__(
        self,
        *,
        stream: TextIO,
        labels: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._labels = list(labels)
        self._clock = clock
        self._phase = 0
        self._started: float | None = None
        self._open = False  # a line is drawn without its newline yet

    def __call__(self, done: int, total: int) -> None:
        """Redraw for `done` of `total`; reaching `total` ends the phase's line."""
        now = self._clock()
        if self._started is None:
            self._started = now
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _duration((total - done) / rate) if rate > 0 else "?"
        filled = WIDTH * done // max(total, 1)
        label = self._labels[min(self._phase, len(self._labels) - 1)]
        line = (
            f"\r{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total}"
            f"  {rate:,.0f}/s  ETA {eta} "
        )
        self._open = True  # before the write: a Ctrl-C can land in the middle of it
        self._stream.write(line)
        if done >= total:
            self._stream.write(
                f"\r{label} [{'#' * WIDTH}] {done}/{total}  done in "
                f"{_duration(elapsed)}{' ' * 12}\n"
            )
            self._open = False
            self._phase += 1
            self._started = None
        self._stream.flush()

    def interrupt(self) -> None:
        """End a half-drawn line, so the next message starts on its own line."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
