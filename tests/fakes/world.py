"""The poller wired entirely on fakes: real StreamSource, reader, runner, processor and
dispatcher over the Streams fake, an in-memory checkpoint store, lease and sink."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import wait_until
from tests.fakes.checkpoints import MemoryCheckpointStore
from tests.fakes.dynamodb import UnreachableClient
from tests.fakes.lease import FakeLease, LeaseBoard
from tests.fakes.notify import MemoryDeadLetters
from tests.fakes.runtime import VirtualTimeRuntime
from tests.fakes.sinks import RecordingSink
from tests.fakes.streams import FakeStreams
from worker.batch.processor import BatchProcessor
from worker.core.models import Shard
from worker.core.rules import parse_rules
from worker.core.runtime import THREADS, Runtime, Signal
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.poller.runner import Runner, RunnerConfig
from worker.poller.stream import StreamSource
from worker.state.checkpoints import Checkpoint


def no_sleep(_: float) -> None:
    return None


def build_processor(
    sink: RecordingSink,
    stop: Signal,
    stats: Stats,
    dlq: MemoryDeadLetters | None = None,
    *,
    clock: Callable[[], float] = lambda: 1_714_557_600.0,
    max_attempts: int = 1,
) -> tuple[BatchProcessor, Dispatcher]:
    """A real processor and dispatcher delivering to `sink`, retry waits skipped."""
    dispatcher = Dispatcher(
        sinks={sink.name: sink},
        rules=parse_rules(None, None, (sink.name,)),
        policy=RetryPolicy(max_attempts=max_attempts, base_s=0.0, cap_s=0.0),
        dlq=dlq,
        stats=stats,
        concurrency=4,
        sleep=no_sleep,
    )
    return BatchProcessor(dispatcher, dlq, stats, clock), dispatcher


def shard_of(streams: FakeStreams, shard_id: str) -> Shard:
    """The Shard value the worker would discover for `shard_id`."""
    listed = StreamSource(streams).shards(streams.stream_arn)
    (shard,) = [s for s in listed if s.shard_id == shard_id]
    return shard


@dataclass
class Poller:
    """One replica: a Runner on its own thread, with its own lease and store view."""

    runner: Runner
    stop: Signal
    dispatcher: Dispatcher
    lease: FakeLease
    store: MemoryCheckpointStore
    stats: Stats
    runtime: Runtime = THREADS
    thread: threading.Thread | None = None
    closed: bool = False

    def start(self) -> Poller:
        self.thread = threading.Thread(target=self.runner.run, name="runner", daemon=True)
        self.thread.start()
        return self

    def halt(self, timeout: float = 10.0, *, time_passes: bool = True) -> None:
        """Graceful stop; returns once the runner has exited. On a virtual clock, time
        passes meanwhile as it would (`time_passes`), or stands still: then only the
        stop itself can end the runner's waits. `timeout` is real seconds, a safety net."""
        self.stop.set()
        if self.thread is not None:
            thread, runtime = self.thread, self.runtime
            if time_passes and isinstance(runtime, VirtualTimeRuntime):

                def stopped() -> bool:
                    runtime.skip()
                    return not thread.is_alive()

                wait_until(stopped, timeout)
            thread.join(timeout)
            assert not thread.is_alive(), "the runner did not stop"
        if not self.closed:
            self.closed = True
            self.dispatcher.close()


@dataclass
class World:
    """A stream, the checkpoints, a lease board and a sink, shared by replicas."""

    streams: FakeStreams = field(default_factory=lambda: FakeStreams(page_size=2))
    board: LeaseBoard = field(default_factory=LeaseBoard)
    sink: RecordingSink = field(default_factory=RecordingSink)
    store: MemoryCheckpointStore = field(default_factory=MemoryCheckpointStore)
    runtime: Runtime = THREADS
    pollers: list[Poller] = field(default_factory=list)

    @classmethod
    def on_virtual_time(cls) -> World:
        """The stream, lease and runners on one virtual clock (`VirtualTimeRuntime`):
        time passes only as the test drives it."""
        runtime = VirtualTimeRuntime()
        return cls(
            streams=FakeStreams(page_size=2, clock=runtime.monotonic, wall_clock=runtime.time),
            board=LeaseBoard(clock=runtime.time),
            runtime=runtime,
        )

    def pass_time(self, until: Callable[[], object], timeout: float = 10.0) -> None:
        """On virtual time: move the clock from one wait's deadline to the next until
        `until()` holds (`timeout` is real seconds, a safety net)."""
        runtime = self.runtime
        assert isinstance(runtime, VirtualTimeRuntime)

        def done() -> bool:
            if until():
                return True
            runtime.skip()
            return False

        wait_until(done, timeout)

    def poller(self, start: str = "TRIM_HORIZON", lease_s: float = 3.0, **config: Any) -> Poller:
        """A new replica on the shared stream and checkpoints (a restart, or a standby)."""
        stop = self.runtime.event()
        stats = Stats()
        lease = FakeLease(self.board, owner=f"replica-{len(self.pollers) + 1}", duration_s=lease_s)
        store = self.store.fenced_by(lease)
        processor, dispatcher = build_processor(self.sink, stop, stats)
        settings: dict[str, Any] = {
            "table": "Users",
            "stream_arn": self.streams.stream_arn,
            "start": start,
            "idle_wait_s": 0.2,
            "discovery_interval_s": 0.05,
            "stats_interval_s": 60.0,
            "shutdown_s": 5.0,
            "max_shards": 64,
            **config,
        }
        runner = Runner(
            config=RunnerConfig(**settings),
            source=StreamSource(self.streams),
            tables=UnreachableClient(),
            store=store,
            lease=lease,
            processor=processor,
            stats=stats,
            stop=stop,
            runtime=self.runtime,
        )
        poller = Poller(runner, stop, dispatcher, lease, store, stats, self.runtime)
        self.pollers.append(poller)
        return poller

    def finished(self, shard_id: str) -> bool:
        checkpoint = self.store.get(shard_id)
        return checkpoint is not None and checkpoint.finished

    def checkpoint(self, shard_id: str) -> str | None:
        checkpoint: Checkpoint | None = self.store.get(shard_id)
        return checkpoint.sequence_number if checkpoint else None

    def close(self) -> None:
        for poller in self.pollers:
            poller.halt()
