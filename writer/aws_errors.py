"""Translate botocore failures into writer errors a user can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from writer.awscalls import ClientFailure
from writer.awsenv import NO_CREDENTIALS, NO_REGION, unreachable
from writer.errors import AwsError, ConfigurationError, MissingTableError

_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "ExpiredTokenException",
    }
)
# Codes the caller handles itself (they mean a rejected condition, not trouble).
_PASS_THROUGH = frozenset(
    {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
        "ResourceInUseException",
    }
)


@contextmanager
def translate(table: str) -> Iterator[None]:
    """Re-raise AWS failures as one-line writer errors, keeping the cause."""
    try:
        yield
    except ClientError as exc:
        failure = ClientFailure.of(exc)
        code, message = failure.code, failure.message
        if code in _PASS_THROUGH:
            raise
        if code == "ResourceNotFoundException":
            raise MissingTableError(table) from exc
        if code in _CREDENTIALS:
            raise ConfigurationError(f"AWS refused the credentials: {code}: {message}") from exc
        if failure.throttled:
            raise AwsError(f"throttled by DynamoDB after retries: {code}") from exc
        raise AwsError(f"DynamoDB error {code}: {message}") from exc
    except NoCredentialsError as exc:
        raise ConfigurationError(NO_CREDENTIALS) from exc
    except NoRegionError as exc:
        raise ConfigurationError(NO_REGION) from exc
    except EndpointConnectionError as exc:
        raise AwsError(unreachable("DynamoDB", exc.kwargs.get("endpoint_url"))) from exc
    except BotoCoreError as exc:
        raise AwsError(f"AWS client error: {exc}") from exc
