"""Worker settings: ORDERSTREAM_* variables (each also a CLI flag), validated once."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any, Literal

from worker.errors import ConfigError
from worker.lane import DEFAULT_SCHEDULE_S
from worker.rules import Rules, parse_rules
from worker.sinks.email_templates import EmailTemplates, TemplateProblemError
from worker.sinks.signing import SigningKey, parse_secrets
from worker.sinks.webhook_headers import masked, parse_headers
from worker.sinks.webhook_target import WebhookUrlError, loggable_url, parse_target
from writer.awsenv import endpoint_problem
from writer.schema import DEFAULT_TABLE
from writer.settings import TABLE_NAME

SINK_NAMES = ("log", "webhook", "sns", "sqs", "email", "eventbridge")
# EventBridge's names: a bus name (or ARN) and an event source.
BUS_NAME = re.compile(r"^(arn:[\w+=,.@/:-]{1,1600}|[/.\-_A-Za-z0-9]{1,256})$")
EVENT_SOURCE = re.compile(r"^[A-Za-z0-9._/-]{1,256}$")
APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True)
class Setting:
    """One setting: its field, environment variable, parser and help text."""

    name: str
    env: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _float_range(low: float, high: float, *, open_low: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not (low < value if open_low else low <= value) or not value <= high:
            bound = "(" if open_low else "["
            raise ValueError(f"{text} is outside {bound}{low:g}, {high:g}]")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not on/off")


def _table(text: str) -> str:
    if not TABLE_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a DynamoDB table name")
    return text


def _app(text: str) -> str:
    if not APP_NAME.fullmatch(text):
        raise ValueError(f"{text!r} must match {APP_NAME.pattern}")
    return text


def _sinks(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in SINK_NAMES]
    if not names or unknown:
        raise ValueError(f"{text!r}: choose from {', '.join(SINK_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{text!r} names a sink twice")
    return names


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")


def _schedule(text: str) -> tuple[float, ...]:
    """`5s,5m,30m,2h` as seconds; `off` turns the retry lane off. An empty value is an
    error: it must not turn the lane off by accident."""
    if text.strip().lower() == "off":
        return ()
    if not text.strip():
        raise ValueError("empty: give waits like 5s,5m,2h, or off to turn the lane off")
    waits: list[float] = []
    for part in text.split(","):
        match = _DURATION.fullmatch(part.strip())
        if not match or float(match[1]) <= 0:
            raise ValueError(f"{part.strip()!r} is not a duration like 5s, 5m, 2h (or use off)")
        waits.append(float(match[1]) * _UNITS[match[2]])
    if len(waits) > 50:
        raise ValueError("at most 50 steps")
    if max(waits) > 7 * 86400:
        raise ValueError(
            "a step of more than 7 days: past the stream's and most receivers' patience"
        )
    return tuple(waits)


def _processes(text: str) -> int | Literal["auto"]:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _int_range(1, 64)(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; use auto or 1..64") from None


def _optional(text: str) -> str | None:
    return text or None


def _secrets(text: str) -> tuple[SigningKey, ...]:
    """Empty means unsigned, as when the variable is unset."""
    return parse_secrets(text) if text else ()


def _sender(text: str) -> str | None:
    """`shop@example.com` or `Shop <shop@example.com>`: one address, on one line."""
    if not text:
        return None
    addresses = getaddresses([text])
    if len(addresses) != 1 or "@" not in addresses[0][1] or any(ch in text for ch in "\r\n"):
        raise ValueError(f"{text!r} is not one email address (e.g. Shop <shop@example.com>)")
    return text


def _bus(text: str) -> str:
    if not BUS_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not an EventBridge bus name or ARN")
    return text


def _event_source(text: str) -> str:
    if not EVENT_SOURCE.fullmatch(text) or text.startswith("aws."):
        raise ValueError(f"{text!r} is not an event source (letters, digits, ._/-; not aws.*)")
    return text


def _host(text: str) -> str:
    """An address to bind: an IP literal (no name lookups at start-up) or `localhost`."""
    if text == "localhost":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)") from None
    return text


def _stream_arn(text: str) -> str | None:
    if text and not text.startswith("arn:"):
        raise ValueError(f"{text!r} is not an ARN")
    return text or None


SETTINGS: tuple[Setting, ...] = (
    Setting("table", "ORDERSTREAM_TABLE", _table, "the orders table"),
    Setting("app", "ORDERSTREAM_APP", _app, "consumer name: keys checkpoints, lease and DLQ"),
    Setting("state_table", "ORDERSTREAM_STATE_TABLE", _table, "worker state table"),
    Setting(
        "stream_arn",
        "ORDERSTREAM_STREAM_ARN",
        _stream_arn,
        "stream to read (default: the table's latest stream)",
    ),
    Setting(
        "start",
        "ORDERSTREAM_START",
        _choice("TRIM_HORIZON", "LATEST"),
        "where a shard with no checkpoint starts",
    ),
    Setting(
        "sinks",
        "ORDERSTREAM_SINKS",
        _sinks,
        "comma list of log, webhook, sns, sqs, email, eventbridge",
    ),
    Setting("webhook_url", "ORDERSTREAM_WEBHOOK_URL", _optional, "webhook target"),
    Setting(
        "webhook_secret",
        "ORDERSTREAM_WEBHOOK_SECRET",
        _secrets,
        "Standard Webhooks signing secrets, whsec_<base64>, comma-separated for rotation",
    ),
    Setting(
        "webhook_legacy_signature",
        "ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE",
        _bool,
        "also send the legacy body-only X-Orderstream-Signature (replayable: no timestamp)",
    ),
    Setting(
        "webhook_headers",
        "ORDERSTREAM_WEBHOOK_HEADERS",
        parse_headers,
        'extra webhook headers as a JSON object, e.g. {"Authorization": "Bearer ..."}',
    ),
    Setting(
        "webhook_allow_http",
        "ORDERSTREAM_WEBHOOK_ALLOW_HTTP",
        _bool,
        "allow http:// webhooks on non-loopback hosts",
    ),
    Setting(
        "webhook_verify_tls",
        "ORDERSTREAM_WEBHOOK_VERIFY_TLS",
        _bool,
        "verify webhook TLS certificates",
    ),
    Setting(
        "webhook_timeout_ms",
        "ORDERSTREAM_WEBHOOK_TIMEOUT_MS",
        _int_range(100, 120_000),
        "webhook read timeout",
    ),
    Setting(
        "webhook_rate",
        "ORDERSTREAM_WEBHOOK_RATE",
        _float_range(0.0, 100_000.0),
        "webhook requests per second (token bucket, burst max(1, rate)); 0 = no limit",
    ),
    Setting("sns_topic_arn", "ORDERSTREAM_SNS_TOPIC_ARN", _optional, "SNS topic"),
    Setting("sqs_queue_url", "ORDERSTREAM_SQS_QUEUE_URL", _optional, "SQS queue URL"),
    Setting(
        "enrich",
        "ORDERSTREAM_ENRICH",
        _choice("auto", "profile", "off"),
        "the user's profile in the body: profile = every sink, auto = email and eventbridge",
    ),
    Setting(
        "enrich_ttl_s",
        "ORDERSTREAM_ENRICH_TTL_S",
        _int_range(0, 86400),
        "seconds a profile read for enrichment is cached",
    ),
    Setting("email_from", "ORDERSTREAM_EMAIL_FROM", _sender, "email sink: the (verified) sender"),
    Setting(
        "email_templates",
        "ORDERSTREAM_EMAIL_TEMPLATES",
        _optional,
        "email sink: folder of templates overriding the shipped ones",
    ),
    Setting("eventbridge_bus", "ORDERSTREAM_EVENTBRIDGE_BUS", _bus, "EventBridge sink: the bus"),
    Setting(
        "eventbridge_source",
        "ORDERSTREAM_EVENTBRIDGE_SOURCE",
        _event_source,
        "EventBridge sink: the events' Source",
    ),
    Setting(
        "max_attempts",
        "ORDERSTREAM_MAX_ATTEMPTS",
        _int_range(1, 100),
        "attempts in the first burst, before the retry lane (or the DLQ when it is off)",
    ),
    Setting(
        "retry_schedule",
        "ORDERSTREAM_RETRY_SCHEDULE",
        _schedule,
        "retry lane: waits before each later attempt, e.g. 5s,5m,30m,2h; off: DLQ after the burst",
    ),
    Setting(
        "retry_base_ms",
        "ORDERSTREAM_RETRY_BASE_MS",
        _int_range(1, 600_000),
        "first retry wait (full jitter)",
    ),
    Setting(
        "retry_cap_ms", "ORDERSTREAM_RETRY_CAP_MS", _int_range(1, 3_600_000), "longest retry wait"
    ),
    Setting(
        "breaker_failures",
        "ORDERSTREAM_BREAKER_FAILURES",
        _int_range(1, 1000),
        "consecutive transient failures that open a sink's circuit breaker",
    ),
    Setting(
        "breaker_ratio",
        "ORDERSTREAM_BREAKER_RATIO",
        _float_range(0.0, 1.0, open_low=True),
        "failure ratio over the last 20 calls that opens a sink's circuit breaker",
    ),
    Setting(
        "breaker_open_s",
        "ORDERSTREAM_BREAKER_OPEN_S",
        _int_range(1, 86400),
        "seconds an open breaker refuses calls before one probe is let through",
    ),
    Setting(
        "log_format",
        "ORDERSTREAM_LOG_FORMAT",
        _choice("auto", "json", "console"),
        "json or console (auto: console on a TTY)",
    ),
    Setting(
        "log_level",
        "ORDERSTREAM_LOG_LEVEL",
        _choice("debug", "info", "warning", "error"),
        "lowest level logged",
    ),
    Setting(
        "http_port",
        "ORDERSTREAM_HTTP_PORT",
        _int_range(0, 65535),
        "health and metrics port; 0 = off",
    ),
    Setting(
        "http_host",
        "ORDERSTREAM_HTTP_HOST",
        _host,
        "address the health and metrics endpoint binds (0.0.0.0: every interface)",
    ),
    Setting("dedup", "ORDERSTREAM_DEDUP", _bool, "skip ids delivered before (on/off)"),
    Setting(
        "dedup_ttl_s",
        "ORDERSTREAM_DEDUP_TTL_S",
        _int_range(60, 30 * 86400),
        "how long delivered ids are remembered",
    ),
    Setting(
        "dlq_ttl_days",
        "ORDERSTREAM_DLQ_TTL_DAYS",
        _int_range(0, 3650),
        "days a dead letter is kept before DynamoDB's TTL deletes it (0: until redriven)",
    ),
    Setting("notify_on", "ORDERSTREAM_NOTIFY_ON", _optional, "transition rules OLD>NEW,..."),
    Setting("routes", "ORDERSTREAM_ROUTES", _optional, "rules with sinks OLD>NEW:sink,..."),
    Setting(
        "concurrency", "ORDERSTREAM_CONCURRENCY", _int_range(1, 1024), "notifications in flight"
    ),
    Setting("shutdown_s", "ORDERSTREAM_SHUTDOWN_S", _int_range(1, 3600), "graceful stop budget"),
    Setting(
        "stats_interval_s",
        "ORDERSTREAM_STATS_INTERVAL_S",
        _int_range(1, 86400),
        "seconds between worker.stats events",
    ),
    Setting("lease_s", "ORDERSTREAM_LEASE_S", _int_range(3, 600), "app lease duration"),
    Setting(
        "idle_wait_ms",
        "ORDERSTREAM_IDLE_WAIT_MS",
        _int_range(200, 10_000),
        "longest wait between reads of an idle shard",
    ),
    Setting(
        "discovery_interval_s",
        "ORDERSTREAM_DISCOVERY_INTERVAL_S",
        _int_range(1, 3600),
        "seconds between shard discoveries",
    ),
    Setting("max_shards", "ORDERSTREAM_MAX_SHARDS", _int_range(1, 1000), "shards read at once"),
    Setting(
        "processes",
        "ORDERSTREAM_PROCESSES",
        _processes,
        "reader processes: auto (one per core, up to the shards read at once) or 1..64",
    ),
    # Fleet mode (`worker kcl run`): KCL tuning, written into the MultiLangDaemon properties.
    Setting(
        "kcl_failover_ms",
        "ORDERSTREAM_KCL_FAILOVER_MS",
        _int_range(1000, 3_600_000),
        "fleet mode: a lease not renewed for this long moves to another worker",
    ),
    Setting(
        "kcl_assignment_ms",
        "ORDERSTREAM_KCL_ASSIGNMENT_MS",
        _int_range(500, 3_600_000),
        "fleet mode: how often the KCL leader assigns leases (default 2 x failover)",
    ),
    Setting(
        "kcl_parent_poll_ms",
        "ORDERSTREAM_KCL_PARENT_POLL_MS",
        _int_range(100, 600_000),
        "fleet mode: how often a child shard checks that its parents are done",
    ),
    Setting(
        "kcl_max_leases",
        "ORDERSTREAM_KCL_MAX_LEASES",
        _int_range(1, 100_000),
        "fleet mode: most shards one worker takes (default no limit)",
    ),
    Setting(
        "kcl_metrics",
        "ORDERSTREAM_KCL_METRICS",
        _choice("NONE", "SUMMARY", "DETAILED"),
        "fleet mode: KCL's CloudWatch metrics level",
    ),
    Setting(
        "kcl_jars",
        "ORDERSTREAM_KCL_JARS",
        _optional,
        "fleet mode: folder of the shim's runtime jars (default kcl/target/lib)",
    ),
)


# Which settings each command reads: its flags (`worker run --help`) and its start-up
# summary. The environment is validated whole whatever the command.
COMMON = ("table", "app", "state_table", "log_format", "log_level")
STREAM = ("stream_arn", "start")
DELIVERY = (
    "sinks",
    "webhook_url",
    "webhook_secret",
    "webhook_legacy_signature",
    "webhook_allow_http",
    "webhook_verify_tls",
    "webhook_timeout_ms",
    "webhook_headers",
    "webhook_rate",
    "sns_topic_arn",
    "sqs_queue_url",
    "enrich",
    "enrich_ttl_s",
    "email_from",
    "email_templates",
    "eventbridge_bus",
    "eventbridge_source",
    "max_attempts",
    "retry_base_ms",
    "retry_cap_ms",
    "retry_schedule",
    "breaker_failures",
    "breaker_ratio",
    "breaker_open_s",
)
PIPELINE = (
    "dlq_ttl_days",
    "notify_on",
    "routes",
    "dedup",
    "dedup_ttl_s",
    "concurrency",
    "shutdown_s",
    "stats_interval_s",
    "idle_wait_ms",
    "http_port",
    "http_host",
)
POLLER = ("lease_s", "discovery_interval_s", "max_shards", "processes")
FLEET = tuple(s.name for s in SETTINGS if s.name.startswith("kcl_"))
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "run": COMMON + STREAM + DELIVERY + PIPELINE + POLLER,
    "kcl run": COMMON + STREAM + DELIVERY + PIPELINE + FLEET,
    "demo": COMMON,
    "status": (*COMMON, *STREAM, "sinks"),
    "dlq list": COMMON,
    "dlq drop": COMMON,
    "lane list": COMMON,
    "lane retry": COMMON,
    "dlq redrive": COMMON + DELIVERY + ("dlq_ttl_days",),
    "sink list": (*COMMON, "sinks"),
    "sink enable": COMMON,
}
# Always in the start-up summary; the rest only when set away from the default.
KEY_SETTINGS = frozenset({"table", "app", "state_table", "start", "sinks"})
SINK_SETTINGS = {
    "webhook": "webhook_",
    "sns": "sns_",
    "sqs": "sqs_",
    "email": "email_",
    "eventbridge": "eventbridge_",
}
TARGETS = ("webhook_url", "sns_topic_arn", "sqs_queue_url", "email_from", "eventbridge_bus")


@dataclass(frozen=True)
class WorkerSettings:
    table: str = DEFAULT_TABLE
    app: str = "orderstream"
    state_table: str = "orderstream-state"
    stream_arn: str | None = None
    start: str = "TRIM_HORIZON"
    sinks: tuple[str, ...] = ("log",)
    webhook_url: str | None = None
    # Decoded at start-up, so a bad secret stops the worker before anything is sent.
    webhook_secret: tuple[SigningKey, ...] = ()
    webhook_legacy_signature: bool = False
    webhook_headers: Mapping[str, str] = field(default_factory=dict)
    webhook_allow_http: bool = False
    webhook_verify_tls: bool = True
    webhook_timeout_ms: int = 10_000
    webhook_rate: float = 0.0
    sns_topic_arn: str | None = None
    sqs_queue_url: str | None = None
    # `auto`: the new sinks (email, eventbridge) carry the profile; the others keep the
    # body they always had unless `profile` asks for it on every sink.
    enrich: str = "auto"
    enrich_ttl_s: int = 60
    email_from: str | None = None
    email_templates: str | None = None
    eventbridge_bus: str = "default"
    eventbridge_source: str = "orderstream"
    max_attempts: int = 3
    retry_base_ms: int = 200
    retry_cap_ms: int = 2_000
    # About a day in all; then the DLQ. Empty: no lane, the DLQ right after the burst.
    retry_schedule: tuple[float, ...] = DEFAULT_SCHEDULE_S
    breaker_failures: int = 5
    breaker_ratio: float = 0.5
    breaker_open_s: int = 30
    log_format: str = "auto"
    log_level: str = "info"
    http_port: int = 0
    # Containers are probed from outside, so every interface by default; on a shared
    # host set 127.0.0.1 (docs/security.md).
    http_host: str = "0.0.0.0"  # noqa: S104 - documented default, see above
    dedup: bool = False
    dedup_ttl_s: int = 7 * 86400
    dlq_ttl_days: int = 0
    notify_on: str | None = None
    routes: str | None = None
    concurrency: int = 32
    shutdown_s: int = 20
    stats_interval_s: int = 30
    lease_s: int = 15
    idle_wait_ms: int = 500
    discovery_interval_s: int = 60
    max_shards: int = 64
    # auto: this process alone while one shard is read at a time; more, up to one per
    # core, once several are (worker/multiproc.py).
    processes: int | Literal["auto"] = "auto"
    kcl_failover_ms: int = 10_000
    kcl_assignment_ms: int | None = None
    kcl_parent_poll_ms: int = 10_000
    kcl_max_leases: int | None = None
    kcl_metrics: str = "NONE"
    kcl_jars: str | None = None
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
        for setting in SETTINGS:
            raw = (overrides or {}).get(setting.name)
            if raw is None:
                raw = env.get(setting.env)
            if raw is None:
                continue
            try:
                values[setting.name] = setting.parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(setting.env, str(exc)) from None
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
        if self.retry_cap_ms < self.retry_base_ms:
            raise ConfigError("ORDERSTREAM_RETRY_CAP_MS", "must be >= ORDERSTREAM_RETRY_BASE_MS")
        if "webhook" in self.sinks:
            self._validate_webhook()
        if "sns" in self.sinks and not (self.sns_topic_arn or "").startswith("arn:"):
            raise ConfigError("ORDERSTREAM_SNS_TOPIC_ARN", "an SNS topic ARN is required")
        if "sqs" in self.sinks and not (self.sqs_queue_url or "").startswith(
            ("http://", "https://")
        ):
            raise ConfigError("ORDERSTREAM_SQS_QUEUE_URL", "an SQS queue URL is required")
        if "email" in self.sinks:
            self._validate_email()
        try:
            parse_rules(self.notify_on, None, self.sinks)
        except ValueError as exc:
            raise ConfigError("ORDERSTREAM_NOTIFY_ON", str(exc)) from None
        try:
            self.rules  # noqa: B018 - parse once to validate
        except ValueError as exc:
            raise ConfigError("ORDERSTREAM_ROUTES", str(exc)) from None

    def _validate_email(self) -> None:
        if not self.email_from:
            raise ConfigError("ORDERSTREAM_EMAIL_FROM", "required when the email sink is on")
        try:
            EmailTemplates(self.email_templates).check()
        except TemplateProblemError as exc:
            raise ConfigError("ORDERSTREAM_EMAIL_TEMPLATES", str(exc)) from None

    def enriched_sinks(self) -> dict[str, bool]:
        """The sinks whose changes need the user's profile, each with whether its body
        carries it: email always reads it (the address); `auto` puts it in the body of
        email and eventbridge, `profile` in every sink's, `off` in none."""
        if self.enrich == "profile":
            return dict.fromkeys(self.sinks, True)
        wanted = {"email"} if self.enrich == "off" else {"email", "eventbridge"}
        return {name: self.enrich == "auto" for name in self.sinks if name in wanted}

    def _validate_webhook(self) -> None:
        if not self.webhook_url:
            raise ConfigError("ORDERSTREAM_WEBHOOK_URL", "required when the webhook sink is on")
        try:
            target = parse_target(self.webhook_url)
        except WebhookUrlError as exc:
            raise ConfigError("ORDERSTREAM_WEBHOOK_URL", str(exc)) from None
        if target.scheme == "http" and not (self.webhook_allow_http or target.is_loopback):
            raise ConfigError(
                "ORDERSTREAM_WEBHOOK_URL",
                "must be https (http is allowed on loopback hosts or with "
                "ORDERSTREAM_WEBHOOK_ALLOW_HTTP=true)",
            )
        if self.webhook_legacy_signature and not self.webhook_secret:
            raise ConfigError(
                "ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE", "needs ORDERSTREAM_WEBHOOK_SECRET"
            )

    def safe_summary(self, command: str = "run") -> dict[str, str]:
        """The settings that apply to `command` and its sinks, as text, secrets masked.

        One short line at start-up: the key settings, a chosen sink's target, and
        whatever else differs from its default; never a setting of the other mode.
        """
        defaults = WorkerSettings()
        summary: dict[str, str] = {}
        for name in COMMAND_SETTINGS[command]:
            value = getattr(self, name)
            off_sink = any(
                name.startswith(prefix) and sink not in self.sinks
                for sink, prefix in SINK_SETTINGS.items()
            )
            if value is None or off_sink:
                continue
            target = name in TARGETS
            if name in KEY_SETTINGS or target or value != getattr(defaults, name):
                summary[name] = display(value)
        if self.webhook_secret and "webhook_secret" in summary:
            summary["webhook_secret"] = "***"  # noqa: S105 - the mask, not a secret
        if "webhook_url" in summary:
            summary["webhook_url"] = str(loggable_url(self.webhook_url))
        if self.webhook_headers and "webhook" in self.sinks:
            summary["webhook_headers"] = ",".join(masked(self.webhook_headers))  # names
        summary["region"] = self.region or "(from the AWS config)"
        return summary


def display(value: object) -> str:
    """A setting as an operator writes it: `log,webhook`, `on`, `500`; never a repr."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}s" if isinstance(v, float) else str(v) for v in value) or "off"
    return str(value)
