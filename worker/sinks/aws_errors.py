"""SNS and SQS failures as DeliveryErrors, classified by `writer.awscalls`."""

from __future__ import annotations

from botocore.exceptions import ClientError

from worker.errors import DeliveryError
from writer.awscalls import ClientFailure, is_transient


def delivery_error(sink: str, exc: Exception) -> DeliveryError:
    """The failure named after its sink: transient ones (throttling, 5xx, network
    trouble) are retried, permanent ones go to the dead-letter queue at once."""
    if isinstance(exc, ClientError):
        failure = ClientFailure.of(exc)
        text = f"{failure.code}: {failure.message}"
    elif is_transient(exc):  # any other botocore error: its own text says what failed
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return DeliveryError(f"{sink}: {text}", transient=is_transient(exc))
