"""What the worker says about its transition rules at start-up, before any record.

A typo in ORDERSTREAM_NOTIFY_ON or ORDERSTREAM_ROUTES used to drop notifications with
nothing above debug. Case mistakes are errors (settings.py); here an unknown status
gets a warning (other clients may write `Returned`, so it stays allowed), and each kind
of change the writer makes that the rules drop gets one info line, so a rule that
filters more than meant is visible in the first screen of the log.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.core.rules import filtered_changes, parse_rules, unknown_statuses
from worker.settings import INTERNAL_VARIABLES, SETTINGS, WorkerSettings

log = structlog.get_logger()


def report_rules(settings: WorkerSettings) -> None:
    """Before any record (`run`, `kcl run`): warn of unknown statuses, list each dropped change."""
    for setting, rules in (
        ("ORDERSTREAM_NOTIFY_ON", parse_rules(settings.notify_on, None, settings.sinks)),
        ("ORDERSTREAM_ROUTES", parse_rules(None, settings.routes, settings.sinks)),
    ):
        for status, likely in unknown_statuses(rules).items():
            hint = {"did_you_mean": likely} if likely else {}
            log.warning("rules.unknown_status", setting=setting, status=status, **hint)
    for old, new in filtered_changes(settings.rules):
        log.info("rules.filtered", old_status=old, new_status=new)


def report_unknown_variables(env: Mapping[str, str]) -> list[str]:
    """Warn of each ORDERSTREAM_* variable no setting reads, with the closest known name:
    a typo (`ORDERSTREAM_SINK=sqs`) would otherwise leave the default silently in force.
    A warning, not an error: a variable of a newer or older release may be set too."""
    known = {row.env for row in SETTINGS}
    unknown = sorted(
        name
        for name in env
        if name.startswith("ORDERSTREAM_") and name not in known | INTERNAL_VARIABLES
    )
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = {"did_you_mean": close[0]} if close else {}
        log.warning("settings.unknown_variable", variable=name, **hint)
    return unknown


# The variable that names each sink's target: set while its sink is off, it is most
# likely a sink left out of ORDERSTREAM_SINKS (or a typo of that variable's name).
SINK_TARGETS = {
    "webhook": "ORDERSTREAM_WEBHOOK_URL",
    "sns": "ORDERSTREAM_SNS_TOPIC_ARN",
    "sqs": "ORDERSTREAM_SQS_QUEUE_URL",
    "email": "ORDERSTREAM_EMAIL_FROM",
    "eventbridge": "ORDERSTREAM_EVENTBRIDGE_BUS",
}


def report_idle_targets(settings: WorkerSettings, env: Mapping[str, str]) -> list[str]:
    """Warn (`settings.sink_off`) of each sink whose target is set but which is not in
    ORDERSTREAM_SINKS: the worker would run without it and say nothing."""
    idle = [
        sink
        for sink, variable in SINK_TARGETS.items()
        if env.get(variable) and sink not in settings.sinks
    ]
    for sink in idle:
        log.warning(
            "settings.sink_off",
            sink=sink,
            variable=SINK_TARGETS[sink],
            sinks=",".join(settings.sinks),
            hint=f"add {sink} to ORDERSTREAM_SINKS to send to it",
        )
    return idle


class IdentityLookup(Protocol):
    """SES v2 as the sender check uses it (`boto3.client("sesv2")`)."""

    def get_email_identity(self, *, EmailIdentity: str) -> Any:  # noqa: N803 - boto3's name
        """The identity's verification status; NotFoundException when SES has none."""
        ...


def report_email_sender(settings: WorkerSettings, ses: IdentityLookup) -> bool | None:
    """With the email sink on, warn (`email.sender_unverified`) when SES has neither
    ORDERSTREAM_EMAIL_FROM's address nor its domain verified for sending: every email
    would be rejected and dead-lettered. Run in a thread of its own at start-up: an SES
    that does not answer must not delay reading the stream, nor a stop. True: verified;
    None: could not be checked (no ses:GetEmailIdentity permission, SES unreachable),
    which only an info line says."""
    if "email" not in settings.sinks or not settings.email_from:
        return None
    address = parseaddr(settings.email_from)[1]
    for identity in (address, address.rpartition("@")[2]):
        try:
            answer = ses.get_email_identity(EmailIdentity=identity)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                continue
            log.info("email.sender_unchecked", sender=address, error=str(exc))
            return None
        except BotoCoreError as exc:
            log.info("email.sender_unchecked", sender=address, error=str(exc))
            return None
        if answer.get("VerifiedForSendingStatus") or answer.get("VerificationStatus") == "SUCCESS":
            return True
    log.warning(
        "email.sender_unverified",
        sender=address,
        hint="verify the address or its domain in SES (aws sesv2 create-email-identity): "
        "until then every email is rejected and dead-lettered",
    )
    return False
