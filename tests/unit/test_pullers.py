"""Pullers: an item held by one puller at a time, and put back while it has more."""

from __future__ import annotations

from worker.core.runtime import THREADS
from worker.delivery.pullers import start_pullers


def test_items_with_more_go_back_to_the_tail_round_robin() -> None:
    left = {"A": 2, "B": 2, "C": 1}
    calls: list[str] = []

    def work(item: str) -> bool:
        calls.append(item)
        left[item] -= 1
        return left[item] > 0

    pullers = start_pullers(runtime=THREADS, name="t", items="ABC", count=1, work=work)
    pullers.done.wait()
    pullers.raise_first()
    assert calls == ["A", "B", "C", "A", "B"]


def test_an_item_is_never_worked_on_by_two_pullers_at_once() -> None:
    steps = {item: 0 for item in "ABCDEFGH"}
    busy: set[str] = set()
    overlaps: list[str] = []

    def work(item: str) -> bool:
        if item in busy:
            overlaps.append(item)
        busy.add(item)
        steps[item] += 1
        busy.discard(item)
        return steps[item] < 50

    pullers = start_pullers(runtime=THREADS, name="t", items=list(steps), count=4, work=work)
    pullers.done.wait()
    pullers.raise_first()
    assert overlaps == []
    assert set(steps.values()) == {50}
