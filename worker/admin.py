"""Operator commands: `worker status`, `worker dlq list|redrive|drop`, `worker sink list|enable`."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import structlog
from botocore.exceptions import ClientError

from worker import wiring as app
from worker.aws import Clients, setup_errors
from worker.core.detect import iso_utc
from worker.core.errors import ConfigError, SetupError, StreamError
from worker.core.models import Shard
from worker.delivery.lane import LaneStore, Parked, summarize
from worker.delivery.retrying import call_with_retry
from worker.kcl.leases import KclLease, read_leases
from worker.poller.stream import Position, StreamSource, latest_stream_arn
from worker.settings import SINK_NAMES, WorkerSettings
from worker.state.checkpoints import DynamoCheckpointStore
from worker.state.dlq import UNPARSEABLE_SINK, DeadLetter, DeadLetterStore, from_table
from worker.state.lease import Lease
from worker.state.sinkstate import SinkState, SinkStateStore
from writer import awsenv

log = structlog.get_logger()
PROBE_READS = 3  # GetRecords calls per shard to find the first unprocessed record


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A table for people, or JSON lines for scripts: every listing command prints
    through here so both forms carry the same columns."""
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
        return
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print(
            "  ".join(
                str(row.get(c, "") if row.get(c) is not None else "-").ljust(widths[c])
                for c in columns
            )
        )


def _state(settings: WorkerSettings, required: bool = True) -> tuple[Clients, Any]:
    """The state table, which an operator command only reads: it is never created here
    (a typo in ORDERSTREAM_STATE_TABLE or the wrong region must not make a new, empty
    one and report that nothing is there)."""
    clients = Clients(settings.region)
    with setup_errors(f"cannot open the state table {settings.state_table!r}"):
        dynamodb = clients.dynamodb()  # no region is a BotoCoreError here
        try:
            dynamodb.describe_table(TableName=settings.state_table)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            if not required:
                return clients, None  # nothing recorded yet: no checkpoints, no owner
            meta = dynamodb.meta
            raise SetupError(
                f"state table {settings.state_table!r} does not exist "
                f"({awsenv.location(meta.region_name, meta.endpoint_url)}): a worker creates "
                "it on its first start; or check ORDERSTREAM_STATE_TABLE, AWS_REGION and "
                "AWS_ENDPOINT_URL"
            ) from exc
    return clients, dynamodb


# -- status ------------------------------------------------------------------------------


def _pending_age_ms(
    source: StreamSource, arn: str, shard_id: str, *, after: str | None, start: str, now: float
) -> int | None:
    """Age of the first record past the checkpoint (0 when none is waiting)."""
    try:
        iterator: str | None = source.iterator(
            arn, shard_id, Position.after(after) if after else Position(start)
        )
        for _ in range(PROBE_READS):
            if iterator is None:
                return 0
            page = source.read(shard_id, iterator)
            if page.records:
                created = page.records[0].created_at_s
                return round((now - created) * 1000) if created else None
            iterator = page.next_iterator
    except StreamError:
        return None
    return 0


STATUS_COLUMNS = ["shard_id", "parent_id", "checkpoint", "finished", "closed", "lag_ms", "owner"]


def status(settings: WorkerSettings, as_json: bool) -> int:
    """Per shard: the poller's checkpoints and lease, or in fleet mode (a KCL lease table
    named after ORDERSTREAM_APP exists) KCL's leases: each shard's own owner."""
    clients, state = _state(settings, required=False)
    dynamodb = clients.dynamodb()
    arn = settings.stream_arn or latest_stream_arn(dynamodb, settings.table)
    source = StreamSource(clients.streams())
    try:
        shards = source.shards(arn)
    except StreamError as exc:
        raise SetupError(f"cannot describe stream {arn}: {exc}") from exc
    with setup_errors(f"cannot read the KCL lease table {settings.app!r}"):
        kcl = read_leases(dynamodb, settings.app)
    if kcl:
        rows = _fleet_rows(settings, source, arn, shards, {lease.shard_id: lease for lease in kcl})
    else:
        rows = _poller_rows(settings, state, source, arn, shards)
    print_rows(rows, STATUS_COLUMNS, as_json)
    parked = [] if state is None else list(_lane(settings, state).entries(_parked(settings)))
    sinks = sink_rows(settings, _sink_states(settings, state), parked)
    if sinks:
        if not as_json:
            print()
        print_rows(sinks, SINK_COLUMNS, as_json)
    return 0


