"""The sink state store: which sinks are disabled (410 Gone) and their breakers' states.

One item per sink in the state table, `APP#<app>#SINK#<orders table>` / `<sink name>`:
per table, since one app name may read two tables, each with its own targets (a 410 from
one table's webhook must not disable the other's). Each item holds `disabled`
(BOOL), `reason`, `disabled_at`, and the breaker as last published (`breaker`,
`breaker_changed_at`). The worker writes the breaker only on a transition (a handful of
writes an outage, never one per call) so that `worker status` and `worker sink list`,
which run as other processes, can show it. Every write is an UpdateItem of its own
attributes, so a breaker transition never undoes a disable, nor the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker.core.detect import iso_utc
from worker.state.statetable import app_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class SinkState:
    """One sink's item as `worker sink list` shows it; a sink never recorded is enabled, closed."""

    name: str
    disabled: bool = False
    reason: str | None = None
    disabled_at: str | None = None
    breaker: str = "closed"
    breaker_changed_at: str | None = None


def sink_pk(app: str, scope: str) -> str:
    """The partition of the sink items of the app on the orders table `scope`."""
    return f"{app_pk(app)}#SINK#{scope}"


class SinkStateStore:
    """Sinks' disabled flags and published breakers in the state table, one item per sink."""

    def __init__(
        self,
        *,
        client: DynamoDBClient,
        table: str,
        app: str,
        scope: str,
        clock: Callable[[], float],
    ) -> None:
        """`table` is the state table, `scope` the orders table whose sinks these are;
        `clock` is wall-clock epoch seconds: the times are shown to operators."""
        self._client = client
        self._table = table
        self._pk = sink_pk(app, scope)
        self._clock = clock

    def _key(self, name: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk}, "sk": {"S": name}}

    def read(self, name: str) -> SinkState:
        """The sink's state; a sink never recorded is enabled and closed."""
        item = self._client.get_item(
            TableName=self._table, Key=self._key(name), ConsistentRead=True
        ).get("Item")
        return _state(name, item) if item else SinkState(name)

    def states(self) -> dict[str, SinkState]:
        """Every recorded sink (all pages)."""
        found: dict[str, SinkState] = {}
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": self._pk}},
            ConsistentRead=True,
        ):
            for item in page.get("Items", []):
                name = item["sk"]["S"]
                found[name] = _state(name, item)
        return found

    def disable(self, name: str, reason: str) -> None:
        """Disable the sink durably (a 410 Gone), with why and when; the breaker's fields stay."""
        self._client.update_item(
            TableName=self._table,
            Key=self._key(name),
            UpdateExpression="SET disabled = :t, reason = :r, disabled_at = :at",
            ExpressionAttributeValues={
                ":t": {"BOOL": True},
                ":r": {"S": reason},
                ":at": {"S": iso_utc(self._clock())},
            },
        )

    def enable(self, name: str) -> SinkState:
        """Clear the disable and the published breaker; returns the state before."""
        answer = self._client.update_item(
            TableName=self._table,
            Key=self._key(name),
            UpdateExpression=(
                "SET disabled = :f, breaker = :closed, breaker_changed_at = :at "
                "REMOVE reason, disabled_at"
            ),
            ExpressionAttributeValues={
                ":f": {"BOOL": False},
                ":closed": {"S": "closed"},
                ":at": {"S": iso_utc(self._clock())},
            },
            ReturnValues="ALL_OLD",
        )
        old = answer.get("Attributes")
        return _state(name, old) if old else SinkState(name)

    def publish_breaker(self, name: str, state: str) -> None:
        """Record a breaker transition for other processes to show; the disable's fields stay."""
        self._client.update_item(
            TableName=self._table,
            Key=self._key(name),
            UpdateExpression="SET breaker = :s, breaker_changed_at = :at",
            ExpressionAttributeValues={
                ":s": {"S": state},
                ":at": {"S": iso_utc(self._clock())},
            },
        )


def _state(name: str, item: dict[str, Any]) -> SinkState:
    def text(attr: str) -> str | None:
        value = item.get(attr)
        return value["S"] if value and "S" in value else None

    return SinkState(
        name=name,
        disabled=bool(item.get("disabled", {}).get("BOOL", False)),
        reason=text("reason"),
        disabled_at=text("disabled_at"),
        breaker=text("breaker") or "closed",
        breaker_changed_at=text("breaker_changed_at"),
    )
