"""A few pullers taking work from one queue until it is empty.

The dispatcher's pullers take one change of an order at a time and put the order back
at the tail while it has more, so every puller stays busy while orders are waiting
(whole orders per puller left pullers idle at a batch's end: 100 orders of 10 changes
on 32 pullers took 4 full rounds); the lane retrier's take whole (order, sink) queues.
An item is held by one puller at a time, so its own work stays in order, and a slow
item holds one puller while the others move on. Threads (or simulated tasks) come
from the runtime.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from worker.core.runtime import Runtime, Signal

T = TypeVar("T")


@dataclass
class Pullers(Generic[T]):
    """Pullers at work: `done` is set once every one has ended."""

    done: Signal
    errors: list[Exception] = field(default_factory=list)

    def raise_first(self) -> None:
        """A bug in a puller surfaces in the caller, not silently."""
        if self.errors:
            raise self.errors[0]


def start_pullers(
    *,
    runtime: Runtime,
    name: str,
    items: Iterable[T],
    count: int,
    work: Callable[[T], bool | None],
    stop: Signal | None = None,
) -> Pullers[T]:
    """Up to `count` pullers run `work` on `items`, one at a time each; an item whose
    `work` returns True goes back to the queue's tail for more. None takes an item
    once `stop` is set."""
    queue = deque(items)
    lock = threading.Lock()
    pullers: Pullers[T] = Pullers(done=runtime.event())
    running = [min(count, len(queue))]
    if running[0] == 0:
        pullers.done.set()
        return pullers

    def puller() -> None:
        try:
            while stop is None or not stop.is_set():
                with lock:
                    if not queue:
                        return
                    item = queue.popleft()
                if work(item):
                    with lock:
                        queue.append(item)
        except Exception as exc:
            pullers.errors.append(exc)
        finally:
            with lock:
                running[0] -= 1
                if running[0] == 0:
                    pullers.done.set()

    for number in range(running[0]):
        runtime.spawn(f"{name}-{number}", puller)
    return pullers