def _poller_rows(
    settings: WorkerSettings,
    dynamodb: Any | None,
    source: StreamSource,
    arn: str,
    shards: list[Shard],
) -> list[dict[str, Any]]:
    """`dynamodb` is None when there is no state table yet: no owner, no checkpoints."""
    owner, checkpoints = None, {}
    if dynamodb is not None:
        owner = Lease(
            dynamodb,
            settings.state_table,
            settings.app,
            "status",
            settings.lease_s,
            clock=time.time,
            scope=settings.table,
        ).current_owner()
        checkpoints = DynamoCheckpointStore(
            dynamodb, settings.state_table, settings.app, None, time.time
        ).load_all(arn)
    now = time.time()
    rows = []
    for shard in shards:
        cp = checkpoints.get(shard.shard_id)
        finished = bool(cp and cp.finished)
        after = cp.sequence_number if cp else None
        rows.append(
            {
                "shard_id": shard.shard_id,
                "parent_id": shard.parent_id,
                "checkpoint": after,
                "finished": finished,
                "closed": shard.closed,
                "lag_ms": 0
                if finished
                else _pending_age_ms(
                    source, arn, shard.shard_id, after=after, start=settings.start, now=now
                ),
                "owner": owner,
            }
        )
    return rows


def _fleet_rows(
    settings: WorkerSettings,
    source: StreamSource,
    arn: str,
    shards: list[Shard],
    leases: dict[str, KclLease],
) -> list[dict[str, Any]]:
    """KCL's leases; a shard KCL has not leased yet shows no owner."""
    now = time.time()
    rows = []
    for shard in shards:
        lease = leases.get(shard.shard_id)
        finished = bool(lease and lease.finished)
        after = lease.sequence_number if lease else None
        start = settings.start
        if lease and lease.checkpoint in ("TRIM_HORIZON", "LATEST"):
            start = lease.checkpoint
        rows.append(
            {
                "shard_id": shard.shard_id,
                "parent_id": shard.parent_id,
                "checkpoint": lease.checkpoint if lease else None,
                "finished": finished,
                "closed": shard.closed,
                "lag_ms": 0
                if finished
                else _pending_age_ms(
                    source, arn, shard.shard_id, after=after, start=start, now=now
                ),
                "owner": lease.owner if lease else None,
            }
        )
    return rows


def _no_state_table(nothing: str, settings: WorkerSettings, clients: Clients) -> str:
    """`nothing` (there is nothing yet), and where the state table was looked for."""
    meta = clients.dynamodb().meta
    return (
        f"{nothing} (no state table {settings.state_table!r} yet, "
        f"{awsenv.location(meta.region_name, meta.endpoint_url)}: "
        "a worker creates it on its first start)"
    )


# -- dlq ---------------------------------------------------------------------------------


def dlq_list(settings: WorkerSettings, as_json: bool) -> int:
    """`worker dlq list`: the dead letters; no state table yet is not an error
    (nothing was ever dead-lettered), so exit 0."""
    clients, dynamodb = _state(settings, required=False)
    if dynamodb is None:
        if not as_json:  # JSON lines stay empty: a script reads nothing
            print(_no_state_table("no dead letters", settings, clients))
        return 0
    store = DeadLetterStore(dynamodb, settings.state_table, settings.app, settings.dlq_ttl_days)
    rows = [
        {
            "id": e.id,
            "sink": e.sink,
            "order_id": e.order_id,
            "attempts": e.attempts,
            "error": e.error,
            "first_attempt_at": e.first_attempt_at,
            "last_attempt_at": e.last_attempt_at,
            "shard_id": e.shard_id,
            "sequence_number": e.sequence_number,
            **({"body": e.body} if as_json else {}),
            **({"record": e.record} if as_json and e.record else {}),
        }
        for e in store.entries(_of_table(settings))
    ]
    if not rows and not as_json:
        print("no dead letters")  # JSON lines stay empty: a script reads nothing
        return 0
    print_rows(rows, ["id", "sink", "order_id", "attempts", "last_attempt_at", "error"], as_json)
    return 0


def _of_table(settings: WorkerSettings) -> Callable[[DeadLetter], bool]:
    """This table's entries: one app name on two tables shares the DLQ and the lane, and
    each command acts on the entries of the table it names (ORDERSTREAM_TABLE) only."""
    return lambda e: from_table(e.stream_arn, settings.table)


def _selector(entry_id: str | None, order_id: str | None) -> Callable[[DeadLetter], bool]:
    if entry_id:
        return lambda e: e.id == entry_id
    if order_id:
        return lambda e: e.order_id == order_id
    return lambda e: True


