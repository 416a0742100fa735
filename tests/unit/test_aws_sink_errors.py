"""SNS and SQS failures sorted into transient (retried) and permanent (dead-lettered)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from worker.delivery.sinks.aws_errors import delivery_error


def client_error(code: str, status: int, message: str = "why") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Publish")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttled", 429),  # SNS ThrottledException
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestThrottled", 403),  # SQS
        ("KMSThrottling", 400),  # SNS
        ("KmsThrottled", 400),  # SQS
        ("SomethingNew", 429),  # an unknown code on 429 is still throttling
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        ("AnyCode", 502),
    ],
)
def test_throttling_and_server_errors_are_transient(code: str, status: int) -> None:
    error = delivery_error("sns", client_error(code, status))
    assert error.transient
    assert str(error) == f"sns: {code}: why"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("NotFound", 404),
        ("AuthorizationError", 403),
        ("InvalidParameter", 400),
        ("AWS.SimpleQueueService.NonExistentQueue", 400),
        ("MissingParameter", 400),
    ],
)
def test_other_client_errors_are_permanent(code: str, status: int) -> None:
    assert not delivery_error("sqs", client_error(code, status)).transient


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    ],
)
def test_network_trouble_is_transient(exc: Exception) -> None:
    error = delivery_error("sqs", exc)
    assert error.transient
    assert str(error).startswith("sqs: ")


def test_missing_credentials_are_reported_with_the_sink_name() -> None:
    assert str(delivery_error("sns", NoCredentialsError())).startswith("sns: ")


def test_anything_else_is_permanent() -> None:
    error = delivery_error("sns", ValueError("odd"))
    assert not error.transient
    assert str(error) == "sns: ValueError: odd"
