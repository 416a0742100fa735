"""The poller's lifecycle: lease, discovery, one reader per ready shard, stats, stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.batch.processor import BatchProcessor
from worker.core.errors import (
    LeaseLostError,
    SetupError,
    ShardNotFoundError,
    StreamError,
    TrimmedDataError,
)
from worker.core.models import Shard
from worker.core.runtime import THREADS, Runtime, Signal, Task
from worker.core.stats import Stats, delivered
from worker.poller.reader import ShardReader
from worker.poller.shards import Lost, plan
from worker.poller.stream import Position, StreamSource, TableClient, latest_stream_arn
from worker.state.checkpoints import (
    TRIM_HORIZON,
    Checkpoint,
    CheckpointStore,
    Meeting,
    table_arn_of,
)

log = structlog.get_logger()


@dataclass(frozen=True)
class RunnerConfig:
    """The runner's part of the settings (`wiring.runner_config`): no WorkerSettings here."""

    table: str
    stream_arn: str | None
    start: str
    idle_wait_s: float
    discovery_interval_s: float
    stats_interval_s: float
    shutdown_s: float
    max_shards: int


ReaderHandle = Task  # a shard being read somewhere: a thread here, or a child process


class TermLease(Protocol):
    """The app lease as the runner holds it (worker.state.lease.Lease): taken as a
    standby, renewed through a term, given up at its end."""

    @property
    def owner(self) -> str:
        """Who we are, as the lease item names its holder."""
        ...

    @property
    def duration_s(self) -> float:
        """How long a take or renewal holds."""
        ...

    @property
    def maybe_held(self) -> bool:
        """A take whose answer was lost may have landed: release it on the way out."""
        ...

    @property
    def valid_until_s(self) -> float:
        """Until when the lease is surely ours (the clock before the last renewal)."""
        ...

    def wait_for(self, stop: Signal, poll_s: float = ...) -> bool:
        """Block as a standby until the lease is ours (True) or `stop` is set (False)."""
        ...

    def renew(self) -> None:
        """Extend it; LeaseLostError once another replica holds it."""
        ...

    def release(self) -> None:
        """Give it up at once, so a standby takes over without waiting it out."""
        ...

    def current_owner(self) -> str | None:
        """Who holds it now (None: nobody), for the standby's log."""
        ...


class Retrier(Protocol):
    """The retry lane's retrier as a term runs it (worker.delivery.retrier.LaneRetrier)."""

    def run(self, stop: Signal) -> None:
        """Work the lane until `stop` is set."""
        ...


class Launcher(Protocol):
    """Starts shard readers for one term as lease holder."""

    def open(self, stop: Signal) -> None:
        """A term begins: readers started from now on end when `stop` is set."""
        ...

    def expect(self, shards: int) -> None:
        """`shards` will be read at once (those read now and those about to start)."""
        ...

    def start(
        self,
        stream_arn: str,
        shard: Shard,
        checkpoint: Checkpoint | None,
        initial: str,
        on_end: Callable[[], None],
    ) -> ReaderHandle:
        """Read `shard` from `checkpoint`, or from `initial` when it has none."""
        ...

    def stop(self) -> None:
        """The term's stop signal is set: pass it on to readers elsewhere, at once."""
        ...

    def close(self) -> None:
        """The term is over, its readers waited for: release what is left (child processes)."""
        ...


class ThreadLauncher:
    """The default: one thread per shard in this process."""

    def __init__(
        self,
        *,
        config: RunnerConfig,
        source: StreamSource,
        store: CheckpointStore,
        processor: BatchProcessor,
        stats: Stats,
        runtime: Runtime = THREADS,
    ) -> None:
        self._config = config
        self._source = source
        self._store = store
        self._processor = processor
        self._stats = stats
        self._runtime = runtime
        self._stop = runtime.event()

    def open(self, stop: Signal) -> None:
        """This term's readers share its stop signal."""
        self._stop = stop

    def expect(self, shards: int) -> None:
        """Nothing to prepare: each shard gets its thread in `start`."""
        del shards  # threads are started per shard, nothing to prepare

    def start(
        self,
        stream_arn: str,
        shard: Shard,
        checkpoint: Checkpoint | None,
        initial: str,
        on_end: Callable[[], None],
    ) -> ReaderHandle:
        """A ShardReader on a thread of its own; `on_end` runs however the reader ends."""
        reader = ShardReader(
            source=self._source,
            stream_arn=stream_arn,
            shard=shard,
            checkpoint=checkpoint,
            start=initial,
            processor=self._processor,
            store=self._store,
            stats=self._stats,
            stop=self._stop,
            idle_wait_s=self._config.idle_wait_s,
            runtime=self._runtime,
        )

        def read() -> None:
            try:
                reader.run()
            finally:
                on_end()

        return self._runtime.spawn(f"shard-{shard.shard_id[-12:]}", read)

    def stop(self) -> None:
        """Nothing to pass on: the readers watch the term's stop signal themselves."""
        return None  # the readers share the term's stop signal

    def close(self) -> None:
        """Nothing to release: the threads end with their shards or the term."""
        return None