def dlq_redrive(
    settings: WorkerSettings, entry_id: str | None, order_id: str | None, everything: bool
) -> int:
    """Re-send entries in sequence order; an entry is removed only after it is delivered.

    Entries of one order that come after a failed one are left for the next redrive, so
    a receiver never sees that order's changes out of order.
    """
    del everything  # the default selector takes every entry
    clients, dynamodb = _state(settings)
    store = DeadLetterStore(dynamodb, settings.state_table, settings.app, settings.dlq_ttl_days)
    chosen = _selector(entry_id, order_id)
    everything_there = list(store.entries(_of_table(settings)))
    entries = [e for e in everything_there if chosen(e)]
    if entry_id and not entries:
        raise ConfigError("--id", f"no dead letter {entry_id!r}")
    needed = {e.sink for e in entries if e.sink != UNPARSEABLE_SINK}
    missing = sorted(needed - set(settings.sinks))
    if missing:
        on = ",".join(sorted(needed | set(settings.sinks)))
        raise ConfigError(
            "ORDERSTREAM_SINKS",
            f"these dead letters are for the {' and '.join(missing)} sink, which this "
            f"command does not have: redrive with ORDERSTREAM_SINKS={on} (and that sink's "
            "target, as `worker run` had it)",
        )
    sinks = app.build_sinks(settings, clients, dynamodb=dynamodb)
    policy, stop = app.retry_policy(settings), threading.Event()
    held: set[tuple[str | None, str | None, str]] = set()
    counts = {"redriven": 0, "failed": 0, "skipped": 0}
    try:
        for entry in everything_there:
            key = (entry.order_id, entry.user_id, entry.sink)
            if not chosen(entry):
                if entry.sink != UNPARSEABLE_SINK:
                    held.add(key)  # not redriven now: the order's later entries wait
                continue
            outcome = _cannot_send(entry, key in held) or _redrive_one(
                entry, sinks, store, policy, stop
            )
            counts[outcome] += 1
            if outcome == "failed" and entry.sink != UNPARSEABLE_SINK:
                held.add(key)
    finally:
        for sink in sinks.values():
            sink.close()
    print(json.dumps(counts))
    return 0 if counts["failed"] == 0 else 1


def _cannot_send(entry: DeadLetter, behind: bool) -> str | None:
    """Why an entry is not sent in this redrive ("failed": it stays and holds its
    order; "skipped": nothing to send), or None."""
    if behind:
        log.warning(
            "dlq.redrive_skipped",
            id=entry.id,
            reason="an earlier change of its order is still in the DLQ: redrive it first (--order)",
        )
        return "failed"
    if entry.body is not None:
        return None
    if entry.sink == UNPARSEABLE_SINK:
        log.warning("dlq.redrive_skipped", id=entry.id, reason="unparseable record")
        return "skipped"
    # A minimal entry: its body did not fit. Nothing to send, and the order's later
    # changes must not pass it: it stays, and holds them.
    log.error(
        "dlq.redrive_skipped",
        id=entry.id,
        reason=f"its body ({entry.size} bytes) was too large to keep; once handled, "
        f"`worker dlq drop --id {entry.id}` releases the order",
    )
    return "failed"


def _redrive_one(
    entry: DeadLetter,
    sinks: dict[str, Any],
    store: DeadLetterStore,
    policy: Any,
    stop: threading.Event,
) -> str:
    notification = entry.notification()
    context = {
        "sink": entry.sink,
        "notification_id": notification.id,
        "order_id": notification.order_id,
    }
    result = call_with_retry(partial(sinks[entry.sink].send, notification), policy, stop, context)
    if result.error is None:
        sinks[entry.sink].flush()  # durable (the log sink's line out) before...
        store.delete(entry)  # ...the entry and its hold go
        log.info("dlq.redriven", id=entry.id, attempt=result.count)
        return "redriven"
    store.update(_retried(entry, result.count, str(result.error)))
    log.error("dlq.redrive_failed", id=entry.id, error=str(result.error))
    return "failed"


def dlq_drop(settings: WorkerSettings, entry_id: str) -> int:
    """Delete one entry unsent: for what cannot be redriven (a minimal entry, a change
    the receiver will never take). Its hold goes with it, releasing the order."""
    _, dynamodb = _state(settings)
    store = DeadLetterStore(dynamodb, settings.state_table, settings.app)
    ours = _of_table(settings)
    entries = list(store.entries(lambda e: e.id == entry_id and ours(e)))
    if not entries:
        raise ConfigError("--id", f"no dead letter {entry_id!r}")
    for entry in entries:
        store.delete(entry)
        log.warning("dlq.dropped", id=entry.id, order_id=entry.order_id, sink=entry.sink)
    print(json.dumps({"dropped": len(entries)}))
    return 0


