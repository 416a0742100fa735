"""Read pacing: how long a shard reader waits before its next GetRecords.

What the last read said picks the mode:

- **catch-up**: a full page (GetRecords' limit, 1,000 records, or cut by its 1 MB size
  limit: see stream.FULL_PAGE_BYTES): more is waiting, so the next read follows at
  once. A backlog then drains as fast as the worker settles it, not at 5 pages a second;
- **paced**: a page with fewer records: reads at least `min_interval_s` (0.2 s) apart,
  at most 5 a second, as before catch-up mode existed;
- **idle**: an empty page: the wait doubles from 0.2 s up to the idle wait
  (ORDERSTREAM_IDLE_WAIT_MS), so an idle shard costs at most 2 calls a second at the
  default of 500 ms (1,000 / the setting in general).

Throttling (LimitExceededException, ThrottlingException, 5xx, after botocore's own
retries) is answered additive-increase / multiplicative-decrease, as TCP answers
congestion: a throttled call halves the allowed read rate (the first one from "no
limit" down to the paced 5 a second) to a floor of one read per `max_interval_s`; each
read that succeeds raises it by `increase_per_s`, until it passes `unlimited_per_s`
and catch-up reads no longer wait at all. The allowed rate bounds every mode.

Pure decisions on an injected clock: the reader spends the waits on its stop signal.
"""

from __future__ import annotations

from collections.abc import Callable

MIN_READ_INTERVAL_S = 0.2  # paced: at most 5 GetRecords a second on a shard
MAX_THROTTLED_INTERVAL_S = 10.0  # the floor: throttled on and on, one read per 10 s
RATE_INCREASE_PER_S = 0.5  # additive increase: reads/s added per successful read
UNLIMITED_RATE_PER_S = 20.0  # allowed above this, catch-up reads do not wait at all


class ReadPacer:
    """Decides the wait before one shard's next GetRecords (one reader's, not shared).

    `full_page` is the Limit the reader asks GetRecords for: a page that size says
    more is waiting."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        idle_wait_s: float,
        full_page: int,
        min_interval_s: float = MIN_READ_INTERVAL_S,
        max_interval_s: float = MAX_THROTTLED_INTERVAL_S,
        increase_per_s: float = RATE_INCREASE_PER_S,
        unlimited_per_s: float = UNLIMITED_RATE_PER_S,
    ) -> None:
        self._clock = clock
        self._idle_wait_s = idle_wait_s
        self._full_page = full_page
        self._min_interval_s = min_interval_s
        self._floor_per_s = 1.0 / max_interval_s
        self._increase_per_s = increase_per_s
        self._unlimited_per_s = unlimited_per_s
        self._spacing_s = min_interval_s  # between read starts, by mode (0: catch-up)
        self._idle_s = min_interval_s  # the last idle wait (doubles while idle)
        self._not_before = 0.0  # idle: no read before this time
        self._last_read = 0.0
        self.rate_per_s: float | None = None  # allowed by AIMD; None: no limit
        self.throttles = 0  # consecutive throttled reads

    @property
    def catching_up(self) -> bool:
        """The last page was full: the next read follows at once (if not throttled)."""
        return self._spacing_s == 0.0

    def wait_s(self) -> float:
        """Seconds to wait, from now, before the next read may start."""
        limit_s = 0.0 if self.rate_per_s is None else 1.0 / self.rate_per_s
        due = max(self._last_read + max(self._spacing_s, limit_s), self._not_before)
        return max(0.0, due - self._clock())

    def reading(self) -> None:
        """A read starts now (whatever it answers, it counts against the pace)."""
        self._last_read = self._clock()

    def page(self, records: int, *, full: bool = False) -> None:
        """A read answered `records` records (`full`: cut by a limit, more waiting): pick
        the mode, raise the allowed rate."""
        self.throttles = 0
        if self.rate_per_s is not None:
            raised = self.rate_per_s + self._increase_per_s
            self.rate_per_s = None if raised >= self._unlimited_per_s else raised
        if records:
            more = full or records >= self._full_page
            self._spacing_s = 0.0 if more else self._min_interval_s
            self._idle_s = self._min_interval_s
            self._not_before = 0.0
            return
        self._spacing_s = self._min_interval_s
        self._idle_s = min(self._idle_s * 2, self._idle_wait_s)
        self._not_before = self._clock() + self._idle_s

    def throttled(self) -> float:
        """A read was throttled (or failed with a 5xx): halve the allowed rate; the
        wait before the next read is returned (to log it)."""
        self.throttles += 1
        current = 1.0 / self._min_interval_s if self.rate_per_s is None else self.rate_per_s / 2
        self.rate_per_s = max(current, self._floor_per_s)
        return self.wait_s()
