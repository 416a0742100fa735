"""Garbage-collector settings for a long-running stream worker.

A GetRecords page becomes tens of thousands of short-lived dicts and strings. With
CPython's default threshold (a generation-0 pass every 700 allocations) the cyclic
collector runs dozens of times per page and, as the heap grows, walks it again and
again: measured here, that was more than a third of a record's CPU. Our records hold
no reference cycles (reference counting frees them), so we collect far less often
and freeze what start-up allocated (modules, clients) out of every pass.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 100_000  # allocations between generation-0 passes (default 700)
GEN1_THRESHOLD = 50
GEN2_THRESHOLD = 1_000


def tune() -> None:
    """Call once, after start-up and before the first batch."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
