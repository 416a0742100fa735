"""Classify AWS sink failures (SNS, SQS, SES, EventBridge): throttling, 5xx and network
trouble are transient; a request the service refused for what it is, is not."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from worker.errors import DeliveryError

_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "Throttled",  # SNS's ThrottledException (HTTP 429)
        "KMSThrottling",  # SNS
        "KmsThrottled",  # SQS
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "KMSThrottlingException",
        "RequestTimeout",
        "InternalException",  # EventBridge, per entry
        # SES: the sending quota (resets daily) and an account paused or suspended by
        # its owner or by AWS: no email is wrong, so they wait in the retry lane.
        "LimitExceededException",
        "SendingPausedException",
        "AccountSuspendedException",
    }
)


def transient_code(code: str) -> bool:
    """An error code worth retrying (EventBridge's per-entry codes too)."""
    return code in _TRANSIENT_CODES


def delivery_error(sink: str, exc: Exception) -> DeliveryError:
    if isinstance(exc, ClientError):
        code = exc.response["Error"]["Code"]
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        transient = code in _TRANSIENT_CODES or status == 429 or status >= 500
        return DeliveryError(
            f"{sink}: {code}: {exc.response['Error'].get('Message', '')}", transient=transient
        )
    if isinstance(exc, BotoCoreError):
        return DeliveryError(f"{sink}: {exc}", transient=True)
    return DeliveryError(f"{sink}: {type(exc).__name__}: {exc}", transient=False)
