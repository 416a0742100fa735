"""Checks across settings, after each was parsed alone; each failure names the variable
an operator has to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.core.errors import ConfigError
from worker.core.rules import parse_rules
from worker.delivery.sinks.email_templates import EmailTemplates, TemplateProblemError
from worker.delivery.sinks.webhook_target import WebhookUrlError, parse_target
from worker.state.dlq import from_table

if TYPE_CHECKING:
    from worker.settings.declaration import WorkerSettings


def check(settings: WorkerSettings) -> None:
    """Checks across settings (`WorkerSettings.validate`); a ConfigError names the variable."""
    if settings.retry_cap_ms < settings.retry_base_ms:
        raise ConfigError("ORDERSTREAM_RETRY_CAP_MS", "must be >= ORDERSTREAM_RETRY_BASE_MS")
    if settings.stream_arn and not from_table(settings.stream_arn, settings.table):
        # Entries are scoped by the stream's table: another table's stream would leave
        # this table's parked changes and dead letters unseen by the worker.
        raise ConfigError(
            "ORDERSTREAM_STREAM_ARN",
            f"{settings.stream_arn!r} is not a stream of ORDERSTREAM_TABLE {settings.table!r}",
        )
    sinks = settings.sinks
    if "webhook" in sinks:
        _check_webhook(settings)
    if "sns" in sinks and not (settings.sns_topic_arn or "").startswith("arn:"):
        raise ConfigError("ORDERSTREAM_SNS_TOPIC_ARN", "an SNS topic ARN is required")
    if "sqs" in sinks and not (settings.sqs_queue_url or "").startswith(("http://", "https://")):
        raise ConfigError("ORDERSTREAM_SQS_QUEUE_URL", "an SQS queue URL is required")
    if "email" in sinks:
        _check_email(settings)
    try:
        parse_rules(settings.notify_on, None, sinks)
    except ValueError as exc:
        raise ConfigError("ORDERSTREAM_NOTIFY_ON", str(exc)) from None
    try:
        parse_rules(settings.notify_on, settings.routes, sinks)
    except ValueError as exc:
        raise ConfigError("ORDERSTREAM_ROUTES", str(exc)) from None


def _check_email(settings: WorkerSettings) -> None:
    if not settings.email_from:
        raise ConfigError("ORDERSTREAM_EMAIL_FROM", "required when the email sink is on")
    try:
        EmailTemplates(settings.email_templates).check()
    except TemplateProblemError as exc:
        raise ConfigError("ORDERSTREAM_EMAIL_TEMPLATES", str(exc)) from None
    except OSError as exc:  # the folder itself unreadable
        raise ConfigError("ORDERSTREAM_EMAIL_TEMPLATES", f"cannot read: {exc}") from None


def _check_webhook(settings: WorkerSettings) -> None:
    if not settings.webhook_url:
        raise ConfigError("ORDERSTREAM_WEBHOOK_URL", "required when the webhook sink is on")
    try:
        target = parse_target(settings.webhook_url)
    except WebhookUrlError as exc:
        raise ConfigError("ORDERSTREAM_WEBHOOK_URL", str(exc)) from None
    if target.scheme == "http" and not (settings.webhook_allow_http or target.is_loopback):
        raise ConfigError(
            "ORDERSTREAM_WEBHOOK_URL",
            "must be https (http is allowed on loopback hosts or with "
            "ORDERSTREAM_WEBHOOK_ALLOW_HTTP=true)",
        )
    if settings.webhook_legacy_signature and not settings.webhook_secret:
        raise ConfigError(
            "ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE", "needs ORDERSTREAM_WEBHOOK_SECRET"
        )
