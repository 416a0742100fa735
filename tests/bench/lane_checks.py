"""The lane benchmark's oracle: what the receiver and the queue got, against the writes.

The writer serializes each order's changes, so an order's k-th change (its insert
first) is its k-th notification by stream sequence number: that pairs every
notification with its write, and so with the time the write returned. Each function
returns what it found and a list of problems (empty when every promise held).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tests.bench.lane_rig import Answer, Message, Write
from tests.bench.verify import _some

Expected = Mapping[str, list[Write]]  # order id -> its writes, insert first


@dataclass
class Seen:
    """Per (order, index of its change): when the sink took it."""

    delivered_at: dict[tuple[str, int], float] = field(default_factory=dict)
    # SQS: ids the worker sent more than once, with each send's SentTimestamp
    resent: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def percentile(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _statuses_match(order: str, got: list[str], writes: list[Write], seen: Seen) -> bool:
    want = [w.new_status for w in writes]
    if got == want:
        return True
    if len(got) < len(want):
        seen.problems.append(f"{order}: {len(want) - len(got)} changes never notified")
    elif len(got) > len(want):
        seen.problems.append(f"{order}: {len(got) - len(want)} notifications for no write")
    else:
        seen.problems.append(f"{order}: statuses {got} where the writes were {want}")
    return False


def _keys_by_order(
    answers: Iterable[Answer], orders: Iterable[str]
) -> dict[str, list[list[Answer]]]:
    """Per order, each key's answers (in arrival order), keys in sequence order."""
    wanted = set(orders)
    by_key: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        if answer.order_id in wanted:
            by_key[answer.key].append(answer)
    result: dict[str, list[list[Answer]]] = {order: [] for order in wanted}
    for got in sorted(by_key.values(), key=lambda got: got[0].sequence):
        result[got[0].order_id].append(got)
    return result


def webhook(answers: Iterable[Answer], expected: Expected) -> Seen:
    """Each change of these orders answered 200 exactly once, the first 200s in sequence
    order, and no change tried before the one ahead of it was through."""
    seen = Seen()
    lost, twice, early = [], [], []
    for order, keys in _keys_by_order(answers, expected).items():
        if not _statuses_match(order, [k[0].new_status for k in keys], expected[order], seen):
            continue
        through = 0.0  # when the change ahead was first taken
        for index, got in enumerate(keys):
            oks = [a.at for a in got if a.status == 200]
            if not oks:
                lost.append(got[0].key)
                continue
            if len(oks) > 1:
                twice.append(got[0].key)
            if got[0].at < through:
                early.append(got[0].key)
            through = oks[0]
            seen.delivered_at[(order, index)] = oks[0]
    for found, what in (
        (lost, "never answered 200"),
        (twice, "answered 200 more than once"),
        (early, "sent before the change ahead was delivered (order broken)"),
    ):
        if found:
            seen.problems.append(f"webhook: {len(found)} changes {what}: {_some(found)}")
    return seen


def sqs(messages: Iterable[Message], expected: Expected) -> Seen:
    """Each change in the queue, from one SendMessage each (a re-send is listed in
    `resent`, for the caller to judge); `delivered_at` is the first SentTimestamp."""
    seen = Seen()
    sends: dict[str, dict[str, Message]] = defaultdict(dict)  # id -> MessageId -> message
    for message in messages:
        sends[str(message.body["id"])][message.message_id] = message
    ids_of: dict[str, list[str]] = defaultdict(list)
    for note_id, by_message in sends.items():
        first = next(iter(by_message.values()))
        ids_of[str(first.body["order_id"])].append(note_id)
    for order, writes in expected.items():
        ids = sorted(
            ids_of[order], key=lambda i: int(next(iter(sends[i].values())).body["sequence_number"])
        )
        statuses = [next(iter(sends[i].values())).body["new_status"] for i in ids]
        if not _statuses_match(f"sqs {order}", statuses, writes, seen):
            continue
        for index, note_id in enumerate(ids):
            seen.delivered_at[(order, index)] = min(m.sent_at for m in sends[note_id].values())
            if len(sends[note_id]) > 1:
                seen.resent[note_id] = sorted(m.sent_at for m in sends[note_id].values())
    unknown = set(ids_of) - set(expected)
    if unknown:
        seen.problems.append(f"sqs: messages for orders never written: {_some(sorted(unknown))}")
    return seen


def latencies(seen: Seen, expected: Expected, since: float, until: float) -> list[float]:
    """Write -> delivery of the changes written in [since, until]."""
    result = []
    for order, writes in expected.items():
        for index, write in enumerate(writes):
            if since <= write.at <= until and (order, index) in seen.delivered_at:
                result.append(seen.delivered_at[(order, index)] - write.at)
    return sorted(result)


def per_order(writes: Iterable[Write], inserts: Mapping[str, Write]) -> dict[str, list[Write]]:
    result = {order: [insert] for order, insert in inserts.items()}
    for write in writes:
        result[write.order_id].append(write)
    return result
