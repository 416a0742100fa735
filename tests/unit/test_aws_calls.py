"""One reading of AWS failures and one boto3 Config for both tools (pure, no network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from worker.aws import AWS_CONFIG
from writer.aws import RETRY_CONFIG
from writer.awscalls import ClientFailure, client_config, is_transient


def client_error(code: str, status: int | None = None) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "why"}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "Call")


def test_a_failure_is_read_once_with_its_status() -> None:
    assert ClientFailure.of(client_error("Throttled", 429)) == ClientFailure(
        "Throttled", "why", 429
    )
    assert ClientFailure.of(client_error("X")).status == 0  # no ResponseMetadata


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("LimitExceededException", 400),  # DynamoDB Streams
        ("ProvisionedThroughputExceededException", 400),  # DynamoDB
        ("Throttled", 429),  # SNS
        ("RequestThrottled", 403),  # SQS
        ("SomethingNew", 429),
    ],
)
def test_throttling_is_throttled_and_transient(code: str, status: int) -> None:
    failure = ClientFailure.of(client_error(code, status))
    assert failure.throttled
    assert failure.transient


@pytest.mark.parametrize(("code", "status"), [("InternalServerError", 500), ("AnyCode", 503)])
def test_server_faults_are_transient_but_not_throttling(code: str, status: int) -> None:
    failure = ClientFailure.of(client_error(code, status))
    assert failure.transient
    assert not failure.throttled


def test_other_failures_are_permanent() -> None:
    assert not is_transient(client_error("ValidationException", 400))
    assert not is_transient(ValueError("odd"))
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))


def test_each_tool_s_config_is_built_by_the_one_builder() -> None:
    assert AWS_CONFIG.retries == {"mode": "standard", "max_attempts": 5}
    assert (AWS_CONFIG.connect_timeout, AWS_CONFIG.read_timeout) == (5, 20)
    assert AWS_CONFIG.max_pool_connections == 64
    assert RETRY_CONFIG.retries == {"mode": "standard", "max_attempts": 8}
    assert (RETRY_CONFIG.connect_timeout, RETRY_CONFIG.read_timeout) == (5, 30)
    assert (
        RETRY_CONFIG.max_pool_connections
        == client_config(max_attempts=1, read_timeout=1).max_pool_connections
    )  # botocore's default
