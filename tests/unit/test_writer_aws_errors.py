"""Translating botocore failures into one-line writer errors (pure, no network)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from writer.aws_errors import translate
from writer.errors import AwsError, ConfigurationError, WriterError


def client_error(code: str, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutItem")


@pytest.mark.parametrize(
    ("raised", "expected", "exit_code", "text"),
    [
        (client_error("ResourceNotFoundException"), ConfigurationError, 2, "'Orders' does not"),
        (client_error("UnrecognizedClientException"), ConfigurationError, 2, "refused the"),
        (client_error("AccessDeniedException"), ConfigurationError, 2, "AccessDeniedException"),
        (client_error("ThrottlingException"), AwsError, 1, "throttled"),
        (client_error("InternalServerError", "oops"), AwsError, 1, "InternalServerError: oops"),
        (NoCredentialsError(), ConfigurationError, 2, "no AWS credentials found"),
        (NoRegionError(), ConfigurationError, 2, "AWS_REGION"),
        (EndpointConnectionError(endpoint_url="http://x"), AwsError, 1, "cannot reach DynamoDB"),
    ],
)
def test_failures_become_one_line_errors(
    raised: Exception, expected: type[WriterError], exit_code: int, text: str
) -> None:
    with pytest.raises(expected) as info, translate("Orders"):
        raise raised
    assert info.value.exit_code == exit_code
    assert text in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is raised  # the cause is kept for debugging


@pytest.mark.parametrize(
    "code",
    ["ConditionalCheckFailedException", "TransactionCanceledException", "ResourceInUseException"],
)
def test_codes_the_caller_handles_pass_through(code: str) -> None:
    with pytest.raises(ClientError) as info, translate("Orders"):
        raise client_error(code)
    assert info.value.response["Error"]["Code"] == code


def test_other_exceptions_are_not_touched() -> None:
    with pytest.raises(KeyError), translate("Orders"):
        raise KeyError("x")
