"""Writer settings from ORDERSTREAM_* variables, validated once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from writer.awsenv import endpoint_problem
from writer.errors import ValidationError
from writer.schema import DEFAULT_TABLE

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
LOG_FORMATS = ("auto", "json", "console")


def check_table_name(setting: str, value: str) -> str:
    """`value` if it is a legal DynamoDB table name, else a ValidationError naming `setting`."""
    if not TABLE_NAME.fullmatch(value):
        raise ValidationError(setting, f"{value!r} is not a DynamoDB table name")
    return value


def check_log_format(value: str) -> str:
    """ORDERSTREAM_LOG_FORMAT: `auto`, `json` or `console`."""
    if value not in LOG_FORMATS:
        raise ValidationError(
            "ORDERSTREAM_LOG_FORMAT", f"{value!r} is not one of auto, json, console"
        )
    return value


@dataclass(frozen=True)
class WriterSettings:
    """The writer's settings, validated once: the table, the log format, the region."""

    table: str = DEFAULT_TABLE
    log_format: str = "auto"
    # boto3 reads AWS_DEFAULT_REGION only; the SDKs of other languages (and the KCL)
    # read AWS_REGION, so we honour both.
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], table: str | None = None) -> WriterSettings:
        """Settings from the environment; a CLI flag, when given, wins."""
        problem = endpoint_problem(env)
        if problem:
            raise ValidationError(*problem)
        return cls(
            table=check_table_name(
                "ORDERSTREAM_TABLE", table or env.get("ORDERSTREAM_TABLE") or DEFAULT_TABLE
            ),
            log_format=check_log_format(env.get("ORDERSTREAM_LOG_FORMAT") or "auto"),
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
        )
