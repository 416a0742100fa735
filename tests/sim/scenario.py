"""One seed, one scenario: the shape of the stream, the faults and the lifecycle events.

Everything is drawn from a `random.Random(seed)` of its own, so a scenario depends on
its seed only; the scheduler draws the interleaving from another one. Ranges are
generic (nothing here aims at one known defect): shards and splits, writes, retention,
replicas, crashes, SIGTERMs, skew, fault rates for every dependency, and the retry
lane with its endpoint guard (`LanePlan`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

SINK_SETS = (("log",), ("webhook",), ("log", "webhook"), ("log", "webhook"))
ROUTES = (
    None,
    None,
    "*>Shipped:webhook,*>*:log+webhook",
    "Pending>*:log,*>*:log+webhook",
)


@dataclass(frozen=True)
class SinkPlan:
    """The remote sink's behaviour: latency, transient and permanent failures, outages."""

    latency_s: tuple[float, float]
    timeout_s: float
    p_transient: float  # 5xx / 429 per attempt
    p_permanent: float  # 4xx per attempt
    p_too_large: float  # 413 for a notification, every time
    outages: tuple[tuple[float, float], ...]  # every attempt fails (5xx) in these windows
    retry_after_s: float | None = None  # sent with 429/503 (pauses the breaker), or none


@dataclass(frozen=True)
class LanePlan:
    """The retry lane (worker/delivery/lane.py, worker/delivery/retrier.py) and the remote
    sink's guard.

    Schedules are short (a few steps of a few seconds) so that parked changes are
    delivered or exhausted within a run; `guarded` wraps the remote sink in GuardedSink
    (breaker, rate limit, disabled flag), so refusals park changes without an attempt."""

    schedule: tuple[float, ...]  # empty: the lane is off (changes go to the DLQ)
    poll_s: float  # the retrier's longest wait between passes
    guarded: bool
    breaker_failures: int
    breaker_ratio: float
    breaker_open_s: float
    rate: float  # webhook calls per second, 0 = no limit

    @property
    def on(self) -> bool:
        return bool(self.schedule)

    @property
    def drain_s(self) -> float:
        """Long enough for a change parked just before the settle to be delivered or
        exhausted: every step of the schedule, a poll per step (a refusal keeps the
        change's turn until the next pass) and a breaker open per step."""
        if not self.on:
            return 0.0
        per_step = self.poll_s + (self.breaker_open_s if self.guarded else 0.0)
        return sum(self.schedule) + len(self.schedule) * per_step + 10.0


@dataclass(frozen=True)
class NotifyPlan:
    """The email (SES v2) and EventBridge sinks of issue 17: the real EmailSink and
    EventBridgeSink (group commit) over simulated clients, behind the profile enrichment
    of worker/delivery/enrich.py, with their own failure modes. Faults that would keep the retry
    lane from draining (throttling, lost answers) stop when the system settles."""

    sinks: tuple[str, ...]  # added to the scenario's sinks; () when off
    p_throttle: float  # per call: SES TooManyRequestsException, a whole PutEvents throttled
    p_reject: float  # per email: MessageRejected (permanent: the DLQ at once)
    p_entry_throttle: float  # per EventBridge entry: ThrottlingException in the answer
    p_entry_invalid: float  # per EventBridge entry: InvalidArgument (permanent)
    p_ambiguous: float  # the call landed, its answer was lost (a 500 after the write)
    no_profile_user: int | None  # this user has no PROFILE item: its emails are dead-lettered
    latency_s: tuple[float, float] = (0.005, 0.3)


NOTIFY_OFF = NotifyPlan((), 0.0, 0.0, 0.0, 0.0, 0.0, None)


def draw_notify(rng: random.Random, users: int) -> NotifyPlan:
    """The new sinks in about 40% of the runs, each failure mode in some of those."""
    if rng.random() >= 0.4:
        return NOTIFY_OFF
    return NotifyPlan(
        sinks=rng.choice((("email",), ("eventbridge",), ("email", "eventbridge"))),
        p_throttle=rng.choice((0.0, 0.05, 0.2)),
        p_reject=rng.choice((0.0, 0.0, 0.05)),
        p_entry_throttle=rng.choice((0.0, 0.1, 0.3)),
        p_entry_invalid=rng.choice((0.0, 0.0, 0.03)),
        p_ambiguous=rng.choice((0.0, 0.05)),
        no_profile_user=rng.randrange(users) if rng.random() < 0.5 else None,
    )


@dataclass(frozen=True)
class Scenario:
    seed: int
    shards: int
    start: str
    sinks: tuple[str, ...]
    routes: str | None
    replicas: int
    lease_s: float
    shutdown_s: float
    idle_wait_s: float
    discovery_s: float
    concurrency: int
    max_attempts: int
    retry_base_s: float
    retry_cap_s: float
    progress_every_s: float
    duration_s: float
    settle_s: float
    retention_s: float
    write_every_s: float
    burst_p: float
    users: int
    max_orders: int
    split_every_s: float | None
    crash_every_s: float | None
    sigterm_every_s: float | None
    restart_delay_s: tuple[float, float]
    long_restart_p: float
    skews_s: tuple[float, ...]
    state_fault_p: float
    state_ambiguous_p: float
    stream_fault_p: float
    expire_every_s: float | None
    query_page: int
    sink: SinkPlan
    lane: LanePlan = field(
        default=LanePlan((), 5.0, False, 5, 0.5, 30.0, 0.0)  # the lane off, no guard
    )
    notify: NotifyPlan = field(default=NOTIFY_OFF)
    io_latency_s: tuple[float, float] = field(default=(0.001, 0.02))

    @property
    def short_retention(self) -> bool:
        return self.retention_s < self.duration_s + self.settle_s