@dataclass
class _Active:
    """One term as lease holder: its readers and its own stop signal."""

    stop: Signal
    wake: Signal
    readers: dict[str, ReaderHandle] = field(default_factory=dict)
    lane: Task | None = None  # the lane retrier, when the retry lane is on


class Runner:
    """The poller: a standby until the lease is ours, then a term of shard readers
    until the lease is lost or a stop is requested."""

    def __init__(
        self,
        *,
        config: RunnerConfig,
        source: StreamSource,
        tables: TableClient,
        store: CheckpointStore,
        lease: TermLease,
        processor: BatchProcessor,
        stats: Stats,
        stop: Signal,
        runtime: Runtime = THREADS,
        launcher: Launcher | None = None,
        retrier: Retrier | None = None,
    ) -> None:
        """`retrier` runs in each term beside the readers (the retry lane on)."""
        self._config = config
        self._retrier = retrier
        self._runtime = runtime
        self._launcher = launcher or ThreadLauncher(
            config=config,
            source=source,
            store=store,
            processor=processor,
            stats=stats,
            runtime=runtime,
        )
        self._source = source
        self._tables = tables
        self._store = store
        self._lease = lease
        self._processor = processor
        self._stats = stats
        self._stop = stop
        self._clock = runtime.time
        self.ready = runtime.event()  # lease held and shards being read (for /readyz)
        self._term: _Active | None = None

    def request_stop(self) -> None:
        """SIGTERM: stop now. The current term's stop is set at once, not at the loop's
        next turn, so no delivery attempt starts after this call. The term's first: a
        sink that refuses on the process stop (EventBridge) finds the term over, so the
        change it refused is left for the next owner, never parked."""
        term = self._term
        if term is not None:
            term.stop.set()
            term.wake.set()
        self._stop.set()

    def run(self) -> None:
        """Wait as a standby, serve while the lease is ours, until `stop` is set."""
        while not self._stop.is_set():
            log.info("lease.waiting", owner=self._lease.owner, holder=self._holder())
            if not self._lease.wait_for(self._stop):
                if self._lease.maybe_held:  # a take that may have landed unanswered
                    self._release(self._runtime.monotonic() + self._config.shutdown_s * 0.9)
                return
            log.info("lease.acquired", owner=self._lease.owner)
            self._serve()

    def _holder(self) -> str | None:
        """Who holds the lease now (None: nobody, or unreadable): a standby's log says
        whom it waits for."""
        try:
            return self._lease.current_owner()
        except Exception:  # the wait itself retries and reports the state table's errors
            return None

    # -- one term ----------------------------------------------------------------------

    def _serve(self) -> None:
        term = _Active(stop=self._runtime.event(), wake=self._runtime.event())
        self._term = term
        if self._stop.is_set():
            term.stop.set()  # a stop requested while the lease was being taken
        self._launcher.open(term.stop)
        keeper = self._runtime.spawn("lease", lambda: self._keep_lease(term))
        if self._retrier is not None:
            retrier = self._retrier
            term.lane = self._runtime.spawn("lane", lambda: retrier.run(term.stop))
        next_discovery = 0.0
        next_stats = self._runtime.monotonic() + self._config.stats_interval_s
        last_stats = (self._runtime.monotonic(), self._stats.counts())
        arn: str | None = None
        try:
            while not (self._stop.is_set() or term.stop.is_set()):
                now = self._runtime.monotonic()
                if now >= next_discovery or term.wake.is_set():
                    term.wake.clear()
                    arn = self._discover(term, arn)
                    next_discovery = now + self._config.discovery_interval_s
                if now >= next_stats:
                    last_stats = self._emit_stats(last_stats, term)
                    next_stats = now + self._config.stats_interval_s
                term.wake.wait(0.2)
        finally:
            if term.stop.is_set() and not self._stop.is_set():
                # The keeper's renewal or a reader's fenced checkpoint found the lease
                # taken: one event, whichever noticed first.
                log.error("lease.lost", owner=self._lease.owner)
            self._drain(term)
            keeper.join(timeout=5)

    def _discover(self, term: _Active, arn: str | None) -> str | None:
        # Before loading checkpoints: a reader that ends after the load stays "active"
        # this round instead of being restarted from its stale checkpoint.
        self._forget_finished(term)
        try:
            latest = self._config.stream_arn or latest_stream_arn(self._tables, self._config.table)
            current, start = self._stream_to_read(latest)
            if arn and current != arn:
                log.warning("stream.changed", old_stream_arn=arn, stream_arn=current)
            try:
                shards = self._source.shards(current)
            except ShardNotFoundError:
                if current == latest:
                    raise
                self._abandon(current)  # an older stream gone before we finished it
                term.wake.set()
                return current
            meeting = self._store.meet(
                current, start, shards, lambda shard: self._trimmed_start(current, shard)
            )
            checkpoints = self._store.load_all(current)
            shard_plan = plan(
                shards, checkpoints, set(term.readers), meeting.aged_before, meeting.owing()
            )
            for lost in shard_plan.lost:
                self._report_lost(current, lost, checkpoints.get(lost.shard_id))
            self._record_new(current, shards, checkpoints)
            if current != latest and _all_finished(shards, checkpoints, term):
                self._store.finish_stream(current)  # on to the next stream, at once
                term.wake.set()
        except LeaseLostError:
            term.stop.set()
            return arn
        except SetupError as exc:
            log.error("discovery.failed", error=str(exc))
            return arn
        except (StreamError, ClientError, BotoCoreError) as exc:
            # Transient trouble (throttling, 5xx, timeouts): try again next round.
            log.warning("discovery.failed", error=str(exc))
            return arn
        self._start_ready(term, current, shard_plan.ready, checkpoints, meeting)
        log.debug(
            "discovery.done",
            stream_arn=current,
            shards=len(shards),
            reading=len(term.readers),
            waiting=len(shard_plan.waiting),
        )
        self.ready.set()
        return current

    def _forget_finished(self, term: _Active) -> None:
        for shard_id, handle in list(term.readers.items()):
            if not handle.is_alive():
                del term.readers[shard_id]

    def _start_ready(
        self,
        term: _Active,
        stream_arn: str,
        ready: list[Shard],
        checkpoints: dict[str, Checkpoint],
        meeting: Meeting,
    ) -> None:
        """A reader for each shard that may start now, up to ORDERSTREAM_MAX_SHARDS."""
        room = self._config.max_shards - len(term.readers)
        starting = [s for s in ready[: max(room, 0)] if s.shard_id not in term.readers]
        if starting:  # never two readers on one shard
            self._launcher.expect(len(term.readers) + len(starting))
        for shard in starting:
            checkpoint, initial = meeting.resume(shard, checkpoints.get(shard.shard_id))
            # A finished parent may free its children: on_end discovers again at once.
            term.readers[shard.shard_id] = self._launcher.start(
                stream_arn, shard, checkpoint, initial, term.wake.set
            )

    def _stream_to_read(self, latest: str) -> tuple[str, str]:
        """The table's streams are read one after another, in order (a disabled and
        re-enabled stream gets a new ARN): an older stream we met and did not finish
        first. A stream after the first one is read from its start."""
        if self._config.stream_arn:
            return latest, self._config.start
        met = self._store.met_streams(table_arn_of(latest))
        older = sorted(s for s, finished in met.items() if s < latest and not finished)
        if older:
            return older[0], self._config.start
        met_another = any(s != latest for s in met)
        return latest, TRIM_HORIZON if met_another else self._config.start

    def _abandon(self, stream_arn: str) -> None:
        """An older stream is gone (24 h after it was disabled): whatever we had not
        read of it is lost, and said so."""
        for checkpoint in self._store.load_all(stream_arn).values():
            if not checkpoint.finished:
                lost = Lost(checkpoint.shard_id, checkpoint.sequence_number)
                self._report_lost(stream_arn, lost, checkpoint)
        self._store.finish_stream(stream_arn)

    def _trimmed_start(self, stream_arn: str, shard: Shard) -> str | None:
        """Whether a shard's first record is already gone (asked once, at the first
        meeting): None if not; if so the first record still there ("" for none), so a
        later first read begins there and a trim after the meeting is reported."""
        try:
            if shard.starting_sequence:
                self._source.iterator(
                    stream_arn,
                    shard.shard_id,
                    Position("AT_SEQUENCE_NUMBER", shard.starting_sequence),
                )
                return None
        except TrimmedDataError:
            pass
        iterator = self._source.iterator(stream_arn, shard.shard_id, Position("TRIM_HORIZON"))
        records = self._source.read(shard.shard_id, iterator).records
        return records[0].sequence_number if records else ""

    def _record_new(
        self, stream_arn: str, shards: list[Shard], checkpoints: dict[str, Checkpoint]
    ) -> None:
        """Record every shard the moment it is first listed: one that ages out before
        it is read (a child waiting behind a slow parent, generations deep) is then
        known, and reported lost, instead of vanishing unseen."""
        for shard in shards:
            if shard.shard_id not in checkpoints:
                known = Checkpoint(shard.shard_id, None, False, shard.parent_id)
                self._store.save(stream_arn, known)
                checkpoints[shard.shard_id] = known

    def _report_lost(self, stream_arn: str, lost: Lost, checkpoint: Checkpoint | None) -> None:
        """Say it loudly, once: the shard is then marked finished (nothing left to read)."""
        log.error(
            "data_loss",
            reason="shard_aged_out",
            shard_id=lost.shard_id,
            after_sequence=lost.after_sequence,
            before_sequence=None,
        )
        self._stats.add("data_loss")
        parent = checkpoint.parent_id if checkpoint else None
        self._store.save(stream_arn, Checkpoint(lost.shard_id, lost.after_sequence, True, parent))

    def _keep_lease(self, term: _Active) -> None:
        """Renew every third of the lease. Transient failures are retried at the next
        turn; once the lease would lapse before a renewal could land, step down, since
        a standby may then take it (clocks agree to well under a third of a lease)."""
        interval = self._lease.duration_s / 3
        while not term.stop.wait(interval):
            try:
                self._lease.renew()
            except LeaseLostError:
                term.stop.set()
                term.wake.set()
            except Exception as exc:
                log.warning("lease.renew_failed", error=str(exc))
                if self._runtime.time() >= self._lease.valid_until_s - interval:
                    log.error("lease.lapsing", owner=self._lease.owner, error=str(exc))
                    term.stop.set()
                    term.wake.set()

    def _emit_stats(
        self, previous: tuple[float, dict[str, int]], term: _Active
    ) -> tuple[float, dict[str, int]]:
        now = self._runtime.monotonic()
        counts = self._stats.counts()
        elapsed = max(now - previous[0], 1e-6)

        def rate(name: str) -> float:
            return round((counts.get(name, 0) - previous[1].get(name, 0)) / elapsed, 2)

        sent, sent_before = delivered(counts), delivered(previous[1])
        log.info(
            "worker.stats",
            records_per_s=rate("records"),
            notifications_per_s=round((sent - sent_before) / elapsed, 2),
            retries=counts.get("retries", 0),
            dead_lettered=counts.get("dead_lettered", 0),
            checkpoints=counts.get("checkpoints", 0),
            data_loss=counts.get("data_loss", 0),
            rejected=counts.get("rejected", 0),
            filtered=counts.get("filtered", 0),
            throttled=counts.get("throttled", 0),
            shards=len(term.readers),
            lag=self._stats.lag(self._clock()),
            lane={
                sink: {"parked": g.parked, "oldest_parked_ms": round(g.oldest_age_s * 1000)}
                for sink, g in self._stats.lane().items()
            },
            sinks=self._stats.sinks(),
        )
        return now, counts

    def _drain(self, term: _Active) -> None:
        """Stop readers: they finish their batch and checkpoint, within the budget."""
        self.ready.clear()
        term.stop.set()
        self._launcher.stop()
        # Keep a second of the budget for the lease release and the summary line.
        started = self._runtime.monotonic()
        deadline = started + max(0.5, self._config.shutdown_s - 1.0)
        for handle in term.readers.values():
            handle.join(timeout=max(0.0, deadline - self._runtime.monotonic()))
        if term.lane is not None:  # its attempt in flight ends before the lease goes
            term.lane.join(timeout=max(0.0, deadline - self._runtime.monotonic()))
            if term.lane.is_alive():
                log.warning("delivery.abandoned", in_flight=1, lane=True)
        stuck = [s for s, handle in term.readers.items() if handle.is_alive()]
        self._launcher.close()
        if stuck:
            log.error("shutdown.timeout", shards=stuck)
        if self._stop.is_set():
            self._release(started + self._config.shutdown_s * 0.95)

    def _release(self, deadline: float) -> None:
        """Give the lease up, retrying passing AWS trouble while the budget lasts: a
        standby then takes over at once instead of waiting the lease out."""
        pause = self._runtime.event()  # never set: a plain wait on the runtime's clock
        delay = 0.05
        while True:
            try:
                self._lease.release()
            except Exception as exc:
                if self._runtime.monotonic() + delay >= deadline:
                    log.warning("lease.release_failed", error=str(exc))
                    return
                pause.wait(delay)
                delay = min(delay * 2, 0.5)
                continue
            log.info("lease.released", owner=self._lease.owner)
            return


def _all_finished(shards: list[Shard], checkpoints: dict[str, Checkpoint], term: _Active) -> bool:
    """Every shard of a (closed) stream read to its end, and no reader still on it."""
    return all(
        (c := checkpoints.get(s.shard_id)) is not None
        and c.finished
        and s.shard_id not in term.readers
        for s in shards
    )
