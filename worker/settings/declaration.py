"""WorkerSettings: every ORDERSTREAM_* variable declared once, on its field.

Each field's `setting(...)` holds the parser (and so the bounds), the --help text, the
docs table's text and default, and README's summary; `SETTINGS`, the CLI flags
(worker/flags.py) and both tables (`make settings-doc`) are read from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from worker.core.errors import ConfigError
from worker.core.rules import Rules, parse_rules
from worker.delivery.lane import DEFAULT_SCHEDULE_S
from worker.delivery.sinks.signing import SigningKey
from worker.delivery.sinks.webhook_headers import parse_headers
from worker.settings import parsers as p
from worker.settings.checks import check
from worker.settings.commands import safe_summary
from worker.settings.setting import Setting, declared, setting
from writer.awsenv import endpoint_problem
from writer.schema import DEFAULT_TABLE

FLEET = "fleet mode: "


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """Every ORDERSTREAM_* setting, declared on its field; `from_env` builds it, then read-only."""

    table: str = setting(
        DEFAULT_TABLE,
        parse=p.table,
        help="the orders table",
        doc="the orders table",
        summary=True,
        metavar="NAME",
    )
    app: str = setting(
        "orderstream",
        parse=p.app,
        help="consumer name: keys checkpoints, lease and DLQ",
        doc="consumer name: keys its checkpoints, lease and DLQ",
        summary=True,
        metavar="NAME",
    )
    state_table: str = setting(
        "orderstream-state",
        parse=p.table,
        help="worker state table",
        doc="worker state table (checkpoints, lease, dedup, DLQ), created if absent",
        summary=True,
        metavar="NAME",
    )
    stream_arn: str | None = setting(
        None,
        parse=p.stream_arn,
        help="stream to read",
        doc="read this stream (one of ORDERSTREAM_TABLE's) instead of the table's latest one",
        default_doc="the table's latest stream",
        metavar="ARN",
    )
    start: str = setting(
        "TRIM_HORIZON",
        parse=p.choice("TRIM_HORIZON", "LATEST"),
        help="where a shard with no checkpoint starts",
        doc="where a shard with no checkpoint starts: `TRIM_HORIZON` or `LATEST`",
        summary=True,
        metavar="TRIM_HORIZON|LATEST",
    )
    sinks: tuple[str, ...] = setting(
        ("log",),
        parse=p.sinks,
        help="comma list of log, webhook, sns, sqs, email, eventbridge",
        doc="comma list of `log`, `webhook`, `sns`, `sqs`, `email`, `eventbridge`",
        summary=True,
        metavar="LIST",
    )
    webhook_url: str | None = setting(
        None,
        parse=p.optional,
        help="webhook target",
        doc="webhook target",
        summary=True,
        metavar="URL",
    )
    # Decoded at start-up, so a bad secret stops the worker before anything is sent.
    webhook_secret: tuple[SigningKey, ...] = setting(
        (),
        parse=p.secrets,
        help="Standard Webhooks signing secrets, whsec_<base64>, comma-separated for rotation",
        doc="[Standard Webhooks](worker.md#signatures) signing secrets, `whsec_<base64>` (24 to"
        " 64 bytes), comma-separated for rotation; a plain secret is refused; never logged",
        default_doc="none (unsigned)",
        summary="Standard Webhooks signing secrets, `whsec_<base64>`",
        metavar="whsec_...[,...]",
    )
    webhook_legacy_signature: bool = setting(
        False,
        parse=p.boolean,
        help="also send the legacy body-only X-Orderstream-Signature (replayable: no timestamp)",
        doc="also send the legacy body-only `X-Orderstream-Signature` (replayable: it signs no"
        " timestamp)",
    )
    webhook_headers: Mapping[str, str] = setting(
        {},
        parse=parse_headers,
        help='extra webhook headers as a JSON object, e.g. {"Authorization": "Bearer ..."}',
        doc='extra request headers as a JSON object, e.g. `{"Authorization": "Bearer …"}`;'
        " values are never logged (see the webhook sink below)",
        default_doc="none",
        metavar="JSON",
    )
    webhook_allow_http: bool = setting(
        False,
        parse=p.boolean,
        help="allow http:// webhooks on non-loopback hosts",
        doc="allow `http://` on non-loopback hosts",
    )
    webhook_verify_tls: bool = setting(
        True,
        parse=p.boolean,
        help="verify webhook TLS certificates",
        doc="verify certificates (turning it off logs a warning)",
    )
    webhook_timeout_ms: int = setting(
        10_000,
        parse=p.int_range(100, 120_000),
        help="webhook read timeout",
        doc="read timeout per POST (connect timeout is 5 s)",
    )
    webhook_rate: float = setting(
        0.0,
        parse=p.float_range(0.0, 100_000.0),
        help="webhook requests per second (token bucket, burst max(1, rate)); 0 = no limit",
        doc="webhook requests per second, a token bucket (burst `max(1, rate)`); 0 = no limit"
        " ([endpoint health](worker.md#endpoint-health))",
        default_doc="0 (no limit)",
        metavar="PER_SECOND",
    )
    sns_topic_arn: str | None = setting(
        None,
        parse=p.optional,
        help="SNS topic",
        doc="SNS sink: the topic ARN, required with `sns`",
        metavar="ARN",
    )
    sqs_queue_url: str | None = setting(
        None,
        parse=p.optional,
        help="SQS queue URL",
        doc="SQS sink: the queue URL, required with `sqs`",
        metavar="URL",
    )
    # `auto`: the new sinks (email, eventbridge) carry the profile; the others keep the
    # body they always had unless `profile` asks for it on every sink.
    enrich: str = setting(
        "auto",
        parse=p.choice("auto", "profile", "off"),
        help="the user's profile in the body: profile = every sink, auto = email and eventbridge",
        doc='the user\'s profile (`"user": {"user_id", "name", "email"}`) in the body'
        " ([enrichment](worker.md#profile-enrichment)): `profile` on every sink, `auto` on"
        " `email` and `eventbridge` only, `off` on none (the email sink still reads the"
        " address)",
        metavar="auto|profile|off",
    )
    enrich_ttl_s: int = setting(
        60,
        parse=p.int_range(0, 86400),
        help="seconds a profile read for enrichment is cached",
        doc="seconds a profile read for enrichment is cached (a missing one too); 0 reads"
        " every page's users",
    )
    email_from: str | None = setting(
        None,
        parse=p.sender,
        help="email sink: the (verified) sender",
        doc="[email sink](worker.md#the-email-sink): the sender, `shop@example.com` or"
        " `Shop <shop@example.com>`, verified in SES; required with `email`",
        metavar="ADDRESS",
    )
    email_templates: str | None = setting(
        None,
        parse=p.optional,
        help="email sink: folder of templates overriding the shipped ones",
        doc="email sink: a folder of [templates](worker.md#email-templates) overriding the"
        " shipped ones file by file; checked at start-up (exit 2 with the file and line of a"
        " mistake)",
        default_doc="the shipped ones",
        metavar="DIR",
    )
    eventbridge_bus: str = setting(
        "default",
        parse=p.bus,
        help="EventBridge sink: the bus",
        doc="[EventBridge sink](worker.md#the-eventbridge-sink): the event bus, a name or an ARN",
        metavar="NAME|ARN",
    )
    eventbridge_source: str = setting(
        "orderstream",
        parse=p.event_source,
        help="EventBridge sink: the events' Source",
        doc="EventBridge sink: the events' `Source` (not `aws.…`)",
        metavar="SOURCE",
    )
    max_attempts: int = setting(
        3,
        parse=p.int_range(1, 100),
        help="attempts in the first burst, before the retry lane (or the DLQ when it is off)",
        doc="attempts in the first burst, before the [retry lane](worker.md#the-retry-lane)"
        " (or the DLQ when the lane is off)",
        summary="the first burst of attempts; then the retry lane; then the DLQ",
    )
    retry_base_ms: int = setting(
        200,
        parse=p.int_range(1, 600_000),
        help="first retry wait (full jitter)",
        doc="the first burst: first retry wait (full jitter)",
    )
    retry_cap_ms: int = setting(
        2_000,
        parse=p.int_range(1, 3_600_000),
        help="longest retry wait",
        doc="the first burst: longest retry wait, at least `ORDERSTREAM_RETRY_BASE_MS`",
    )
    # About a day in all; then the DLQ. Empty: no lane, the DLQ right after the burst.
    retry_schedule: tuple[float, ...] = setting(
        DEFAULT_SCHEDULE_S,
        parse=p.schedule,
        help="retry lane: waits before each later attempt, e.g. 5s,5m,30m,2h; off: DLQ after"
        " the burst",
        doc="the [retry lane](worker.md#the-retry-lane): waits before each later attempt of a"
        " parked change, comma list of `500ms`, `5s`, `5m`, `2h`, `1d`; then the DLQ. `off`:"
        " no lane, the DLQ right after the burst (and a change being retried holds its shard,"
        " as before)",
        default_doc="`5s,5m,30m,2h,5h,10h,10h` (about a day)",
        summary="the retry lane's waits after the first burst; then the DLQ",
        metavar="WAITS|off",
    )
    breaker_failures: int = setting(
        5,
        parse=p.int_range(1, 1000),
        help="consecutive transient failures that open a sink's circuit breaker",
        doc="consecutive transient failures that open a remote sink's circuit breaker",
    )
    breaker_ratio: float = setting(
        0.5,
        parse=p.float_range(0.0, 1.0, open_low=True),
        help="failure ratio over the last 20 calls that opens a sink's circuit breaker",
        doc="failure ratio over the last 20 calls (once 20 were made) that opens it",
        metavar="RATIO",
    )
    breaker_open_s: int = setting(
        30,
        parse=p.int_range(1, 86400),
        help="seconds an open breaker refuses calls before one probe is let through",
        doc="seconds an open breaker refuses calls before one probe is let through",
    )
    notify_on: str | None = setting(
        None,
        parse=p.optional,
        help="transition rules OLD>NEW,...",
        doc="transition rules `OLD>NEW`, `*` wildcard, comma list",
        default_doc="`*>*`",
        summary="which changes notify (`OLD>NEW`, `*` wildcard)",
        metavar="RULES",
    )
    routes: str | None = setting(
        None,
        parse=p.optional,
        help="rules with sinks OLD>NEW:sink,...",
        doc="rules with sinks, `OLD>NEW:sink[+sink]`, first match wins",
        default_doc="all sinks",
        summary="which changes go through which sinks (`OLD>NEW:sink[+sink]`)",
        metavar="ROUTES",
    )
    dedup: bool = setting(
        False,
        parse=p.boolean,
        help="skip ids delivered before (on/off)",
        doc="`on` keeps a store of delivered ids",
    )
    dedup_ttl_s: int = setting(
        7 * 86400,
        parse=p.int_range(60, 30 * 86400),
        help="how long delivered ids are remembered",
        doc="how long delivered ids are remembered",
        default_doc="604800 (7 days)",
    )
    dlq_ttl_days: int = setting(
        0,
        parse=p.int_range(0, 3650),
        help="days a dead letter is kept before DynamoDB's TTL deletes it (0: until redriven)",
        doc="days a dead letter is kept before DynamoDB's TTL deletes it, its hold with it (0:"
        " until redriven or deleted). Off by default: a dead letter is a notification nobody"
        " has received yet, and an expiry would drop it silently",
    )
    concurrency: int = setting(
        32,
        parse=p.int_range(1, 1024),
        help="notifications in flight",
        doc="notifications in flight (all shards), order per order id kept",
        summary=True,
    )
    shutdown_s: int = setting(
        20,
        parse=p.int_range(1, 3600),
        help="graceful stop budget",
        doc="graceful stop budget",
    )
    lease_s: int = setting(
        15,
        parse=p.int_range(3, 600),
        help="app lease duration",
        doc="app lease time: a standby takes over this long after a crash",
    )
    idle_wait_ms: int = setting(
        500,
        parse=p.int_range(200, 10_000),
        help="longest wait between reads of an idle shard",
        doc="longest wait between reads of an idle shard",
    )
    discovery_interval_s: int = setting(
        60,
        parse=p.int_range(1, 3600),
        help="seconds between shard discoveries",
        doc="seconds between shard discoveries",
    )
    max_shards: int = setting(
        64,
        parse=p.int_range(1, 1000),
        help="shards read at once",
        doc="shards read at once by one process",
    )
    stats_interval_s: int = setting(
        30,
        parse=p.int_range(1, 86400),
        help="seconds between worker.stats events",
        doc="seconds between `worker.stats` events",
    )
    log_format: str = setting(
        "auto",
        parse=p.choice("auto", "json", "console"),
        help="json or console (auto: console on a TTY)",
        doc="`json` or `console` (`auto`: console when stdout is a TTY)",
        metavar="auto|json|console",
    )
    log_level: str = setting(
        "info",
        parse=p.choice("debug", "info", "warning", "error"),
        help="lowest level logged",
        doc="lowest level logged",
        metavar="LEVEL",
    )
    http_port: int = setting(
        0,
        parse=p.int_range(0, 65535),
        help="health and metrics port; 0 = off",
        doc="`/healthz`, `/readyz`, `/metrics`; 0 = off",
        summary=True,
        metavar="PORT",
    )
    # Containers are probed from outside, so every interface by default; on a shared
    # host set 127.0.0.1 (docs/security.md).
    http_host: str = setting(
        "0.0.0.0",  # noqa: S104 - documented default, see above
        parse=p.host,
        help="address the health and metrics endpoint binds (0.0.0.0: every interface)",
        doc="the address those endpoints bind; `127.0.0.1` keeps them on the host",
        default_doc="`0.0.0.0` (every interface: containers are probed from outside)",
        metavar="ADDRESS",
    )
    # auto: this process alone while one shard is read at a time; more, up to one per
    # core, once several are (worker/poller/multiproc.py).
    processes: int | Literal["auto"] = setting(
        "auto",
        parse=p.processes,
        help="reader processes: auto (one per core, up to the shards read at once) or 1..64",
        doc="poller: where shards are read. `auto`: in the worker's own process while one"
        " shard is read at a time, then up to one reader process per usable core (CPU"
        " affinity and a cgroup CPU quota count), never more than the shards read at once;"
        " `N`: N reader processes from the start; `1`: the worker's process alone (see"
        " [Performance](performance.md))",
        summary="poller: `auto` reads one shard in the worker's process, several in up to one"
        " reader process per core; or a number",
        metavar="auto|N",
    )
    kcl_failover_ms: int = setting(
        10_000,
        parse=p.int_range(1000, 3_600_000),
        help=FLEET + "a lease not renewed for this long moves to another worker",
        doc=FLEET + "a lease not renewed for this long moves to another worker",
    )
    kcl_assignment_ms: int | None = setting(
        None,
        parse=p.int_range(500, 3_600_000),
        help=FLEET + "how often the KCL leader assigns leases",
        doc=FLEET + "how often KCL's leader assigns leases",
        default_doc="2 × failover",  # noqa: RUF001 - the docs' sign
    )
    kcl_parent_poll_ms: int = setting(
        10_000,
        parse=p.int_range(100, 600_000),
        help=FLEET + "how often a child shard checks that its parents are done",
        doc=FLEET + "how often a child shard checks that its parents are done",
    )
    kcl_max_leases: int | None = setting(
        None,
        parse=p.int_range(1, 100_000),
        help=FLEET + "most shards one worker takes",
        doc=FLEET + "most shards one worker takes",
        default_doc="no limit",
    )
    kcl_metrics: str = setting(
        "NONE",
        parse=p.choice("NONE", "SUMMARY", "DETAILED"),
        help=FLEET + "KCL's CloudWatch metrics level",
        doc=FLEET + "KCL's CloudWatch metrics, `NONE`, `SUMMARY` or `DETAILED`",
        metavar="NONE|SUMMARY|DETAILED",
    )
    kcl_jars: str | None = setting(
        None,
        parse=p.optional,
        help=FLEET + "folder of the shim's runtime jars",
        doc=FLEET + "folder of the shim's runtime jars",
        default_doc="`kcl/target/lib`",
        metavar="DIR",
    )
    # Not an ORDERSTREAM_* setting: AWS_DEFAULT_REGION or AWS_REGION, as from_env reads.
    region: str | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> WorkerSettings:
        """Read every setting: a CLI flag (in `overrides`) wins over the environment."""
        problem = endpoint_problem(env)
        if problem:
            raise ConfigError(*problem)
        values: dict[str, Any] = {}
        for row in SETTINGS:
            raw = (overrides or {}).get(row.name)
            if raw is None:
                raw = env.get(row.env)
            if raw is None:
                continue
            try:
                values[row.name] = row.parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(row.env, str(exc)) from None
        values["region"] = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def rules(self) -> Rules:
        """Transition rules and routes, parsed (validate() has checked them)."""
        return parse_rules(self.notify_on, self.routes, self.sinks)

    def validate(self) -> None:
        """Checks across settings; each failure names the setting to fix."""
        check(self)

    def enriched_sinks(self) -> dict[str, bool]:
        """The sinks whose changes need the user's profile, each with whether its body
        carries it: email always reads it (the address); `auto` puts it in the body of
        email and eventbridge, `profile` in every sink's, `off` in none."""
        if self.enrich == "profile":
            return dict.fromkeys(self.sinks, True)
        wanted = {"email"} if self.enrich == "off" else {"email", "eventbridge"}
        return {name: self.enrich == "auto" for name in self.sinks if name in wanted}

    def safe_summary(self, command: str = "run") -> dict[str, str]:
        """The settings that apply to `command`, as text, secrets masked (commands.py)."""
        return safe_summary(self, command)


# ORDERSTREAM_* variables the worker sets for its own processes, read by no setting.
KCL_STATUS_DIR = "ORDERSTREAM_KCL_STATUS_DIR"  # `worker kcl run` to its processors
INTERNAL_VARIABLES = frozenset({KCL_STATUS_DIR})

SETTINGS: tuple[Setting, ...] = declared(WorkerSettings)