def _maybe(rng: random.Random, p: float, low: float, high: float) -> float | None:
    return rng.uniform(low, high) if rng.random() < p else None


def draw_lane(rng: random.Random) -> LanePlan:
    """The lane on in about 70% of the runs; the guard in about half of those."""
    on = rng.random() < 0.7
    steps = rng.randint(2, 5)
    schedule = tuple(round(rng.uniform(0.2, 3.0), 3) for _ in range(steps))
    return LanePlan(
        schedule=schedule if on else (),
        poll_s=rng.choice((0.5, 1.0, 5.0)),
        guarded=on and rng.random() < 0.5,
        breaker_failures=rng.randint(2, 6),
        breaker_ratio=rng.choice((0.3, 0.5, 0.8)),
        breaker_open_s=rng.uniform(0.5, 5.0),
        rate=rng.choice((0.0, 0.0, 2.0, 10.0)),
    )


def draw(seed: int) -> Scenario:
    """The scenario of `seed` (pure: same seed, same scenario)."""
    rng = random.Random(f"scenario-{seed}")
    lease_s = rng.uniform(3.0, 10.0)
    retention_s = rng.uniform(10.0, 40.0) if rng.random() < 0.3 else 3600.0
    sinks = rng.choice(SINK_SETS)
    slow = rng.random() < 0.5
    outages = tuple(
        (start, start + rng.uniform(2.0, 20.0))
        for start in sorted(rng.uniform(0.0, 50.0) for _ in range(rng.choice((0, 0, 1, 2))))
    )
    sink = SinkPlan(
        latency_s=(0.2, 2.0) if slow else (0.005, 0.1),
        timeout_s=rng.uniform(1.0, 3.0),
        p_transient=rng.choice((0.0, 0.0, 0.05, 0.2)),
        p_permanent=rng.choice((0.0, 0.0, 0.02, 0.08)),
        p_too_large=rng.choice((0.0, 0.0, 0.03)),
        outages=outages,
    )
    max_attempts = rng.randint(1, 5)
    retry_cap_s = rng.uniform(1.0, 5.0)
    # Drawn from a generator of their own, so the lane leaves every other draw of an
    # existing seed as it was.
    lane_rng = random.Random(f"lane-{seed}")
    lane = draw_lane(lane_rng)
    if lane_rng.random() < 0.3:
        sink = dataclasses.replace(sink, retry_after_s=lane_rng.uniform(0.5, 3.0))
    scenario = Scenario(
        seed=seed,
        shards=rng.randint(1, 4),
        start=rng.choice(("TRIM_HORIZON", "LATEST")),
        sinks=sinks,
        routes=rng.choice(ROUTES) if len(sinks) == 2 else None,
        replicas=rng.choice((1, 2, 2)),
        lease_s=lease_s,
        shutdown_s=rng.choice((3.0, 5.0, 10.0, 20.0)),
        idle_wait_s=rng.uniform(0.5, 2.0),
        discovery_s=rng.uniform(0.5, 3.0),
        concurrency=rng.randint(1, 4),
        max_attempts=max_attempts,
        retry_base_s=rng.uniform(0.05, 0.5),
        retry_cap_s=retry_cap_s,
        progress_every_s=rng.choice((1.0, 2.0, 5.0)),
        duration_s=rng.uniform(20.0, 60.0),
        settle_s=40.0 + max_attempts * retry_cap_s,
        retention_s=retention_s,
        write_every_s=rng.uniform(0.2, 2.0),
        burst_p=rng.choice((0.0, 0.1, 0.3)),
        users=rng.randint(1, 3),
        max_orders=rng.randint(2, 8),
        split_every_s=_maybe(rng, 0.5, 4.0, 20.0),
        crash_every_s=_maybe(rng, 0.6, 4.0, 30.0),
        sigterm_every_s=_maybe(rng, 0.4, 4.0, 30.0),
        restart_delay_s=(0.2, 5.0),
        long_restart_p=0.2,
        # Each machine's clock is off by at most lease_s/8, so two replicas differ by at
        # most lease_s/4: a renewing holder (every lease_s/3) never looks expired.
        skews_s=tuple(rng.uniform(-lease_s / 8, lease_s / 8) for _ in range(2)),
        state_fault_p=rng.choice((0.0, 0.0, 0.0, 0.02, 0.08)),
        state_ambiguous_p=rng.choice((0.0, 0.3)),
        stream_fault_p=rng.choice((0.0, 0.0, 0.03, 0.1)),
        expire_every_s=_maybe(rng, 0.2, 3.0, 15.0),
        query_page=rng.choice((2, 5, 1000)),
        sink=sink,
        lane=lane,
    )
    # The new sinks from a generator of their own too: every earlier draw stays as it was.
    notify = draw_notify(random.Random(f"notify-{seed}"), scenario.users)
    return dataclasses.replace(scenario, sinks=scenario.sinks + notify.sinks, notify=notify)
