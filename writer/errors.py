"""Writer errors: bad input (exit 2) versus AWS trouble (exit 1 unless actionable)."""

from __future__ import annotations


class WriterError(Exception):
    """Base of every error the writer raises on purpose."""

    exit_code = 1


class BadInputError(WriterError):
    """The caller asked for something invalid; nothing was written."""

    exit_code = 2


class ValidationError(BadInputError):
    """One input field is invalid: the message names it and says why (exit 2)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFoundError(BadInputError):
    """The user or order does not exist."""


class AlreadyExistsError(BadInputError):
    """put-order on an order id that is taken."""


class IllegalTransitionError(BadInputError):
    """The status move is not in the allowed transitions."""


class ConcurrentUpdateError(BadInputError):
    """`--expect` did not match: someone else changed the order first."""


class ConfigurationError(BadInputError):
    """The table or credentials are not what the writer needs (exit 2: fix the setup)."""


class MissingTableError(ConfigurationError):
    """The table is not there; the CLI adds the region and endpoint it looked in."""

    def __init__(self, table: str) -> None:
        super().__init__(f"table {table!r} does not exist (run `writer create-table`)")
        self.table = table


class AwsError(WriterError):
    """AWS failed in a way the user cannot fix by changing the input."""
