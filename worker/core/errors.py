"""Worker errors: configuration (exit 2), stream trouble, and delivery outcomes."""

from __future__ import annotations


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""

    exit_code = 1


class ConfigError(WorkerError):
    """A setting is invalid; the message names it. Exit 2."""

    exit_code = 2

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting


class SetupError(WorkerError):
    """The AWS side is not as the worker needs it (no table, no stream, no credentials)."""

    exit_code = 2


class AwsUnreachableError(WorkerError):
    """An AWS endpoint did not answer at start-up. Exit 1: it may be back in a moment."""


class StreamError(WorkerError):
    """A DynamoDB Streams call failed for a reason the reader handles by kind."""


class IteratorExpiredError(StreamError):
    """Shard iterators live 15 minutes; get a new one from the last processed record."""


class TrimmedDataError(StreamError):
    """The iterator points before the trim horizon: records there are gone (24 h)."""


class ThrottledError(StreamError):
    """LimitExceeded or 5xx after botocore's own retries: back off, then read again."""


class ShardNotFoundError(StreamError):
    """The shard or stream no longer exists (stream disabled, shard aged out)."""


class DeliveryError(WorkerError):
    """A sink could not deliver. `transient` errors are retried; others dead-lettered.

    `gone` marks an endpoint that said it no longer exists (HTTP 410): the sink is
    disabled until an operator enables it again, and its changes wait in the lane."""

    def __init__(
        self,
        message: str,
        transient: bool,
        retry_after_s: float | None = None,
        *,
        gone: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s
        self.gone = gone


class SinkUnavailableError(DeliveryError):
    """The sink was not attempted: its breaker is open or it is disabled. The change is
    parked in the retry lane at once, without a burst of attempts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class LeaseLostError(WorkerError):
    """Another replica holds the app lease; stop writing checkpoints at once."""
