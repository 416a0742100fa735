"""One simulated run: the stream, the state table, the writer, the replicas, the faults.

Driver tasks (no process of their own, never crashed) write orders, split shards, trim
and age out records past the retention, expire iterators, and run each replica's life:
start a worker process, crash it or send it SIGTERM at random times, restart it after a
random delay (sometimes longer than the retention). After `duration_s` the faults stop
and the system settles with at least one live replica; then every process gets SIGTERM
and the oracle reads what is left (tests/sim/oracle.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import zlib
from dataclasses import dataclass
from typing import Any

import structlog

from tests.fakes.aws_sinks import FakeProfiles
from tests.fakes.statetable import FakeDynamoDB, Write
from tests.fakes.streams import FakeStreams
from tests.sim.doubles import fault_error
from tests.sim.ledger import Ledger, ProcessLife, Written
from tests.sim.runtime import (
    EPOCH_S,
    Crashed,
    Process,
    ProcessRuntime,
    Scheduler,
    SimTask,
    SimulationError,
)
from tests.sim.scenario import Scenario, draw
from tests.sim.wiring import STATE_TABLE, build
from worker.core.models import Notification
from worker.core.rules import Rules, parse_rules

NEXT = {
    "Pending": ("Processing", "Cancelled"),
    "Processing": ("Shipped", "Cancelled"),
    "Shipped": ("Delivered",),
}
OVERRUN_GRACE_S = 30.0  # past SHUTDOWN_S, a process that has not exited is killed


class Host:
    """A simulated process as its doubles see it: clock, I/O, faults, the ledger."""

    def __init__(self, world: World, process: Process, life: ProcessLife) -> None:
        self.world = world
        self.process = process
        self.life = life
        self.runtime = ProcessRuntime(world.sched, process)
        self.scenario = world.scenario
        self.rng = world.sched.rng
        self.ledger = world.ledger

    def io(self, latency: float) -> None:
        self.runtime.io(latency)

    def latency(self) -> float:
        return self.rng.uniform(*self.scenario.io_latency_s)

    def fault(self, service: str, operation: str) -> tuple[Any, bool]:
        return self.world.fault(service, operation)

    def tick(self) -> int:
        return self.world.tick()

    def now(self) -> float:
        return self.world.sched.now

    def trace(self, *what: Any) -> None:
        self.world.trace(self.life.name, *what)

    def sink_status(self, notification: Notification) -> int:
        return self.world.sink_status(notification)

    def deliver(self, sink: str, notification: Notification) -> None:
        self.world.deliver(sink, notification)


@dataclass
class Incarnation:
    process: Process
    life: ProcessLife
    main: SimTask
    stop: Any
    runner: Any


class World:
    def __init__(self, seed: int) -> None:
        self.scenario: Scenario = draw(seed)
        sc = self.scenario
        self.sched = Scheduler(seed)
        self.ledger = Ledger()
        self._tick = 0
        self.rules: Rules = parse_rules(None, sc.routes, sc.sinks)
        now = lambda: self.sched.now  # noqa: E731
        self.streams = FakeStreams(
            page_size=self.sched.rng.choice((1, 2, 100)),
            records_per_read=self.sched.rng.choice((2, 5, 1000)),
            # Half the worlds take a short page as GetRecords' 1 MB cut: catch-up reading
            # (again at once) meets every planned fault, as paced reads do in the others.
            cut_by_size=self.sched.rng.random() < 0.5,
            clock=now,
            wall_clock=lambda: EPOCH_S + self.sched.now,
        )
        self.state = FakeDynamoDB(page_items=sc.query_page)
        # The orders table as enrichment reads it: every user's PROFILE, but one maybe.
        self.profiles = FakeProfiles()
        for n in range(sc.users):
            if n != sc.notify.no_profile_user:
                self.profiles.add(f"U{n}", f"user {n}", f"u{n}@example.com")
        self.state.watchers.append(self._on_write)
        self.children: dict[str, list[str]] = {}
        self.closed_at: dict[str, float] = {}
        self.aged: set[str] = set()
        self.by_shard: dict[str, list[Written]] = {}
        self.trimmed: dict[str, int] = {}
        self.roots = [self._add_shard(self.streams.add_shard()) for _ in range(sc.shards)]
        self.orders: dict[tuple[str, str], str] = {}
        self.too_large: dict[str, bool] = {}
        self.running: dict[int, Incarnation] = {}
        self.incarnations: list[Incarnation] = []
        self.active = True
        self.final = False
        self.finished = False
        self.last_start = 0.0

    # -- bookkeeping -----------------------------------------------------------------------

    def tick(self) -> int:
        self._tick += 1
        return self._tick

    def trace(self, who: str, *what: Any) -> None:
        self.ledger.trace.append((self.tick(), round(self.sched.now, 6), who, *what))

    def _add_shard(self, shard_id: str) -> str:
        self.ledger.born[shard_id] = self.sched.now
        self.by_shard[shard_id] = []
        self.trimmed[shard_id] = 0
        return shard_id

    def current_process(self) -> Process | None:
        task = self.sched.current
        return task.process if task is not None else None

    # -- observers (called inside fake calls and log calls) --------------------------------

    def _on_write(self, write: Write) -> None:
        process = self.current_process()
        who = process.name if process else "-"
        after, before = write.after, write.before
        pk, sk = write.key
        if after is not None and "CHECKPOINT" in sk and "shard_id" in after:
            seq = after.get("sequence_number", {}).get("S")
            shard = after["shard_id"]["S"]
            self.ledger.checkpoints.append(
                (self.tick(), self.sched.now, shard, int(seq) if seq else None, who)
            )
            self.trace(who, "checkpoint", shard, seq, after.get("finished", {}).get("BOOL"))
        if (
            after is not None
            and "DLQ" in pk
            and {"sink", "sequence_number", "shard_id"} <= set(after)
        ):
            key = (after["shard_id"]["S"], int(after["sequence_number"]["S"]), after["sink"]["S"])
            self.ledger.dead_letters.setdefault(key, self.tick())
            self.ledger.dead_reasons.setdefault(key, after.get("error", {}).get("S", ""))
            self.trace(who, "dead_letter", *key)
        if pk.endswith("#LANE"):
            self._on_lane(who, before, after)
        if after is not None and sk.startswith("STREAM#") and self.ledger.met_at is None:
            # The application's durable first meeting with the stream (and its shards).
            self.ledger.met_at = self.sched.now
            self.ledger.met_shards = frozenset(after.get("met_shards", {}).get("SS", []))
            self.ledger.parents = {c: p for p, cs in self.children.items() for c in cs}
        owner = (before or {}).get("owner", {}).get("S")
        if process is not None and owner == who and write.after is None:
            self.ledger.of(who).released_tick = self.tick()
            self.trace(who, "lease_released")

    def _on_lane(self, who: str, before: Any, after: Any) -> None:
        """A lane entry parked (a new item), rescheduled (rewritten) or removed
        (delivered, or moved to the DLQ in the same transaction as its dead letter)."""
        item = after if after is not None else before
        key = (item["shard_id"]["S"], int(item["sequence_number"]["S"]), item["sink"]["S"])
        stays = self.ledger.lane_stays.setdefault(key, [])
        if before is None and after is not None:
            tick = self.tick()
            self.ledger.parked.setdefault(key, tick)
            stays.append([tick, None])
            self.trace(who, "parked", *key)
        elif after is None:
            if stays and stays[-1][1] is None:
                stays[-1][1] = self.tick()
            self.trace(who, "unparked", *key)
        else:
            self.trace(who, "rescheduled", *key, after.get("tries", {}).get("N"))

    def capture(self, _: Any, method: str, event: dict[str, Any]) -> Any:
        """structlog processor: every worker log event into the ledger, tagged by process."""
        process = self.current_process()
        if process is not None and process.dead:
            raise Crashed  # a dead process logs nothing
        who = process.name if process else "-"
        name = str(event.pop("event", ""))
        if name == "lease.acquired" and process is not None:
            self.ledger.of(who).term += 1
        self.ledger.events.append((self.tick(), self.sched.now, who, {"event": name, **event}))
        self.trace(who, method, name, sorted(event.items()))
        raise structlog.DropEvent

    # -- faults and sinks ------------------------------------------------------------------

    def fault(self, service: str, operation: str) -> tuple[Any, bool]:
        sc = self.scenario
        if not self.active:
            return None, False
        p = sc.state_fault_p if service == "state" else sc.stream_fault_p
        rng = self.sched.rng
        if p <= 0 or rng.random() >= p:
            return None, False
        ambiguous = (
            service == "state" and operation != "query" and rng.random() < sc.state_ambiguous_p
        )
        return fault_error(service, operation, rng.randrange(3)), ambiguous

    def sink_status(self, notification: Notification) -> int:
        plan, now, rng = self.scenario.sink, self.sched.now, self.sched.rng
        if self.active and any(a <= now < b for a, b in plan.outages):
            return 503
        if notification.id not in self.too_large:
            self.too_large[notification.id] = rng.random() < plan.p_too_large
        if self.too_large[notification.id]:
            return 413
        draw_ = rng.random()
        if self.active and draw_ < plan.p_transient:
            return rng.choice((500, 503, 429))
        if draw_ > 1 - plan.p_permanent:
            return 400
        return 200

    def deliver(self, sink: str, notification: Notification) -> None:
        self.deliver_id(sink, notification.id)

    def deliver_id(self, sink: str, notification_id: str) -> None:
        key = (sink, notification_id)
        if key not in self.ledger.durable:
            self.ledger.durable[key] = self.tick()
        self.trace("sink", "durable", sink, notification_id)

    # -- the stream's writer and its lifecycle -----------------------------------------

    def shard_for(self, key: str) -> str:
        shard = self.roots[zlib.crc32(key.encode()) % len(self.roots)]
        while shard in self.children:
            options = self.children[shard]
            shard = options[zlib.crc32((key + shard).encode()) % len(options)]
        return shard

    def write(
        self, kind: str, pk: str, sk: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> None:
        shard = self.shard_for(f"{pk}|{sk}")
        number = len(self.ledger.written) + 1
        image: dict[str, Any] = {"Keys": {"PK": {"S": pk}, "SK": {"S": sk}}, "NewImage": new}
        if old is not None:
            image["OldImage"] = old
        event_id = f"ev{number:05d}"
        seq = int(
            self.streams.put(shard, {"eventID": event_id, "eventName": kind, "dynamodb": image})
        )
        order = None
        old_status = old.get("Status", {}).get("S") if old else None
        new_status = new.get("Status", {}).get("S")
        if sk.startswith("ORDER#"):
            order = (pk, sk)
        change = order is not None and (kind == "INSERT" or old_status != new_status)
        written = Written(
            self.tick(), self.sched.now, shard, seq, event_id, order, old_status, new_status, change
        )
        self.ledger.written.append(written)
        self.by_shard[shard].append(written)
        self.trace("writer", kind, shard[-8:], seq, sk, old_status, new_status)

    def write_one(self) -> None:
        sc, rng = self.scenario, self.sched.rng
        movable = sorted(k for k, s in self.orders.items() if s in NEXT)
        choices = ["profile", "same"] + ["advance"] * 6 * bool(movable)
        if len(self.orders) < sc.max_orders:
            choices += ["insert"] * 3
        action = rng.choice(choices)
        user = f"U{rng.randrange(sc.users)}"
        if action == "insert":
            key = (f"USER#{user}", f"ORDER#O{len(self.orders)}")
            self.orders[key] = "Pending"
            self.write("INSERT", *key, None, _order("Pending", 50))
        elif action == "advance":
            key = rng.choice(movable)
            old = self.orders[key]
            self.orders[key] = rng.choice(NEXT[old])
            self.write("MODIFY", *key, _order(old, 50), _order(self.orders[key], 50))
        elif action == "same" and self.orders:
            key = rng.choice(sorted(self.orders))
            status = self.orders[key]
            self.write("MODIFY", *key, _order(status, 50), _order(status, 60))
        else:
            profile = {"Name": {"S": user}, "Email": {"S": f"{user}@example.com"}}
            self.write("INSERT", f"USER#{user}", "PROFILE", None, profile)

    def _writer(self) -> None:
        sc, rng = self.scenario, self.sched.rng
        while self.active:
            self.sched.sleep(rng.expovariate(1 / sc.write_every_s))
            if not self.active:
                return
            burst = rng.randint(3, 12) if rng.random() < sc.burst_p else 1
            for _ in range(burst):
                self.write_one()

    def _splitter(self) -> None:
        sc, rng = self.scenario, self.sched.rng
        assert sc.split_every_s is not None
        while self.active:
            self.sched.sleep(rng.expovariate(1 / sc.split_every_s))
            if not self.active:
                return
            open_shards = [s for s in self.by_shard if s not in self.children]
            shard = rng.choice(open_shards)
            children = [self._add_shard(c) for c in self.streams.split(shard, rng.choice((1, 2)))]
            for child in children:
                self.ledger.parent_of[child] = shard
            self.children[shard] = children
            self.closed_at[shard] = self.sched.now
            self.trace("stream", "split", shard[-8:], [c[-8:] for c in children])

    def _retention(self) -> None:
        """Trim records older than the retention; age out closed shards left empty."""
        sc = self.scenario
        while not self.final:
            self.sched.sleep(1.0)
            cutoff = self.sched.now - sc.retention_s
            for shard, written in self.by_shard.items():
                start = self.trimmed[shard]
                end = start
                while end < len(written) and written[end].t < cutoff:
                    written[end].trimmed_at = self.sched.now
                    end += 1
                if end > start:
                    self.streams.trim(shard, end - start)
                    self.trimmed[shard] = end
                    self.trace("stream", "trim", shard[-8:], written[end - 1].seq)
                closed = self.closed_at.get(shard)
                gone = closed is not None and closed < cutoff and end == len(written)
                if gone and shard not in self.aged:
                    self.aged.add(shard)
                    self.ledger.aged.add(shard)
                    self.streams.age_out(shard)
                    self.trace("stream", "age_out", shard[-8:])

    def _expirer(self) -> None:
        sc, rng = self.scenario, self.sched.rng
        assert sc.expire_every_s is not None
        while self.active:
            self.sched.sleep(rng.expovariate(1 / sc.expire_every_s))
            self.streams.expire_iterators()
            self.trace("stream", "iterators_expired")

    # -- replicas --------------------------------------------------------------------------

    def launch(self, replica: int, number: int) -> Incarnation:
        name = f"w{replica}.{number}"
        process = Process(name, skew_s=self.scenario.skews_s[replica - 1])
        life = ProcessLife(name, replica, self.sched.now)
        self.ledger.processes[name] = life
        host = Host(self, process, life)
        stop = host.runtime.event()
        runner, dispatcher = build(host, stop)

        def main() -> None:
            try:
                runner.run()
            except Exception as exc:  # the process exits 1 (cli.py lets it propagate)
                life.end, life.error = "error", f"{type(exc).__name__}: {exc}"
            else:
                life.end = "exit"
            try:
                dispatcher.close()
            except Exception as exc:
                life.error = f"close: {type(exc).__name__}: {exc}"
            self.trace(name, "exit", life.end, life.error)
            life.holds_lease_at_exit = self.holds_lease(name)
            life.end_tick, life.end_t = self.tick(), self.sched.now
            process.exited = True
            self.sched.kill(process)  # daemon threads die with the process

        task = self.sched.spawn(f"{name}.main", process, main)
        self.last_start = self.sched.now
        self.trace(name, "start")
        incarnation = Incarnation(process, life, task, stop, runner)
        self.incarnations.append(incarnation)
        return incarnation

    def holds_lease(self, name: str) -> bool:
        items = self.state.items(STATE_TABLE)
        return any(item.get("owner", {}).get("S") == name for item in items)

    def crash(self, inc: Incarnation) -> None:
        if inc.process.dead:
            return
        inc.process.crashed = True
        inc.life.end, inc.life.end_tick, inc.life.end_t = "crash", self.tick(), self.sched.now
        self.sched.kill(inc.process)
        self.trace(inc.life.name, "crash")

    def sigterm(self, inc: Incarnation) -> None:
        if inc.process.dead or inc.stop.is_set():
            return
        inc.life.sigterm_tick, inc.life.sigterm_t = self.tick(), self.sched.now
        self.trace(inc.life.name, "sigterm")
        inc.runner.request_stop()  # what cli.py's signal handler does

    def await_exit(self, inc: Incarnation) -> None:
        """After SIGTERM: wait for the exit; kill a process that overruns far past budget."""
        inc.main.join(self.scenario.shutdown_s + OVERRUN_GRACE_S)
        if inc.main.is_alive() and not inc.process.dead:
            self.crash(inc)
            inc.life.end = "overrun"

    def _next_fault(self) -> tuple[float, str]:
        sc, rng = self.scenario, self.sched.rng
        events = [(float("inf"), "")]
        if sc.crash_every_s:
            events.append((rng.expovariate(1 / sc.crash_every_s), "crash"))
        if sc.sigterm_every_s:
            events.append((rng.expovariate(1 / sc.sigterm_every_s), "sigterm"))
        delay, kind = min(events)
        return self.sched.now + delay, kind

    def _replica(self, replica: int) -> None:
        sc, rng = self.scenario, self.sched.rng
        self.sched.sleep(rng.uniform(0.0, 2.0))
        number = 0
        while not self.final:
            number += 1
            inc = self.launch(replica, number)
            self.running[replica] = inc
            self._live(inc)
            if self.final:
                return
            delay = rng.uniform(*sc.restart_delay_s)
            if self.active and rng.random() < sc.long_restart_p:
                delay = (
                    rng.uniform(sc.retention_s, 2 * sc.retention_s)
                    if sc.short_retention
                    else rng.uniform(10, 30)
                )
            self.sched.sleep(delay)

    def _live(self, inc: Incarnation) -> None:
        """Until the process ends: crash it or stop it at random times while faults last."""
        while inc.main.is_alive() and not self.final:
            at, kind = self._next_fault() if self.active else (float("inf"), "")
            end = self.scenario.duration_s
            timeout = None if not self.active else max(0.0, min(at, end) - self.sched.now)
            inc.main.join(timeout)
            if not inc.main.is_alive() or self.final or self.sched.now < at - 1e-9:
                continue
            if kind == "crash":
                self.crash(inc)
            elif kind == "sigterm":
                self.sigterm(inc)
                self.await_exit(inc)

    def _conductor(self) -> None:
        sc = self.scenario
        self.sched.sleep(sc.duration_s)
        self.active = False
        self.trace("-", "settle")
        # Settle with every replica up: a restart delayed past the retention must still
        # come, and then have time to catch up (and report what was lost meanwhile).
        while self.sched.now < max(sc.duration_s, self.last_start) + sc.settle_s or self._down():
            self.sched.sleep(1.0)
        # Then, while changes are parked, up to the lane's drain time more (the schedule,
        # a poll and a breaker open per step): cheaper than a longer settle for every
        # run, and as strict, since a change still parked after it fails `a_resolved`.
        deadline = self.sched.now + sc.lane.drain_s
        while self._parked() and self.sched.now < deadline:
            self.sched.sleep(1.0)
        self.final = True
        self.trace("-", "final_stop")
        for inc in list(self.running.values()):
            self.sigterm(inc)
        for inc in list(self.running.values()):
            if not inc.process.dead:
                self.await_exit(inc)
        self.finished = True

    def _parked(self) -> bool:
        return any(stays and stays[-1][1] is None for stays in self.ledger.lane_stays.values())

    def _down(self) -> bool:
        return any(
            self.running.get(r) is None or self.running[r].process.dead
            for r in range(1, self.scenario.replicas + 1)
        )

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Ledger:
        sc = self.scenario
        self.sched.on_error = self._task_error
        spawn = self.sched.spawn
        spawn("writer", None, self._writer)
        spawn("conductor", None, self._conductor)
        if sc.split_every_s:
            spawn("splitter", None, self._splitter)
        if sc.short_retention:
            spawn("retention", None, self._retention)
        if sc.expire_every_s:
            spawn("expirer", None, self._expirer)
        for replica in range(1, sc.replicas + 1):
            spawn(f"replica-{replica}", None, lambda r=replica: self._replica(r))
        try:
            self.sched.run(lambda: self.finished)
        except SimulationError as exc:
            self.ledger.failure = str(exc)
        else:
            self.ledger.final_items = self.state.items(STATE_TABLE)
        finally:
            self._unwind()
        return self.ledger

    def _task_error(self, task: SimTask, error: BaseException) -> None:
        who = task.process.name if task.process else "-"
        self.ledger.task_errors.append(
            (self.sched.now, f"{who}:{task.name}", f"{type(error).__name__}: {error}")
        )
        self.trace(who, "task_error", task.name, repr(error))
        if task.process is None:
            self.finished = True  # a driver bug: stop the run, the report shows it

    def _unwind(self) -> None:
        """Let every task end now (no greenlet left for the GC to unwind later)."""
        self.active, self.final = False, True
        for inc in self.incarnations:
            inc.process.exited = True
            self.sched.kill(inc.process)
        for task in self.sched.tasks:
            if task.alive and task.process is None:
                task.throw = True
                self.sched.wake(task, task.token)
        with contextlib.suppress(SimulationError):
            self.sched.run(lambda: not any(t.alive for t in self.sched.tasks))


def _order(status: str, amount: int) -> dict[str, Any]:
    return {"Status": {"S": status}, "Amount": {"N": str(amount)}, "UserID": {"S": "u"}}


def simulate(seed: int) -> tuple[World, Ledger]:
    """Run `seed` with the worker's logs captured; returns the world and its ledger."""
    world = World(seed)
    saved = structlog.get_config()
    state = random.getstate()
    random.seed(seed)  # the reader's backoff jitter and tenacity's waits use `random`
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, world.capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    try:
        ledger = world.run()
    finally:
        structlog.configure(**saved)
        random.setstate(state)
    return world, ledger
