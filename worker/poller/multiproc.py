"""Reader processes: shards spread over child processes to use more than one core.

One Python process decodes and dispatches on one core at a time. `ORDERSTREAM_PROCESSES`
is `auto` by default: one process while one shard is read at a time, then up to one
reader process per core (AutoLauncher); N > 1 starts N children with each term. The parent
keeps everything that must be single (the app lease, discovery, lineage, stats and
health) and hands each ready shard to the child reading the fewest; a child runs the
same ShardReader as the default, fences its checkpoints with the parent's lease owner
(FollowerLease), reports each shard's end, and sends its counters every second so
`worker.stats` and `/metrics` cover the whole worker. A child stops when told, when
the lease is no longer its parent's, or when its parent dies (its pipe closes).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import structlog

from worker.core.errors import LeaseLostError
from worker.core.models import Shard
from worker.core.runtime import Signal
from worker.core.stats import Stats
from worker.poller.runner import Launcher, ReaderHandle
from worker.settings import WorkerSettings
from worker.state.checkpoints import Checkpoint

log = structlog.get_logger()
SNAPSHOT_EVERY_S = 1.0
LISTEN_POLL_S = 0.2  # how soon a child sees its own stop while no message comes
CLOSE_S = 1.0  # for children to exit once their shards have ended
# New children start reading together: shards wait (on the term's stop) until every new
# child has built its pipeline, at most this long; one still starting then gets its
# shards queued in its pipe as before.
READY_WAIT_S = 10.0


class _Handle:
    """A shard assigned to a child; it ends when the child says so or dies."""

    def __init__(self, child: _Child) -> None:
        self.child = child
        self.ended = threading.Event()

    def is_alive(self) -> bool:
        return not self.ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self.ended.wait(timeout)


class _Child:
    def __init__(
        self,
        *,
        index: int,
        main: ChildMain,
        settings: WorkerSettings,
        owner: str,
        stats: Stats,
        on_end: dict[str, Any],
    ) -> None:
        self.name = f"reader-{index}"
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=main,
            args=(settings, owner, index, child_conn),
            name=self.name,
            daemon=True,
        )
        self.process.start()
        child_conn.close()
        self.handles: dict[str, _Handle] = {}
        self.ready = threading.Event()  # its pipeline is built: it reads at once
        self._stats = stats
        self._on_end = on_end
        self._send_lock = threading.Lock()
        self._listener = threading.Thread(
            target=self._listen, name=f"{self.name}-listen", daemon=True
        )
        self._listener.start()

    def send(self, message: tuple[Any, ...]) -> None:
        # OSError: the child is gone, and _listen ends its handles.
        with self._send_lock, contextlib.suppress(OSError):
            self.conn.send(message)

    def _listen(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "ready":
                    self.ready.set()
                elif message[0] == "ended":
                    self._end(message[1])
                elif message[0] == "stats":
                    self._stats.absorb(self.name, message[1], message[2])
        except (EOFError, OSError):
            pass
        finally:
            self.ready.set()  # a dead child keeps nobody waiting
            self._stats.retire(self.name)
            for shard_id in list(self.handles):
                self._end(shard_id)  # a dead child's shards are planned again

    def _end(self, shard_id: str) -> None:
        handle = self.handles.pop(shard_id, None)
        if handle is not None:
            handle.ended.set()
            callback = self._on_end.get(shard_id)
            if callback:
                callback()


class ProcessLauncher:
    """The Runner's Launcher for reader processes (started per lease term): N of them
    from the start (`ORDERSTREAM_PROCESSES=N`), or none until `grow_to` asks (auto)."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        owner: str,
        stats: Stats,
        processes: int,
        child_main: ChildMain,
    ) -> None:
        self._settings = settings
        self._child_main = child_main
        self._owner = owner
        self._stats = stats
        self._processes = processes
        self._children: list[_Child] = []
        self._callbacks: dict[str, Any] = {}
        self._stop: Signal = threading.Event()

    @property
    def started(self) -> int:
        """Reader processes of this term."""
        return len(self._children)

    def open(self, stop: Signal) -> None:
        """Start the term's fixed children (none under auto), not waiting for them to be ready."""
        # Children are told to stop by stop(), as soon as the term ends; the signal only
        # ends a wait for new children to be ready.
        self._stop = stop
        self._children = []
        self._add(self._processes)  # not waited for: the lease keeper starts after this

    def expect(self, shards: int) -> None:
        """Nothing to do: N processes are fixed for the term (auto grows them with `grow_to`)."""
        del shards  # a fixed number of processes, started with the term

    def grow_to(self, processes: int) -> None:
        """Start reader processes until there are `processes` of them, and wait until the
        new ones are ready (the lease keeper runs meanwhile), so they start reading
        together."""
        for child in self._add(processes):
            self._wait_ready(child, time.monotonic() + READY_WAIT_S)

    def _add(self, processes: int) -> list[_Child]:
        added = processes - len(self._children)
        if added <= 0:
            return []
        new = [self._child(len(self._children) + i) for i in range(added)]
        self._children += new
        log.info("process.started", processes=len(self._children), added=added)
        return new

    def _wait_ready(self, child: _Child, deadline: float) -> None:
        while not child.ready.wait(0.05):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return

    def _child(self, index: int) -> _Child:
        return _Child(
            index=index,
            main=self._child_main,
            settings=self._settings,
            owner=self._owner,
            stats=self._stats,
            on_end=self._callbacks,
        )

    def start(
        self,
        stream_arn: str,
        shard: Shard,
        checkpoint: Checkpoint | None,
        initial: str,
        on_end: Any,
    ) -> _Handle:
        """Hand the shard to the child reading the fewest, dead children replaced first."""
        self._replace_dead()
        child = min(self._children, key=lambda c: len(c.handles))
        handle = _Handle(child)
        child.handles[shard.shard_id] = handle
        self._callbacks[shard.shard_id] = on_end
        child.send(("read", stream_arn, shard, checkpoint, initial))
        return handle

    def _replace_dead(self) -> None:
        for index, child in enumerate(self._children):
            if not child.process.is_alive():
                log.error("process.died", process=child.name, exitcode=child.process.exitcode)
                self._children[index] = self._child(index)

    def stop(self) -> None:
        """Tell every child to stop reading and delivering now (its readers then end
        their batches, checkpoint and report each shard ended)."""
        for child in self._children:
            child.send(("stop",))

    def close(self) -> None:
        """The runner has waited for the shards (within the stop budget): the children
        only have to exit now; one that does not within a second is killed."""
        self.stop()
        deadline = time.monotonic() + CLOSE_S
        for child in self._children:
            child.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                log.error("process.stop_timeout", process=child.name)
                child.process.kill()
                child.process.join(timeout=CLOSE_S)  # reaped: gone before the parent exits
            child.conn.close()
        self._children = []


