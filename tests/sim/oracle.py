"""The oracle: the delivery promises of docs/design.md section 7, checked after every run.

It reads only what a run leaves behind (tests/sim/ledger.py): the stream records the
writer produced, the sinks' attempts and durable deliveries, the state table's writes
(checkpoints, dead letters, retry lane entries, the lease) and the workers' log events
(`data_loss`, `lease.acquired`). It never looks inside the worker.

Which changes are required: every order change (docs/design.md section 5) routed to a sink,
once the application has met the stream (the durable meeting item it writes, with the
shards listed then). With TRIM_HORIZON, records already trimmed at that moment are
not required. With LATEST, for a listed shard records written after the meeting are;
shards created later (children) from their start.
A record inside the range of a `data_loss` event (same shard, after_sequence < seq <
before_sequence, None meaning unbounded) is excused: lost, but reported.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass

from tests.sim.ledger import Attempt, Ledger, Written
from worker.core.rules import Rules

INF = float("inf")

INVARIANTS = {
    "a_resolved": "every routed change is delivered, dead-lettered, or reported lost; "
    "the lane is empty at the end",
    "b_order": "per (order, sink) first deliveries in sequence; none after a dead letter",
    "c_checkpoint": "no checkpoint passes a record not yet delivered, dead-lettered or parked",
    "d_resend": "no reader attempt of a record at or below its shard's durable checkpoint",
    "e_owners": "no two owners (process, lease term) deliver for one shard, or one "
    "(order, sink), at once",
    "f_stop": "after SIGTERM: no new attempt, exit 0 within SHUTDOWN_S, lease released last",
    "g_exit": "a worker never dies of an error (process exit 1, a thread killed by one)",
    "h_lane": "a lane attempt is of a change parked then, by a term no other owner ended",
    "i_holds": "at the end each hold counter equals the dead letters and parked changes "
    "that hold its (order, sink)",
    "sim": "the run itself completed (no deadlock, no runaway)",
}


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


class Oracle:
    def __init__(self, ledger: Ledger, rules: Rules, start: str, shutdown_s: float) -> None:
        self.ledger = ledger
        self.rules = rules
        self.start = start
        self.shutdown_s = shutdown_s
        self.losses: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for _, _, _, event in ledger.events:
            if event["event"] == "data_loss":
                after, before = event.get("after_sequence"), event.get("before_sequence")
                self.losses[str(event.get("shard_id"))].append(
                    (int(after) if after else -1, float(int(before)) if before else INF)
                )

    # -- which changes count --------------------------------------------------------------

    def sinks(self, rec: Written) -> tuple[str, ...]:
        if not rec.change or rec.new is None:
            return ()
        return self.rules.sinks_for(rec.old, rec.new)

    def required(self, rec: Written) -> bool:
        met = self.ledger.met_at
        if not rec.change or met is None:
            return False
        if self.start == "TRIM_HORIZON":
            return rec.trimmed_at is None or rec.trimmed_at >= met
        if rec.shard in self.ledger.met_shards:
            return rec.t > met
        # Not listed at the meeting: born after it (ours from its start), or aged out
        # before it (never ours).
        return self.ledger.born.get(rec.shard, 0.0) > met

    def covered(self, rec: Written) -> bool:
        """In a `data_loss` range of its shard; or its shard aged out and an ancestor's
        loss is open-ended (`before_sequence` null): generations born and aged out while
        no worker ran were never listed, so the worker cannot name them one by one."""
        if any(a < rec.seq < b for a, b in self.losses.get(rec.shard, ())):
            return True
        if rec.shard not in self.ledger.aged:
            return False
        ancestor = self.ledger.parent_of.get(rec.shard)
        while ancestor is not None:
            if any(b == INF for _, b in self.losses.get(ancestor, ())):
                return True
            ancestor = self.ledger.parent_of.get(ancestor)
        return False

    def counted(self, rec: Written) -> bool:
        return self.required(rec) and not self.covered(rec) and bool(self.sinks(rec))

    def resolved_tick(self, rec: Written) -> float:
        """When the record was resolved for every routed sink (0: nothing was owed)."""
        if not self.counted(rec):
            return 0
        latest = 0.0
        for sink in self.sinks(rec):
            ticks = [
                t
                for t in (
                    self.ledger.durable.get((sink, rec.event_id)),
                    self.ledger.dead_letters.get((rec.shard, rec.seq, sink)),
                    # Parked: durable in the lane, which delivers it or dead-letters it.
                    self.ledger.parked.get((rec.shard, rec.seq, sink)),
                )
                if t is not None
            ]
            if not ticks:
                return INF
            latest = max(latest, min(ticks))
        return latest

    # -- the invariants -----------------------------------------------------------------

    def check(self) -> list[Violation]:
        found: list[Violation] = []
        if self.ledger.failure:
            found.append(Violation("sim", self.ledger.failure))
        for method in (self.a_resolved, self.b_order, self.c_checkpoint, self.d_resend):
            found.extend(method())
        found.extend(self.e_owners())
        found.extend(self.f_stop())
        found.extend(self.g_exit())
        found.extend(self.h_lane())
        found.extend(self.i_holds())
        return found

    def a_resolved(self) -> list[Violation]:
        found = []
        for rec in self.ledger.written:
            if not self.counted(rec):
                continue
            for sink in self.sinks(rec):
                delivered = (sink, rec.event_id) in self.ledger.durable
                if not delivered and (rec.shard, rec.seq, sink) not in self.ledger.dead_letters:
                    parked = (rec.shard, rec.seq, sink) in self.ledger.parked
                    found.append(
                        Violation(
                            "a_resolved",
                            f"{_rec(rec)} never reached {sink}, not dead-lettered, no data_loss"
                            + (" (parked, never delivered)" if parked else ""),
                        )
                    )
        # The settle phase outlasts the schedule with the sink healthy: whatever was
        # parked must have left the lane (delivered, or moved to the DLQ) by the end.
        for (shard, seq, sink), stays in sorted(self.ledger.lane_stays.items()):
            if stays and stays[-1][1] is None:
                found.append(
                    Violation(
                        "a_resolved",
                        f"seq {seq} on {shard[-8:]} for {sink} still parked at the end "
                        "(the lane never drained)",
                    )
                )
        return found

    def b_order(self) -> list[Violation]:
        chains: dict[tuple[tuple[str, str], str], list[Written]] = defaultdict(list)
        for rec in self.ledger.written:
            if rec.order is not None and self.counted(rec):
                for sink in self.sinks(rec):
                    chains[(rec.order, sink)].append(rec)
        found = []
        for (order, sink), chain in chains.items():
            latest, latest_rec, held_by = 0, None, None
            for rec in chain:
                tick = self.ledger.durable.get((sink, rec.event_id))
                if tick is not None and held_by is not None:
                    found.append(
                        Violation(
                            "b_order",
                            f"{order[1]} on {sink}: {_rec(rec)} delivered after the earlier "
                            f"{_rec(held_by)} was dead-lettered instead",
                        )
                    )
                    break
                if tick is not None and tick < latest:
                    found.append(
                        Violation(
                            "b_order",
                            f"{order[1]} on {sink}: {_rec(rec)} delivered before the earlier "
                            f"{_rec(latest_rec)}",
                        )
                    )
                    break
                if tick is None and (rec.shard, rec.seq, sink) in self.ledger.dead_letters:
                    held_by = rec
                if tick is not None and tick > latest:
                    latest, latest_rec = tick, rec
        found.extend(self._held_without_cause())
        return found

    def _held_without_cause(self) -> list[Violation]:
        """A change dead-lettered as held ("held: ...", without an attempt of its own)
        must follow another change of its (order, sink) that reached the DLQ first: the
        hold counters shared by the DLQ and the lane must not hold an order that nothing
        holds (that would dead-letter good changes, out of the lane's reach). The other
        change may be a later one: a change delivered, then replayed after a crash before
        its checkpoint, meets the hold of a later change dead-lettered meanwhile (seed 33);
        it was delivered in order already, and a redrive sends both in sequence."""
        chains: dict[tuple[tuple[str, str], str], list[Written]] = defaultdict(list)
        for rec in self.ledger.written:
            if rec.order is not None:
                for sink in self.sinks(rec):
                    chains[(rec.order, sink)].append(rec)
        found = []
        for (order, sink), chain in chains.items():
            keys = [(rec.shard, rec.seq, sink) for rec in chain]
            first_dead = min((self.ledger.dead_letters.get(k, INF) for k in keys), default=INF)
            for rec, key in zip(chain, keys, strict=True):
                tick = self.ledger.dead_letters.get(key)
                if tick is None:
                    continue
                if self.ledger.dead_reasons.get(key, "").startswith("held:") and first_dead >= tick:
                    found.append(
                        Violation(
                            "b_order",
                            f"{order[1]} on {sink}: {_rec(rec)} dead-lettered as held, but no "
                            "other change of it was dead-lettered before",
                        )
                    )
                    break
        return found

    def _shard_records(self) -> dict[str, list[Written]]:
        shards: dict[str, list[Written]] = defaultdict(list)
        for rec in self.ledger.written:
            shards[rec.shard].append(rec)
        return shards

    def c_checkpoint(self) -> list[Violation]:
        found = []
        shards = self._shard_records()
        prefix: dict[str, tuple[list[int], list[float]]] = {}
        for shard, recs in shards.items():
            running, maxes = 0.0, []
            for rec in recs:
                running = max(running, self.resolved_tick(rec))
                maxes.append(running)
            prefix[shard] = ([r.seq for r in recs], maxes)
        reported: set[str] = set()
        for tick, t, shard, seq, who in self.ledger.checkpoints:
            if seq is None or shard in reported or shard not in prefix:
                continue
            seqs, maxes = prefix[shard]
            index = bisect.bisect_right(seqs, seq) - 1
            if index >= 0 and maxes[index] > tick:
                culprit = next(
                    r for r in shards[shard][: index + 1] if self.resolved_tick(r) > tick
                )
                when = "never" if self.resolved_tick(culprit) == INF else "only later"
                found.append(
                    Violation(
                        "c_checkpoint",
                        f"t={t:.3f} {who} checkpointed {shard[-8:]} at {seq} past {_rec(culprit)}, "
                        f"resolved {when}",
                    )
                )
                reported.add(shard)
        return found

    def d_resend(self) -> list[Violation]:
        history: dict[str, tuple[list[int], list[int | None]]] = defaultdict(lambda: ([], []))
        for tick, _, shard, seq, _ in self.ledger.checkpoints:
            history[shard][0].append(tick)
            history[shard][1].append(seq)
        found, reported = [], set()
        for attempt in self.ledger.attempts:
            if attempt.lane:
                continue  # the lane attempts changes the checkpoint passed: see h_lane
            ticks, seqs = history.get(attempt.shard, ([], []))
            index = bisect.bisect_left(ticks, attempt.tick) - 1
            durable = seqs[index] if index >= 0 else None
            if durable is not None and attempt.seq <= durable and attempt.shard not in reported:
                reported.add(attempt.shard)
                found.append(
                    Violation(
                        "d_resend",
                        f"t={attempt.t:.3f} {attempt.process} sent {attempt.event_id} "
                        f"(seq {attempt.seq}) to {attempt.sink}; durable checkpoint of "
                        f"{attempt.shard[-8:]} was {durable}",
                    )
                )
        return found

    def _end_tick(self, attempt: Attempt) -> float:
        if attempt.end_tick is not None:
            return attempt.end_tick
        life = self.ledger.processes[attempt.process]
        return life.end_tick if life.end_tick is not None else INF

    def e_owners(self) -> list[Violation]:
        """Terms never start deliveries for one shard at once: each term's window runs
        from its first attempt's start to its last attempt's start. (An attempt already
        on the wire when its term ends may still complete after a new owner began: no
        lease can fence a remote receiver; the idempotency key covers it.) The lane's
        attempts belong to no shard; they and the readers' share the windows of their
        (order, sink) instead, the unit the lane keeps in order."""
        by_shard: dict[str, list[Attempt]] = defaultdict(list)
        by_order: dict[str, list[Attempt]] = defaultdict(list)
        for attempt in self.ledger.attempts:
            if not attempt.lane:
                by_shard[f"shard {attempt.shard[-8:]}"].append(attempt)
            by_order[f"{attempt.order} on {attempt.sink}"].append(attempt)
        lanes = {f"{a.order} on {a.sink}" for a in self.ledger.attempts if a.lane}
        found = []
        for unit, attempts in by_shard.items():
            found.extend(_overlaps(unit, attempts))
        for unit in sorted(lanes):
            found.extend(_overlaps(unit, by_order[unit]))
        return found

    def f_stop(self) -> list[Violation]:
        found = []
        by_process: dict[str, list[Attempt]] = defaultdict(list)
        for attempt in self.ledger.attempts:
            by_process[attempt.process].append(attempt)
        for life in self.ledger.processes.values():
            if life.sigterm_tick is None or life.sigterm_t is None:
                continue
            mine = by_process.get(life.name, [])
            late = [a for a in mine if a.tick > life.sigterm_tick]
            if late:
                found.append(
                    Violation(
                        "f_stop",
                        f"{life.name}: {len(late)} attempts started after SIGTERM at "
                        f"t={life.sigterm_t:.3f} (first {late[0].event_id} at t={late[0].t:.3f})",
                    )
                )
            if life.end == "overrun":
                found.append(
                    Violation(
                        "f_stop",
                        f"{life.name}: still running {self.shutdown_s:.0f}+30 s after SIGTERM "
                        "(killed)",
                    )
                )
            elif (
                life.end == "exit"
                and life.end_t is not None
                and life.end_t - life.sigterm_t > self.shutdown_s + 1e-6
            ):
                found.append(
                    Violation(
                        "f_stop",
                        f"{life.name}: exited {life.end_t - life.sigterm_t:.3f} s after SIGTERM "
                        f"(budget {self.shutdown_s:.0f} s)",
                    )
                )
            if life.end == "exit" and life.holds_lease_at_exit:
                found.append(Violation("f_stop", f"{life.name}: exited still holding the lease"))
            if life.released_tick is not None:
                # In flight at the release is allowed only when the worker gave up on it
                # (`delivery.abandoned`, after the stop's grace): it stays unresolved, and
                # no lease can fence a request already on the wire.
                abandoned = any(
                    who == life.name and event["event"] == "delivery.abandoned"
                    for _, _, who, event in self.ledger.events
                )
                busy = [
                    a
                    for a in mine
                    if (a.tick < life.released_tick < self._end_tick(a) and not abandoned)
                    or a.tick > life.released_tick
                ]
                if busy:
                    found.append(
                        Violation(
                            "f_stop",
                            f"{life.name}: released the lease with {len(busy)} attempts in "
                            "flight or "
                            f"still to start (e.g. {busy[0].event_id} at t={busy[0].t:.3f})",
                        )
                    )
        return found

    def g_exit(self) -> list[Violation]:
        found = [
            Violation("g_exit", f"{life.name} exited with an error: {life.error}")
            for life in self.ledger.processes.values()
            if life.end == "error"
        ]
        found.extend(
            Violation("sim" if who.startswith("-") else "g_exit", f"t={t:.3f} {who} died: {error}")
            for t, who, error in self.ledger.task_errors
        )
        return found

    def h_lane(self) -> list[Violation]:
        """The lane retrier attempts only what is parked, and only in a live term: each
        lane attempt starts while its change has an entry in the lane (parked, not yet
        delivered nor moved to the DLQ), and no other process acquired the lease between
        the start of the attempt's term and the attempt (the retrier's writes are fenced
        by the lease, its requests cannot be: it must stop before the lease can go)."""
        acquired: dict[str, list[int]] = defaultdict(list)
        takes: list[tuple[int, str]] = []
        for tick, _, who, event in self.ledger.events:
            if event["event"] == "lease.acquired":
                acquired[who].append(tick)
                takes.append((tick, who))
        found: list[Violation] = []
        reported: set[str] = set()
        for attempt in self.ledger.attempts:
            if not attempt.lane or attempt.process in reported:
                continue
            key = (attempt.shard, attempt.seq, attempt.sink)
            stays = self.ledger.lane_stays.get(key, [])
            inside = any(
                start < attempt.tick and (end is None or attempt.tick < end) for start, end in stays
            )
            what = f"t={attempt.t:.3f} {attempt.process} lane attempt of {attempt.event_id} "
            if not inside:
                reported.add(attempt.process)
                found.append(Violation("h_lane", what + "while it was not parked"))
                continue
            terms = acquired.get(attempt.process, [])
            began = terms[attempt.term - 1] if 0 < attempt.term <= len(terms) else None
            ended = began is None or any(
                began < tick < attempt.tick and who != attempt.process for tick, who in takes
            )
            if ended:
                reported.add(attempt.process)
                found.append(
                    Violation(
                        "h_lane",
                        what + f"in term {attempt.term}, after another process took the lease",
                    )
                )
        return found

    def i_holds(self) -> list[Violation]:
        """The counters under `APP#<app>#HOLD` (the DLQ's item counts its dead letters of
        an (order, sink), the lane's own item, sort key ending `#LANE`, its parked
        changes) against the entries left in the state table at the end. A counter that
        drifted holds an order nothing holds (its changes would wait in the lane for ever,
        or be dead-lettered without cause), or frees one still held."""
        entries: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for item in self.ledger.final_items:
            pk = item["pk"]["S"]
            kind = pk.rsplit("#", 1)[-1]
            if kind not in ("DLQ", "LANE", "HOLD") or "order_id" not in item:
                continue
            key = (item["user_id"]["S"], item["order_id"]["S"], item["sink"]["S"])
            counts = entries[key]
            if kind == "HOLD":
                n = int(item.get("n", {}).get("N", "0"))
                lane = item["sk"]["S"].endswith("#LANE")
                counts[2] += n
                counts[3] += n if lane else 0
            else:
                counts[0] += 1
                counts[1] += kind == "LANE"
        found = []
        for (user, order, sink), (held, parked, n, n_parked) in sorted(entries.items()):
            if (held, parked) != (n, n_parked):
                found.append(
                    Violation(
                        "i_holds",
                        f"{order} of {user} on {sink}: hold counts n={n} parked={n_parked}, "
                        f"but {held} entries hold it ({parked} parked)",
                    )
                )
        return found


def _overlaps(unit: str, attempts: list[Attempt]) -> list[Violation]:
    """Violations where two processes' windows of attempt starts overlap."""
    windows: dict[tuple[str, int], list[float]] = {}
    for attempt in attempts:
        window = windows.setdefault(
            (attempt.process, attempt.term), [attempt.tick, attempt.tick, attempt.t]
        )
        window[1] = max(window[1], attempt.tick)
    ordered = sorted(windows.items(), key=lambda item: item[1][0])
    last_owner: tuple[str, int] | None = None
    last_end = -1.0
    for owner, (start, end, t) in ordered:
        if last_owner is not None and start < last_end and owner[0] != last_owner[0]:
            return [
                Violation(
                    "e_owners",
                    f"{unit}: {owner[0]} (term {owner[1]}) delivered from t={t:.3f} "
                    f"while {last_owner[0]} (term {last_owner[1]}) was still delivering",
                )
            ]
        if end > last_end:
            last_owner, last_end = owner, end
    return []


def _rec(rec: Written) -> str:
    order = rec.order[1].removeprefix("ORDER#") if rec.order else "-"
    return f"{rec.event_id}({order} {rec.old}>{rec.new} seq {rec.seq} on {rec.shard[-8:]})"
