"""The simulated runtime: the real worker code, one task at a time, on a virtual clock.

Every task is a greenlet. A task runs until it blocks (a `Signal.wait`, a `Task.join`,
a fake I/O call's latency) and then switches to the hub, which picks the next runnable
task with the seed's RNG; when none is runnable the virtual clock jumps to the next
timer. So the interleaving is drawn from the seed, the run is reproducible, and no
real time passes.

Yield points are only at waits and at fake I/O calls, never inside production code
that holds a `threading.Lock` (Stats, the dispatcher's queue): since only one greenlet
runs at a time, those locks are never contended.

A simulated worker process is a `Process`: its runtime view has its own wall-clock skew
and a crash flag. A crash makes every later yield point and every fake call of its tasks
raise `Crashed` (a BaseException, so `except Exception` in the worker cannot swallow it
and `finally:` blocks cannot write anything durable).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import greenlet

EPOCH_S = 1_714_557_600.0  # virtual time 0 on the wall clock (2024-05-01T10:00:00Z)


class Crashed(BaseException):
    """Raised inside a task of a killed process: nothing after it may have any effect."""


class SimulationError(Exception):
    """The run itself went wrong (deadlock, step budget): reported like a violation."""


@dataclass
class Process:
    """One simulated worker process (a pid): its clock skew, crash and exit state."""

    name: str
    skew_s: float = 0.0
    crashed: bool = False
    exited: bool = False
    tasks: list[SimTask] = field(default_factory=list)

    @property
    def dead(self) -> bool:
        return self.crashed or self.exited


class SimTask:
    """A greenlet scheduled by the hub; `Task` for the worker (is_alive / join)."""

    def __init__(
        self, sched: Scheduler, name: str, process: Process | None, target: Callable[[], None]
    ) -> None:
        self.sched = sched
        self.name = name
        self.process = process
        self.target = target
        self.alive = True
        self.started = False
        self.throw = False
        self.token: object | None = None  # set while blocked; a wake must match it
        self.done = SimSignal(sched, None)
        self.error: BaseException | None = None
        self.glet = greenlet.greenlet(self._main, parent=sched.hub)

    def _main(self) -> None:
        try:
            if self.process is not None and self.process.dead:
                raise Crashed
            self.target()
        except Crashed:
            pass
        except Exception as exc:  # a thread dying with an exception: kept for the report
            self.error = exc
            self.sched.on_task_error(self, exc)
        finally:
            self.alive = False
            self.done.set()

    def is_alive(self) -> bool:
        return self.alive

    def join(self, timeout: float | None = None) -> None:
        if self.alive:
            self.done.wait(timeout)


class SimSignal:
    """`threading.Event` on the virtual clock: waits block the task, never the process."""

    def __init__(self, sched: Scheduler, process: Process | None) -> None:
        self._sched = sched
        self._process = process
        self._flag = False
        self._waiters: list[tuple[SimTask, object]] = []

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, []
        for task, token in waiters:
            self._sched.wake(task, token)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        self._sched.block(self, timeout)
        return self._flag

    def add_waiter(self, task: SimTask, token: object) -> None:
        self._waiters.append((task, token))


class Scheduler:
    """The hub: runnable tasks, timers, the virtual clock and the seed's RNG."""

    def __init__(self, seed: int, max_steps: int = 3_000_000) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.steps = 0
        self.max_steps = max_steps
        self.hub = greenlet.getcurrent()
        self.current: SimTask | None = None
        self.tasks: list[SimTask] = []
        self._ready: list[SimTask] = []
        self._timers: list[tuple[float, int, SimTask, object]] = []
        self._sequence = 0
        self.errors: list[tuple[SimTask, BaseException]] = []
        self.on_error: Callable[[SimTask, BaseException], None] | None = None

    # -- called from tasks ---------------------------------------------------------------

    def spawn(self, name: str, process: Process | None, target: Callable[[], None]) -> SimTask:
        if process is not None and process.dead:
            raise Crashed
        task = SimTask(self, name, process, target)
        self.tasks.append(task)
        if process is not None:
            process.tasks.append(task)
        self._ready.append(task)
        return task

    def block(self, signal: SimSignal | None, timeout: float | None) -> None:
        """Park the current task until `signal` is set or `timeout` passes."""
        task = self._running()
        token = object()
        task.token = token
        if signal is not None:
            signal.add_waiter(task, token)
        if timeout is not None:
            self._sequence += 1
            heapq.heappush(
                self._timers, (self.now + max(timeout, 0.0), self._sequence, task, token)
            )
        elif signal is None:
            raise SimulationError(f"{task.name} blocked forever with nothing to wake it")
        self.hub.switch()
        self._check(task)

    def sleep(self, seconds: float) -> None:
        self.block(None, seconds)

    def yield_now(self) -> None:
        task = self._running()
        self._ready.append(task)
        self.hub.switch()
        self._check(task)

    def wake(self, task: SimTask, token: object) -> None:
        if task.token is token and task.alive:
            task.token = None
            self._ready.append(task)

    def kill(self, process: Process) -> None:
        """Every task of `process` raises Crashed the next time it runs."""
        for task in process.tasks:
            if task.alive and task is not self.current:
                task.throw = True
                if task.token is not None:
                    task.token = None
                    self._ready.append(task)

    def on_task_error(self, task: SimTask, error: BaseException) -> None:
        self.errors.append((task, error))
        if self.on_error is not None:
            self.on_error(task, error)

    # -- the hub ---------------------------------------------------------------------------

    def run(self, until: Callable[[], bool]) -> None:
        """Run tasks until `until()` holds; deadlock and runaway runs raise SimulationError."""
        while not until():
            if not self._ready and not self._advance():
                alive = [t.name for t in self.tasks if t.alive]
                raise SimulationError(f"deadlock: no runnable task and no timer; blocked: {alive}")
            self.steps += 1
            if self.steps > self.max_steps:
                raise SimulationError(f"step budget exceeded at t={self.now:.3f}")
            index = self.rng.randrange(len(self._ready))
            self._ready[index], self._ready[-1] = self._ready[-1], self._ready[index]
            task = self._ready.pop()
            if not task.alive:
                continue
            self.current = task
            try:
                if task.throw and task.started:
                    task.throw = False
                    task.glet.throw(Crashed())
                else:
                    task.started = True
                    task.glet.switch()
            finally:
                self.current = None

    def _advance(self) -> bool:
        """Jump the clock to the next live timer; wake every task due then."""
        while self._timers:
            deadline, _, task, token = heapq.heappop(self._timers)
            if task.token is not token or not task.alive:
                continue
            self.now = max(self.now, deadline)
            self.wake(task, token)
            while self._timers and self._timers[0][0] <= self.now:
                _, _, other, other_token = heapq.heappop(self._timers)
                self.wake(other, other_token)
            return True
        return False

    def _running(self) -> SimTask:
        task = self.current
        if task is None:
            raise SimulationError("a yield point outside any simulated task")
        return task

    @staticmethod
    def _check(task: SimTask) -> None:
        if task.throw or (task.process is not None and task.process.dead):
            task.throw = False
            raise Crashed


class ProcessRuntime:
    """`worker.core.runtime.Runtime` for one simulated process: skewed wall clock, own tasks."""

    def __init__(self, sched: Scheduler, process: Process) -> None:
        self.sched = sched
        self.process = process

    def time(self) -> float:
        return EPOCH_S + self.sched.now + self.process.skew_s

    def monotonic(self) -> float:
        return 1000.0 + self.sched.now

    def event(self) -> SimSignal:
        return SimSignal(self.sched, self.process)

    def spawn(self, name: str, target: Callable[[], None]) -> SimTask:
        return self.sched.spawn(name, self.process, target)

    def io(self, latency: float) -> None:
        """A fake I/O call's yield point: crash check, then `latency` of virtual time."""
        if self.process.dead:
            raise Crashed
        if latency > 0:
            self.sched.sleep(latency)
        else:
            self.sched.yield_now()


def current_process(sched: Scheduler) -> Process | None:
    task = sched.current
    return task.process if task is not None else None
