"""Classify SNS and SQS failures: throttling, 5xx and network trouble are transient."""

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
    }
)


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