def _retried(entry: DeadLetter, attempts: int, error: str) -> DeadLetter:
    """The same entry (same key: stream, sequence, id), its attempts and error updated."""
    return dataclasses.replace(
        entry,
        error=error,
        attempts=entry.attempts + attempts,
        last_attempt_at=iso_utc(time.time()),
    )


# -- the retry lane ----------------------------------------------------------------------


def _lane(settings: WorkerSettings, dynamodb: Any) -> LaneStore:
    """Unfenced: an operator's command moves no change, it only reads or nudges."""
    return LaneStore(
        client=dynamodb, table=settings.state_table, app=settings.app, fence=None, clock=time.time
    )


def _parked(settings: WorkerSettings, order_id: str | None = None) -> Callable[[Parked], bool]:
    """This table's parked changes (as `_of_table`), of one order if given."""
    ours = _of_table(settings)
    return lambda e: ours(e.letter) and order_id in (None, e.letter.order_id)


def _waiting_for(
    entry: Parked, head: bool, sinks: dict[str, SinkState], dead: bool, now: float
) -> str:
    """Why a parked change is not sent yet, as an operator needs to know it."""
    if dead:
        return "an earlier change of its order is in the DLQ: it joins it there next"
    state = sinks.get(entry.letter.sink)
    if state is not None and state.disabled:
        return f"sink disabled ({state.reason}): worker sink enable {entry.letter.sink}"
    if not head:
        return "behind an earlier change of its order"
    if state is not None and state.breaker != "closed":
        return f"sink's breaker {state.breaker}"
    return "due now" if entry.next_at_s <= now else "its next step"


def lane_list(settings: WorkerSettings, order_id: str | None, as_json: bool) -> int:
    """`worker lane list`: the parked changes, marking each order's head (the one the
    retrier tries next) and the orders held by a dead letter."""
    clients, dynamodb = _state(settings, required=False)
    if dynamodb is None:
        if not as_json:  # JSON lines stay empty: a script reads nothing
            print(_no_state_table("nothing parked", settings, clients))
        return 0
    entries = list(_lane(settings, dynamodb).entries(_parked(settings, order_id)))
    sinks = _sink_states(settings, dynamodb)
    dead = {key for key, count in _lane(settings, dynamodb).holds().items() if count.dead}
    now = time.time()
    heads: set[object] = set()
    rows = []
    for e in entries:
        head = e.hold not in heads
        heads.add(e.hold)
        body = e.letter.body or {}
        rows.append(
            {
                "id": e.letter.id,
                "sink": e.letter.sink,
                "order_id": e.letter.order_id,
                "user_id": e.letter.user_id,
                "change": f"{body.get('old_status') or '-'}>{body.get('new_status')}",
                "tries": e.tries,
                "attempts": e.letter.attempts,
                "parked_at": iso_utc(e.parked_at_s),
                "waited_s": round(max(0.0, now - e.parked_at_s)),
                "next_attempt_at": iso_utc(e.next_at_s) if head else None,
                "waiting_for": _waiting_for(e, head, sinks, e.hold in dead, now),
                "error": e.letter.error,
                "shard_id": e.letter.shard_id,
                "sequence_number": e.letter.sequence_number,
                **({"body": e.letter.body} if as_json else {}),
            }
        )
    if not rows and not as_json:
        print("nothing parked" + (f" for order {order_id!r}" if order_id else ""))
        return 0
    columns = ["id", "sink", "order_id", "change", "attempts", "waited_s", "waiting_for"]
    print_rows(rows, columns, as_json)
    return 0


