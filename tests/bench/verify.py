"""Checks that keep the benchmark honest: every change whole, nothing lost or repeated.

A rate is only worth reporting if the consumer did all the work: each expected record
became exactly one notification with the full body, an order's changes came out in
sequence order, and the checkpoints reached the end of every shard. Each function
returns a list of problems (empty when all is well), described briefly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tests.bench.dataset import Change

MAX_LISTED = 5


def _some(items: Iterable[Any]) -> str:
    listed = list(items)
    more = f" (+{len(listed) - MAX_LISTED} more)" if len(listed) > MAX_LISTED else ""
    return ", ".join(str(i) for i in listed[:MAX_LISTED]) + more


def notifications_match(lines: list[dict[str, Any]], expected: list[Change]) -> list[str]:
    """Exactly the expected notifications, each with every field of its body right."""
    problems: list[str] = []
    by_id = {change.event_id: change for change in expected}
    seen = Counter(str(line.get("id")) for line in lines)
    missing = [i for i in by_id if i not in seen]
    extra = [i for i in seen if i not in by_id]
    repeated = [i for i, n in seen.items() if n > 1]
    if missing:
        problems.append(f"{len(missing)} expected changes never notified: {_some(missing)}")
    if extra:
        problems.append(f"{len(extra)} notifications for unknown records: {_some(extra)}")
    if repeated:
        problems.append(f"{len(repeated)} changes notified more than once: {_some(repeated)}")
    wrong = []
    for line in lines:
        change = by_id.get(str(line.get("id")))
        if change is None:
            continue
        body = change.body()
        diff = [k for k, v in body.items() if line.get(k) != v]
        if diff:
            wrong.append(f"{change.event_id}: {diff}")
    if wrong:
        problems.append(f"{len(wrong)} notifications with wrong or missing fields: {_some(wrong)}")
    return problems


def order_kept(lines: list[dict[str, Any]]) -> list[str]:
    """Within each order id, notifications appear in increasing sequence order."""
    last: dict[str, int] = {}
    broken = set()
    for line in lines:
        order, sequence = str(line.get("order_id")), int(line.get("sequence_number") or 0)
        if sequence <= last.get(order, -1):
            broken.add(order)
        last[order] = sequence
    if broken:
        return [f"{len(broken)} orders notified out of sequence: {_some(sorted(broken))}"]
    return []


def checkpoints_at_end(
    found: Mapping[str, Mapping[str, Any]], expected_last: Mapping[str, str], need_finished: bool
) -> list[str]:
    """Each shard's checkpoint holds its last sequence number (and `finished`)."""
    problems = []
    for shard, last in expected_last.items():
        item = found.get(shard)
        if item is None:
            problems.append(f"no checkpoint for {shard}")
            continue
        if item.get("sequence_number") != last:
            problems.append(f"{shard}: checkpoint {item.get('sequence_number')} not at {last}")
        if need_finished and not item.get("finished"):
            problems.append(f"{shard}: checkpoint not marked finished")
    return problems


def epoch_of(stamp: str) -> float:
    """A structlog ISO timestamp (`...Z`) as epoch seconds."""
    return datetime.fromisoformat(stamp).timestamp()


def rate(timestamps: list[float]) -> tuple[float, float]:
    """(changes per second, span in seconds) from first to last notification."""
    if len(timestamps) < 2:
        return 0.0, 0.0
    span = max(timestamps) - min(timestamps)
    return (len(timestamps) / span if span > 0 else float("inf")), span
