"""AWS sink failures (SNS, SQS, SES, EventBridge) as DeliveryErrors, classified by
`writer.awscalls`, plus the codes only a sink meets: an SES account paused or
suspended by its owner or by AWS is no fault of the email, so it waits in the lane."""

from __future__ import annotations

from botocore.exceptions import ClientError

from worker.core.errors import DeliveryError
from writer.awscalls import SERVER_FAULT_CODES, THROTTLING_CODES, ClientFailure, is_transient

_SINK_WAIT_CODES = frozenset({"SendingPausedException", "AccountSuspendedException"})


def transient_code(code: str) -> bool:
    """An error code worth retrying (EventBridge's per-entry codes too)."""
    return code in THROTTLING_CODES or code in SERVER_FAULT_CODES or code in _SINK_WAIT_CODES


def delivery_error(sink: str, exc: Exception) -> DeliveryError:
    """The failure named after its sink: transient ones (throttling, 5xx, network
    trouble) are retried, permanent ones go to the dead-letter queue at once."""
    if isinstance(exc, ClientError):
        failure = ClientFailure.of(exc)
        text = f"{failure.code}: {failure.message}"
        transient = failure.transient or failure.code in _SINK_WAIT_CODES
        return DeliveryError(f"{sink}: {text}", transient=transient)
    if is_transient(exc):  # any other botocore error: its own text says what failed
        return DeliveryError(f"{sink}: {exc}", transient=True)
    return DeliveryError(f"{sink}: {type(exc).__name__}: {exc}", transient=False)