def lane_retry(settings: WorkerSettings, order_id: str | None) -> int:
    """Make parked changes due now: the running worker's retrier sends them within a
    few seconds, each order still oldest first. Nothing parked is not an error."""
    _, dynamodb = _state(settings)
    lane = _lane(settings, dynamodb)
    entries = list(lane.entries(_parked(settings, order_id)))
    if order_id and not entries:
        raise ConfigError("--order", f"nothing parked for order {order_id!r}")
    nudged = lane.retry_now(entries)
    lane.nudge()  # the running worker's retrier looks within seconds
    states = _sink_states(settings, dynamodb)
    disabled = sorted(
        {
            e.letter.sink
            for e in entries
            if states.get(e.letter.sink, SinkState(e.letter.sink)).disabled
        }
    )
    log.info("lane.retry_requested", order_id=order_id, entries=nudged)
    result: dict[str, Any] = {"due_now": nudged}
    if disabled:
        # Due, but nothing goes to a disabled sink: say what would release them.
        result["disabled_sinks"] = disabled
        result["hint"] = " ; ".join(f"worker sink enable {name}" for name in disabled)
    print(json.dumps(result))
    return 0


# -- sinks -------------------------------------------------------------------------------

# Sinks with endpoint health (a breaker, a disabled flag): every one but the local log.
GUARDED_SINKS = tuple(name for name in SINK_NAMES if name != "log")
SINK_COLUMNS = [
    "sink",
    "disabled",
    "reason",
    "since",
    "breaker",
    "breaker_changed_at",
    "parked",
    "oldest_parked_s",
    "next_attempt_at",
]


def _sink_states(settings: WorkerSettings, dynamodb: Any | None) -> dict[str, SinkState]:
    if dynamodb is None:
        return {}  # no state table yet: nothing was ever disabled or opened
    return _sink_store(settings, dynamodb).states()


def _sink_store(settings: WorkerSettings, dynamodb: Any) -> SinkStateStore:
    return SinkStateStore(
        client=dynamodb,
        table=settings.state_table,
        app=settings.app,
        scope=settings.table,
        clock=time.time,
    )


def sink_rows(
    settings: WorkerSettings, states: dict[str, SinkState], parked: Sequence[Parked] = ()
) -> list[dict[str, Any]]:
    """One row per remote sink, configured or recorded, and per sink with parked
    changes: the `worker status` section and `worker sink list`. The breaker is as the
    worker last published it (it writes only on a transition), so a stopped worker's
    last state stays shown; the lane columns are read from the lane itself."""
    lane = summarize(parked, time.time())
    names = [n for n in settings.sinks if n in GUARDED_SINKS]
    names += sorted((set(states) | set(lane)) - set(names))
    rows = []
    for name in names:
        state = states.get(name) or SinkState(name)
        gauge = lane.get(name)
        rows.append(
            {
                "sink": name,
                "disabled": state.disabled,
                "reason": state.reason,
                "since": state.disabled_at,
                "breaker": state.breaker,
                "breaker_changed_at": state.breaker_changed_at,
                "parked": gauge.parked if gauge else 0,
                "oldest_parked_s": round(gauge.oldest_age_s) if gauge else None,
                "next_attempt_at": iso_utc(gauge.next_at_s) if gauge and gauge.next_at_s else None,
            }
        )
    return rows


def sink_list(settings: WorkerSettings, as_json: bool) -> int:
    """`worker sink list`: each remote sink's disabled flag, breaker and parked count,
    as the fleet sees them in the state table."""
    _, dynamodb = _state(settings, required=False)
    parked = [] if dynamodb is None else list(_lane(settings, dynamodb).entries(_parked(settings)))
    rows = sink_rows(settings, _sink_states(settings, dynamodb), parked)
    if not rows and not as_json:
        print(
            "no remote sinks (ORDERSTREAM_SINKS has none of webhook, sns, sqs, "
            "and none was ever disabled)"
        )
        return 0
    print_rows(rows, SINK_COLUMNS, as_json)
    if dynamodb is None and not as_json:
        print(
            f"(no state table {settings.state_table!r} yet: nothing disabled or parked; "
            "check ORDERSTREAM_STATE_TABLE and AWS_REGION if a worker has run)"
        )
    return 0


def sink_enable(settings: WorkerSettings, name: str) -> int:
    """Clear a sink's disabled flag and its published breaker. A running worker reads
    the flag within seconds (no restart); its parked changes then go out."""
    if name not in GUARDED_SINKS:
        raise ConfigError(
            "NAME",
            f"{name!r} is not a sink with endpoint health: choose from {', '.join(GUARDED_SINKS)}",
        )
    _, dynamodb = _state(settings)
    before = _sink_store(settings, dynamodb).enable(name)
    _lane(settings, dynamodb).nudge()  # the running worker's retrier looks at once
    log.warning(
        "sink.enable_requested", sink=name, was_disabled=before.disabled, reason=before.reason
    )
    print(json.dumps({"enabled": name, "was_disabled": before.disabled, "reason": before.reason}))
    return 0
