"""AWS calls as both tools make them: one boto3 Config, one reading of a failure.

botocore retries throttling and 5xx itself (standard mode, jittered backoff), so a
`ClientError` that reaches our code has already been retried; what is left to decide
is only its kind. Throttled or a server fault is worth trying again later (the worker
backs off, or parks a delivery); anything else will fail the same way again. One list
of codes serves every service we call (DynamoDB, DynamoDB Streams, SNS, SQS, SES,
EventBridge): each
service spells throttling its own way, and a code one service never returns costs
nothing in another's list.

This module lives in `writer` because the worker may import the writer and never the
other way round; it imports nothing of either package.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

THROTTLING_CODES = frozenset(
    {
        "LimitExceededException",  # DynamoDB Streams
        "ProvisionedThroughputExceededException",  # DynamoDB
        "RequestLimitExceeded",  # DynamoDB
        "ThrottlingException",
        "Throttling",
        "Throttled",  # SNS's ThrottledException (HTTP 429)
        "ThrottledException",
        "RequestThrottled",  # SQS
        "TooManyRequestsException",
        "KMSThrottling",  # SNS
        "KMSThrottlingException",
        "KmsThrottled",  # SQS
    }
)
# Server-side faults: the request may well succeed on a later attempt.
SERVER_FAULT_CODES = frozenset(
    {
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "InternalException",  # EventBridge, per entry
    }
)


@dataclass(frozen=True)
class ClientFailure:
    """A `ClientError`'s response, read once: callers word and classify from this."""

    code: str
    message: str
    status: int  # the HTTP status (0 when the response carries none)

    @classmethod
    def of(cls, exc: ClientError) -> ClientFailure:
        """Code, message and HTTP status from a ClientError's response."""
        error = exc.response["Error"]
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return cls(error["Code"], error.get("Message", ""), status)

    @property
    def throttled(self) -> bool:
        """The service refused for rate: a known throttling code or HTTP 429."""
        return self.code in THROTTLING_CODES or self.status == 429

    @property
    def transient(self) -> bool:
        """Worth another attempt later: throttled, or a server fault (any 5xx)."""
        return self.throttled or self.code in SERVER_FAULT_CODES or self.status >= 500


def is_transient(exc: Exception) -> bool:
    """A botocore failure that may pass: a transient `ClientError`, or any other
    botocore error (a timeout, a dropped connection). Anything else is permanent."""
    if isinstance(exc, ClientError):
        return ClientFailure.of(exc).transient
    return isinstance(exc, BotoCoreError)


def client_config(
    *, max_attempts: int, read_timeout: float, max_pool_connections: int | None = None
) -> Config:
    """botocore's own retry mode, configured once per tool: standard mode retries
    throttling and 5xx with jittered backoff, so no layer above retries the same call.
    `max_pool_connections` only for a tool that calls from many threads (botocore's
    default is 10)."""
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    if max_pool_connections is None:
        return config
    return config.merge(Config(max_pool_connections=max_pool_connections))