class ReaderPool(Launcher, Protocol):
    """Reader processes that can be added to during a term (ProcessLauncher)."""

    @property
    def started(self) -> int:
        """Reader processes this term (0: shards are still read in the parent)."""
        ...

    def grow_to(self, processes: int) -> None:
        """Have `processes` of them; returns once the new ones are ready (or a stop, or 10 s)."""
        ...


class AutoLauncher:
    """`ORDERSTREAM_PROCESSES=auto`: shards are read in this process while there is one
    at a time; once the runner expects several, new shards go to reader processes, one
    per core up to the number of shards (a shard already read here stays here until it
    ends). Children, once started, live until the term ends."""

    def __init__(self, *, local: Launcher, processes: ReaderPool, cores: int) -> None:
        self._local = local
        self._processes = processes
        self._cores = cores

    def open(self, stop: Signal) -> None:
        """Both launchers on the term's stop; no child starts until `expect` wants several."""
        self._local.open(stop)
        self._processes.open(stop)

    def expect(self, shards: int) -> None:
        """Several shards at once: grow to one reader process per shard, up to the cores."""
        wanted = min(self._cores, shards)
        if wanted > 1:
            self._processes.grow_to(wanted)

    def start(
        self,
        stream_arn: str,
        shard: Shard,
        checkpoint: Checkpoint | None,
        initial: str,
        on_end: Callable[[], None],
    ) -> ReaderHandle:
        """To the reader processes once any started this term, else a thread here."""
        launcher: Launcher = self._processes if self._processes.started else self._local
        return launcher.start(stream_arn, shard, checkpoint, initial, on_end)

    def stop(self) -> None:
        """Pass the stop on to both launchers (only the children need telling)."""
        self._local.stop()
        self._processes.stop()

    def close(self) -> None:
        """Children first (they exit, or are killed, within a second), then the local one."""
        self._processes.close()
        self._local.close()


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU
    quota (a container's `--cpus`), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    cores = cores or os.cpu_count() or 1
    quota = _cgroup_quota(Path("/sys/fs/cgroup/cpu.max"))
    return max(1, min(cores, quota) if quota else cores)


def _cgroup_quota(path: Path) -> int | None:
    """`cpu.max` holds "<quota> <period>" or "max <period>": the quota in whole cores,
    rounded up, or None when there is none (or no cgroup v2 here)."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


ChildMain = Callable[[WorkerSettings, str, int, Connection], None]
"""A reader process's entry (spawned, so a module-level function): it builds the
process's pipeline and runs a ReaderProcess. The composition root passes it in."""


class RenewableLease(Protocol):
    """The parent's lease as a reader process checks it (FollowerLease)."""

    def renew(self) -> None:
        """LeaseLostError once the parent no longer holds the lease; other errors are retried."""
        ...


class ReaderProcess:
    """Inside a reader process: its shard threads and its link to the parent."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        owner: str,
        index: int,
        conn: Connection,
        stop: threading.Event,
        lease: RenewableLease,
        launcher: Launcher,
        stats: Stats,
        close: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._owner = owner
        self._name = f"reader-{index}"
        self._conn = conn
        self.stop = stop
        self._lease = lease
        self._launcher = launcher
        self._stats = stats
        self._close = close
        self._send_lock = threading.Lock()
        self._readers: list[ReaderHandle] = []
        # The parent decides when to stop (SIGTERM to it, Ctrl-C to the whole group): a
        # child's own SIGINT is ignored, and a SIGTERM sent to it alone stops it cleanly.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        self._launcher.open(self.stop)
        self._send(("ready",))

    def run(self) -> None:
        """Read the shards the parent assigns until told to stop, then flush and report."""
        threading.Thread(target=self._keep, name="keep", daemon=True).start()
        self._listen()
        deadline = time.monotonic() + self._settings.shutdown_s
        for reader in self._readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        self._close()
        self._send(("stats", *self._stats.snapshot()))
        self._conn.close()

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            try:
                self._conn.send(message)
            except OSError:
                self.stop.set()  # the parent is gone

    def _listen(self) -> None:
        """Start a reader per assignment; stop when told, when the parent is gone, or
        when `stop` is set here (its own SIGTERM, a lost lease): the pipe is polled, not
        waited on, so nothing but the parent's next message could end a blocking recv."""
        try:
            while not self.stop.is_set():
                if not self._conn.poll(LISTEN_POLL_S):
                    continue
                message = self._conn.recv()
                if message[0] == "stop":
                    break
                self._start_reader(*message[1:])
        except (EOFError, OSError):
            log.warning("process.orphaned", process=self._name)
        self.stop.set()

    def _start_reader(
        self, arn: str, shard: Shard, checkpoint: Checkpoint | None, initial: str
    ) -> None:
        self._readers.append(
            self._launcher.start(
                arn, shard, checkpoint, initial, lambda: self._send(("ended", shard.shard_id))
            )
        )

    def _keep(self) -> None:
        """Send counters every second; check the lease is still the parent's."""
        next_check = time.monotonic() + self._settings.lease_s / 3
        while not self.stop.wait(SNAPSHOT_EVERY_S):
            self._send(("stats", *self._stats.snapshot()))
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + self._settings.lease_s / 3
            try:
                self._lease.renew()
            except LeaseLostError:
                log.error("lease.lost", owner=self._owner, process=self._name)
                self.stop.set()
            except Exception as exc:
                log.warning("lease.renew_failed", error=str(exc), process=self._name)
