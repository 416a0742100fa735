"""Which settings each command reads: its flags (`worker run --help`) and its start-up
summary line, secrets masked. The environment is validated whole whatever the command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.delivery.sinks.webhook_headers import masked
from worker.delivery.sinks.webhook_target import loggable_url
from worker.settings.setting import display

if TYPE_CHECKING:
    from worker.settings.declaration import WorkerSettings

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
# Fleet mode (`worker kcl run`): KCL tuning, written into the MultiLangDaemon properties.
FLEET = (
    "kcl_failover_ms",
    "kcl_assignment_ms",
    "kcl_parent_poll_ms",
    "kcl_max_leases",
    "kcl_metrics",
    "kcl_jars",
)
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


def safe_summary(settings: WorkerSettings, command: str = "run") -> dict[str, str]:
    """The settings that apply to `command` and its sinks, as text, secrets masked.

    One short line at start-up: the key settings, a chosen sink's target, and
    whatever else differs from its default; never a setting of the other mode.
    """
    defaults = type(settings)()
    summary: dict[str, str] = {}
    for name in COMMAND_SETTINGS[command]:
        value = getattr(settings, name)
        off_sink = any(
            name.startswith(prefix) and sink not in settings.sinks
            for sink, prefix in SINK_SETTINGS.items()
        )
        if value is None or off_sink:
            continue
        target = name in TARGETS
        if name in KEY_SETTINGS or target or value != getattr(defaults, name):
            summary[name] = display(value)
    if settings.webhook_secret and "webhook_secret" in summary:
        summary["webhook_secret"] = "***"  # noqa: S105 - the mask, not a secret
    if "webhook_url" in summary:
        summary["webhook_url"] = str(loggable_url(settings.webhook_url))
    if settings.webhook_headers and "webhook" in settings.sinks:
        summary["webhook_headers"] = ",".join(masked(settings.webhook_headers))  # names
    summary["region"] = settings.region or "(from the AWS config)"
    return summary
